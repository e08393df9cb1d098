//! One `sextant agent` child process with a data directory that survives restarts.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::Result;
use nix::sys::signal::Signal;
use serde::Deserialize;
use tempfile::TempDir;

use crate::http::HttpClient;
use crate::process::{tail, Supervised};
use crate::wait::POLL_INTERVAL;

/// Set this environment variable to keep every server's data directory (and
/// logs) after the test instead of deleting it.
const KEEP_DATA_ENV: &str = "SEXTANT_TEST_KEEP_DATA";

const STDOUT_LOG: &str = "stdout.log";
const STDERR_LOG: &str = "stderr.log";
const ADDRESSES_FILE: &str = "addresses.json";

/// How long a graceful stop may take before the harness gives up.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Tuning passed to every server of a test.
#[derive(Clone, Debug)]
pub struct ServerOpts {
    /// `--election-timeout`; `None` leaves the agent's default.
    pub election_timeout: Option<Duration>,
    /// `--snapshot-threshold`.
    pub snapshot_threshold: Option<u64>,
    /// `--leave-on-terminate`.
    pub leave_on_terminate: bool,
    /// Appended to the agent's command line as they are.
    pub extra_args: Vec<String>,
    /// How long one start may take until `addresses.json` is written and HTTP answers.
    pub start_timeout: Duration,
    /// The address every listener binds (port 0); `None` is 127.0.0.1. A
    /// server in its own network namespace listens on that namespace's address.
    pub bind_ip: Option<IpAddr>,
    /// A command the agent is run through, e.g. `ip netns exec NS`; it must
    /// exec the agent in place so the process id (and its signals) stay the agent's.
    pub launcher: Vec<String>,
}

impl Default for ServerOpts {
    fn default() -> ServerOpts {
        ServerOpts {
            election_timeout: Some(Duration::from_secs(1)),
            snapshot_threshold: None,
            leave_on_terminate: false,
            extra_args: Vec::new(),
            start_timeout: Duration::from_secs(30),
            bind_ip: None,
            launcher: Vec::new(),
        }
    }
}

/// The content of `DATA_DIR/addresses.json`, written by the agent once every
/// listener is bound.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Addresses {
    pub name: String,
    pub node_id: u64,
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    pub raft: SocketAddr,
    pub dns: SocketAddr,
    /// The Nacos naming API (absent from agents that predate it).
    #[serde(default)]
    pub nacos: Option<SocketAddr>,
}

/// A `sextant agent` child process. Killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct Server {
    bin: PathBuf,
    args: Vec<String>,
    launcher: Vec<String>,
    start_timeout: Duration,
    addresses: Addresses,
    client: HttpClient,
    process: Option<Supervised>,
    starts: u32,
    // Last so it is removed after the process is killed.
    dir: TempDir,
}

impl Server {
    /// Starts `BIN agent --server --name NAME` with every listener on
    /// `127.0.0.1:0`, `--bootstrap-expect` and one `--join` per address given.
    /// Returns once `addresses.json` is written and HTTP answers; panics with
    /// the log tail if that does not happen within `opts.start_timeout`.
    pub async fn start(
        bin: impl AsRef<Path>,
        name: &str,
        opts: &ServerOpts,
        bootstrap_expect: Option<usize>,
        join: &[SocketAddr],
    ) -> Server {
        let dir = new_data_dir(name);
        let mut args = vec!["agent".to_owned(), "--server".to_owned()];
        args.extend(["--name".to_owned(), name.to_owned()]);
        args.extend(common_args(dir.path(), opts.bind_ip));
        if let Some(expect) = bootstrap_expect {
            args.extend(["--bootstrap-expect".to_owned(), expect.to_string()]);
        }
        for addr in join {
            args.extend(["--join".to_owned(), addr.to_string()]);
        }
        if let Some(timeout) = opts.election_timeout {
            args.extend([
                "--election-timeout".to_owned(),
                format!("{}ms", timeout.as_millis()),
            ]);
        }
        if let Some(threshold) = opts.snapshot_threshold {
            args.extend(["--snapshot-threshold".to_owned(), threshold.to_string()]);
        }
        if opts.leave_on_terminate {
            args.push("--leave-on-terminate".to_owned());
        }
        args.extend(opts.extra_args.iter().cloned());
        Server::launch_new(bin.as_ref(), name, args, dir, opts).await
    }

