//! The baseline for the Nacos API: one r-nacos node (`cargo install rnacos`)
//! on loopback, on ephemeral ports, with its data in a temporary directory.
//!
//! r-nacos is configured only through environment variables (and a `.env`
//! file in its working directory, which here is the empty data directory).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};

use crate::nacos_load::Target;

/// How long r-nacos may take to answer after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running r-nacos node. Killed when dropped.
pub struct RnacosServer {
    child: Child,
    http_port: u16,
    _dir: tempfile::TempDir,
}

impl RnacosServer {
    /// Starts `bin` and waits until its Nacos API answers. Ephemeral
    /// instances turn unhealthy after `beat_timeout` and are deleted after
    /// `delete_timeout` without a beat (whole seconds).
    pub async fn start(
        bin: &Path,
        beat_timeout: Duration,
        delete_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let http_port = free_port()?;
        let grpc_port = free_port()?;
        let console_port = free_port()?;
        let child = Command::new(bin)
            .current_dir(dir.path())
            .env("RNACOS_HTTP_PORT", http_port.to_string())
            .env("RNACOS_GRPC_PORT", grpc_port.to_string())
            .env("RNACOS_HTTP_CONSOLE_PORT", console_port.to_string())
            .env("RNACOS_SDK_HOST", "127.0.0.1")
            .env("RNACOS_CONSOLE_HOST", "127.0.0.1")
            .env("RNACOS_RAFT_NODE_ADDR", format!("127.0.0.1:{grpc_port}"))
            .env("RNACOS_DATA_DIR", dir.path())
            .env(
                "RNACOS_NAMING_HEALTH_TIMEOUT_SECOND",
                beat_timeout.as_secs().to_string(),
            )
            .env(
                "RNACOS_NAMING_INSTANCE_TIMEOUT_SECOND",
                delete_timeout.as_secs().to_string(),
            )
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let server = Self {
            child,
            http_port,
            _dir: dir,
        };
        server.target()?.wait_ready(START_TIMEOUT).await?;
        Ok(server)
    }

    pub fn target(&self) -> anyhow::Result<Target> {
        Target::new(format!("http://127.0.0.1:{}", self.http_port))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// The r-nacos binary: `given`, else `rnacos` on `PATH` or in `~/.cargo/bin`,
/// installed there first if it is in neither.
pub fn binary(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path);
    }
    if let Some(found) = installed() {
        return Ok(found);
    }
    crate::baseline_install::rnacos()?;
    installed().context("no rnacos binary on PATH or in ~/.cargo/bin after cargo install rnacos")
}

/// `rnacos` on `PATH` or in `~/.cargo/bin`.
fn installed() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("rnacos"))
                .collect()
        })
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cargo/bin/rnacos"));
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// What `rnacos --version` prints, e.g. `rnacos 0.8.8`.
pub fn version(bin: &Path) -> String {
    std::process::Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|v| v.lines().next().map(str::trim).map(str::to_owned))
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "r-nacos (unknown version)".into())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
