//! Finding the binaries and running `user-service` example processes.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// How long a user-service process may take to register.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// `target/debug` (or whatever profile directory holds this test binary).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/debug/deps/sdk-<hash> → target/debug
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in <profile>/deps")
        .to_owned()
}

/// The `sextant` binary: `SEXTANT_BIN`, or the one next to this build's outputs.
pub fn sextant_bin() -> PathBuf {
    let path = std::env::var_os("SEXTANT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| profile_dir().join("sextant"));
    assert!(
        path.exists(),
        "{} does not exist: run `cargo build -p sextant` (or set SEXTANT_BIN)",
        path.display()
    );
    path
}

pub fn example_bin(name: &str) -> PathBuf {
    let path = profile_dir().join("examples").join(name);
    assert!(
        path.exists(),
        "{} does not exist: `cargo test -p sextant-client` builds the examples",
        path.display()
    );
    path
}

/// One `user-service` example process. Killed when dropped.
pub struct UserService {
    pub id: String,
    pub addr: String,
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl UserService {
    /// Starts `user-service --id ID --ttl TTL --sextant ADDRS` and waits until
    /// it printed `registered ID`.
    pub async fn start(id: &str, ttl: Duration, sextant: &[String]) -> UserService {
        let mut child = Command::new(example_bin("user-service"))
            .args(["--id", id])
            .args(["--ttl", &format!("{}ms", ttl.as_millis())])
            .args(["--sextant", &sextant.join(",")])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawning the user-service example");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut service = UserService {
            id: id.to_owned(),
            addr: String::new(),
            child,
            stdout: BufReader::new(stdout).lines(),
        };
        let addr = service.expect_line("listening on ").await;
        service.addr = addr;
        service.expect_line(&format!("registered {id}")).await;
        service
    }

    /// Reads stdout until a line starting with `prefix`; returns the rest of it.
    pub async fn expect_line(&mut self, prefix: &str) -> String {
        let read = async {
            while let Some(line) = self.stdout.next_line().await.expect("reading stdout") {
                if let Some(rest) = line.strip_prefix(prefix) {
                    return rest.to_owned();
                }
            }
            panic!("user-service {} exited before printing {prefix:?}", self.id)
        };
        tokio::time::timeout(START_TIMEOUT, read)
            .await
            .unwrap_or_else(|_| panic!("user-service {} did not print {prefix:?} in time", self.id))
    }

    /// SIGKILL: the process gets no chance to deregister.
    pub async fn kill(&mut self) {
        self.child.start_kill().expect("SIGKILL");
        self.child.wait().await.expect("reaping user-service");
    }

    /// SIGTERM, then waits for the exit (after it deregistered).
    pub async fn terminate(&mut self) {
        let pid = self.child.id().expect("running") as i32;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("SIGTERM");
        self.expect_line(&format!("deregistered {}", self.id)).await;
        let status = tokio::time::timeout(START_TIMEOUT, self.child.wait())
            .await
            .expect("user-service exits after SIGTERM")
            .expect("reaping user-service");
        assert!(
            status.success(),
            "user-service {} exited with {status}",
            self.id
        );
    }
}