    /// Starts `BIN agent --dev --data-dir DIR` with every listener on `127.0.0.1:0`.
    /// Returns once the dev agent has elected itself leader.
    pub async fn start_dev(bin: impl AsRef<Path>) -> Server {
        Server::start_dev_with(bin, &[]).await
    }

    /// [`Server::start_dev`] with `extra_args` appended to the command line.
    pub async fn start_dev_with(bin: impl AsRef<Path>, extra_args: &[String]) -> Server {
        let dir = new_data_dir("dev");
        let mut args = vec!["agent".to_owned(), "--dev".to_owned()];
        args.extend(common_args(dir.path(), None));
        args.extend(extra_args.iter().cloned());
        let opts = ServerOpts::default();
        let timeout = opts.start_timeout;
        let dev = Server::launch_new(bin.as_ref(), "dev", args, dir, &opts).await;
        crate::wait_for("the dev agent to lead", timeout, || async {
            match dev.http().status_leader().await {
                Ok(leader) if !leader.is_empty() => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        dev
    }

    async fn launch_new(
        bin: &Path,
        label: &str,
        args: Vec<String>,
        dir: TempDir,
        opts: &ServerOpts,
    ) -> Server {
        let start_timeout = opts.start_timeout;
        match launch(bin, &opts.launcher, &args, dir.path(), start_timeout, 1).await {
            Ok((process, addresses)) => Server {
                bin: bin.to_owned(),
                args,
                launcher: opts.launcher.clone(),
                start_timeout,
                client: HttpClient::new(addresses.http),
                addresses,
                process: Some(process),
                starts: 1,
                dir,
            },
            Err(err) => panic!(
                "server {label} did not start: {err:#}\n{}",
                log_tail_of(label, dir.path(), 60)
            ),
        }
    }

    /// The node name the agent reports in `addresses.json`.
    pub fn name(&self) -> &str {
        &self.addresses.name
    }

    pub fn node_id(&self) -> u64 {
        self.addresses.node_id
    }

    pub fn addresses(&self) -> &Addresses {
        &self.addresses
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.addresses.http
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.addresses.grpc
    }

    /// The server's identity in the cluster.
    pub fn raft_addr(&self) -> SocketAddr {
        self.addresses.raft
    }

    pub fn dns_addr(&self) -> SocketAddr {
        self.addresses.dns
    }

    /// The Nacos naming API's address; panics if the agent does not serve it.
    pub fn nacos_addr(&self) -> SocketAddr {
        self.addresses
            .nacos
            .expect("the agent advertises no Nacos address")
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The agent's command line (without the binary).
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// A client for this server's HTTP address.
    pub fn http(&self) -> &HttpClient {
        &self.client
    }

    /// The process id while the harness considers the server running.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Supervised::pid)
    }

    /// True from start until the harness kills or stops it. A server that
    /// crashed by itself still counts as running until then; its requests fail
    /// and [`Server::log_tail`] tells why.
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// True between [`Server::pause`] and [`Server::resume`].
    pub fn is_paused(&self) -> bool {
        self.process.as_ref().is_some_and(Supervised::is_paused)
    }

    /// SIGKILL and wait for the process to be gone. No-op if not running.
    pub async fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            if let Err(err) = process.signal(Signal::SIGKILL) {
                // Already exited on its own; reaping below settles it.
                eprintln!("{}: SIGKILL: {err:#}", self.name());
            }
            match process.wait_exit(STOP_TIMEOUT).await {
                Ok(Some(_)) => {}
                other => panic!("{}: not gone after SIGKILL: {other:?}", self.name()),
            }
        }
    }

    /// Waits up to `timeout` for the process to exit by itself, as a server
    /// does on a fatal storage error. Returns its exit status (the server
    /// then counts as stopped), or `None` if it is still running.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let process = self.process.as_mut()?;
        match process.wait_exit(timeout).await {
            Ok(Some(status)) => {
                self.process = None;
                Some(status)
            }
            _ => None,
        }
    }

