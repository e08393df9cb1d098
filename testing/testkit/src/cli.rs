//! Running the `sextant` command-line client against a server.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// What one CLI invocation did.
#[derive(Clone, Debug)]
pub struct CliOutput {
    /// The exit code; `None` if killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics with both streams unless the command exited with 0.
    pub fn assert_success(&self, what: &str) -> &CliOutput {
        assert!(
            self.success(),
            "`{what}` failed with exit code {:?}\nstdout: {}\nstderr: {}",
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `BIN ARGS...` with `SEXTANT_HTTP_ADDR=http_addr` and no other
/// `SEXTANT_*` variable. Panics if it cannot be spawned or runs over 30 s.
pub async fn run_cli(bin: impl AsRef<Path>, http_addr: SocketAddr, args: &[&str]) -> CliOutput {
    let bin = bin.as_ref();
    let mut command = Command::new(bin);
    command.args(args).kill_on_drop(true);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SEXTANT_") {
            command.env_remove(&key);
        }
    }
    command.env("SEXTANT_HTTP_ADDR", http_addr.to_string());
    let shown = format!("{} {}", bin.display(), args.join(" "));
    let output = match tokio::time::timeout(CLI_TIMEOUT, command.output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(err)) => panic!("cannot run `{shown}`: {err}"),
        Err(_) => panic!("`{shown}` did not finish within {CLI_TIMEOUT:?}"),
    };
    CliOutput {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