    /// SIGKILL without waiting; [`Server::kill`] afterwards reaps it. Lets a
    /// test kill several servers at (nearly) the same instant.
    pub fn send_kill(&mut self) {
        if let Some(process) = self.process.as_mut() {
            if let Err(err) = process.signal(Signal::SIGKILL) {
                eprintln!("{}: SIGKILL: {err:#}", self.addresses.name);
            }
        }
    }

    /// SIGTERM (a graceful shutdown) and wait for the exit, which is returned.
    /// Panics with the log tail if the process is still running after 30 s.
    pub async fn stop(&mut self) -> ExitStatus {
        let name = self.name().to_owned();
        let Some(mut process) = self.process.take() else {
            panic!("{name}: stop() on a server that is not running");
        };
        let sent = process.signal(Signal::SIGTERM).and_then(|()| {
            if process.is_paused() {
                process.signal(Signal::SIGCONT)
            } else {
                Ok(())
            }
        });
        if let Err(err) = sent {
            eprintln!("{name}: SIGTERM: {err:#}");
        }
        match process.wait_exit(STOP_TIMEOUT).await {
            Ok(Some(status)) => status,
            other => {
                process.kill_now();
                panic!(
                    "{name} did not exit within {STOP_TIMEOUT:?} of SIGTERM ({other:?}); killed it\n{}",
                    self.log_tail(60)
                )
            }
        }
    }

    /// SIGSTOP: the process freezes, its sockets stay open.
    pub fn pause(&mut self) {
        let name = self.name().to_owned();
        let process = self
            .process
            .as_mut()
            .unwrap_or_else(|| panic!("{name}: pause() on a server that is not running"));
        if let Err(err) = process.signal(Signal::SIGSTOP) {
            panic!("{name}: SIGSTOP: {err:#}");
        }
    }

    /// SIGCONT after [`Server::pause`].
    pub fn resume(&mut self) {
        let name = self.name().to_owned();
        let process = self
            .process
            .as_mut()
            .unwrap_or_else(|| panic!("{name}: resume() on a server that is not running"));
        if let Err(err) = process.signal(Signal::SIGCONT) {
            panic!("{name}: SIGCONT: {err:#}");
        }
    }

    /// Starts the process again with the same command line and data
    /// directory (SIGKILLing it first if it is still running). Panics if it
    /// does not come up, or comes up on other addresses than before: a
    /// server's raft address is its identity and must survive restarts.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.starts += 1;
        let launched = launch(
            &self.bin,
            &self.launcher,
            &self.args,
            self.dir.path(),
            self.start_timeout,
            self.starts,
        )
        .await;
        match launched {
            Ok((process, addresses)) => {
                self.process = Some(process);
                if addresses != self.addresses {
                    panic!(
                        "{} came back on other addresses after restart:\nbefore {:?}\nafter  {:?}",
                        self.addresses.name, self.addresses, addresses
                    );
                }
            }
            Err(err) => panic!(
                "{} did not restart: {err:#}\n{}",
                self.addresses.name,
                self.log_tail(60)
            ),
        }
    }

    /// The last `lines` lines of stderr (the agent's log) and of stdout, with headers.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail_of(&self.addresses.name, self.dir.path(), lines)
    }

    /// Whether stdout or stderr (of any start so far) contains `needle`.
    pub fn output_contains(&self, needle: &str) -> bool {
        [STDOUT_LOG, STDERR_LOG].iter().any(|file| {
            std::fs::read_to_string(self.dir.path().join(file))
                .map(|text| text.contains(needle))
                .unwrap_or(false)
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill_now();
        }
        if std::env::var_os(KEEP_DATA_ENV).is_some() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "kept data dir of {} at {}",
                self.addresses.name,
                self.dir.path().display()
            );
        }
    }
}

fn new_data_dir(name: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("sextant-test-{name}-"))
        .tempdir()
        .expect("creating a temporary data directory")
}

fn common_args(data_dir: &Path, bind_ip: Option<IpAddr>) -> Vec<String> {
    let mut args = vec!["--data-dir".to_owned(), data_dir.display().to_string()];
    let any_port = SocketAddr::new(bind_ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)), 0);
    for flag in [
        "--http-addr",
        "--grpc-addr",
        "--raft-addr",
        "--dns-addr",
        "--nacos-addr",
    ] {
        args.extend([flag.to_owned(), any_port.to_string()]);
    }
    args
}

fn log_tail_of(name: &str, dir: &Path, lines: usize) -> String {
    format!(
        "----- {name} stderr (last {lines} lines, {}) -----\n{}\n----- {name} stdout (last 10 lines) -----\n{}",
        dir.join(STDERR_LOG).display(),
        tail(&dir.join(STDERR_LOG), lines),
        tail(&dir.join(STDOUT_LOG), 10),
    )
}

/// Identity of one version of `addresses.json`: the agent writes it by rename
/// (a new inode) or in place (a new mtime), so a change in either means the
/// new process wrote it.
fn fingerprint(path: &Path) -> Option<(u64, i64, i64, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.ino(), meta.mtime(), meta.mtime_nsec(), meta.len()))
}

/// Spawns the agent and waits until it wrote a fresh `addresses.json` and its
/// HTTP listener answers.
async fn launch(
    bin: &Path,
    launcher: &[String],
    args: &[String],
    dir: &Path,
    timeout: Duration,
    start_number: u32,
) -> Result<(Supervised, Addresses)> {
    let addresses_path = dir.join(ADDRESSES_FILE);
    let before = fingerprint(&addresses_path);

    let mut command = match launcher.split_first() {
        Some((program, launcher_args)) => {
            let mut command = Command::new(program);
            command.args(launcher_args).arg(bin);
            command
        }
        None => Command::new(bin),
    };
    command.args(args).current_dir(dir);
    for (key, _) in std::env::vars_os() {
        // The agent may read its flags from SEXTANT_* variables; only the
        // command line the harness built may configure it.
        if key.to_string_lossy().starts_with("SEXTANT_") {
            command.env_remove(&key);
        }
    }
    if std::env::var_os("RUST_BACKTRACE").is_none() {
        command.env("RUST_BACKTRACE", "1");
    }
    let banner = format!(
        "start #{start_number}: {} {}",
        bin.display(),
        args.join(" ")
    );
    let mut process = Supervised::spawn(
        command,
        &dir.join(STDOUT_LOG),
        &dir.join(STDERR_LOG),
        &banner,
    )?;

    let started = Instant::now();
    let addresses = loop {
        if let Some(status) = process.try_wait()? {
            anyhow::bail!("the agent exited with {status} before writing {ADDRESSES_FILE}");
        }
        let now = fingerprint(&addresses_path);
        if now.is_some() && now != before {
            // A torn read of an in-place write fails to parse; poll again.
            if let Ok(text) = std::fs::read_to_string(&addresses_path) {
                if let Ok(addresses) = serde_json::from_str::<Addresses>(&text) {
                    break addresses;
                }
            }
        }
        if started.elapsed() >= timeout {
            anyhow::bail!("no fresh {} within {timeout:?}", addresses_path.display());
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    };

    let client = HttpClient::new(addresses.http);
    loop {
        if let Some(status) = process.try_wait()? {
            anyhow::bail!("the agent exited with {status} before HTTP answered");
        }
        // Any HTTP answer means the listener serves requests.
        match client.get("/v1/status/leader").await {
            Ok(_) => break,
            Err(err) if started.elapsed() >= timeout => {
                return Err(err.context(format!(
                    "HTTP on {} did not answer within {timeout:?}",
                    addresses.http
                )));
            }
            Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
    Ok((process, addresses))
}
