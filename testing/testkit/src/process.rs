//! Child processes: spawning with captured output, signals, reaping without
//! blocking the runtime, and a watchdog so no child outlives the test process.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::wait::POLL_INTERVAL;

/// A running child plus the watchdog that kills it if the test process dies
/// without running destructors (a timeout's SIGKILL, say).
#[derive(Debug)]
pub(crate) struct Supervised {
    child: Child,
    watchdog: Option<Child>,
    paused: bool,
}

impl Supervised {
    /// Spawns `command` with stdout and stderr appended to the given files,
    /// after writing `banner` to both so restarts are easy to tell apart.
    pub(crate) fn spawn(
        mut command: Command,
        stdout_path: &Path,
        stderr_path: &Path,
        banner: &str,
    ) -> Result<Supervised> {
        let stdout = open_log(stdout_path, banner)?;
        let stderr = open_log(stderr_path, banner)?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr));
        let child = command
            .spawn()
            .with_context(|| format!("spawning {command:?}"))?;
        let watchdog = spawn_watchdog(child.id());
        Ok(Supervised {
            child,
            watchdog,
            paused: false,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused
    }

    pub(crate) fn signal(&mut self, signal: Signal) -> Result<()> {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).context("pid out of range")?);
        kill(pid, signal).with_context(|| format!("sending {signal} to pid {pid}"))?;
        match signal {
            Signal::SIGSTOP => self.paused = true,
            Signal::SIGCONT => self.paused = false,
            _ => {}
        }
        Ok(())
    }

    /// Reaps the child if it has exited; never blocks.
    pub(crate) fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        let status = self.child.try_wait().context("waiting for child")?;
        if status.is_some() {
            self.stop_watchdog();
        }
        Ok(status)
    }

    /// Waits up to `timeout` for the child to exit, polling so the async
    /// runtime is never blocked. `None` if it is still running.
    pub(crate) async fn wait_exit(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if start.elapsed() >= timeout {
                return Ok(None);
            }
            tokio::time::sleep(POLL_INTERVAL / 5).await;
        }
    }

    /// SIGKILL and reap, synchronously; for destructors.
    pub(crate) fn kill_now(&mut self) {
        // Errors here mean the child is already gone; nothing is left to do.
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stop_watchdog();
    }

    fn stop_watchdog(&mut self) {
        // The watchdog must be gone before the child's pid can be reused, so
        // it is stopped as soon as the child is reaped.
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// A shell loop that SIGKILLs `child` once this test process is gone. It is
/// best effort: if `sh` is missing the test still runs, only without it.
fn spawn_watchdog(child: u32) -> Option<Child> {
    let script = r#"while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 1; done; kill -KILL "$2" 2>/dev/null"#;
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sextant-test-watchdog")
        .arg(std::process::id().to_string())
        .arg(child.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

fn open_log(path: &Path, banner: &str) -> Result<File> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(file, "===== {banner} =====")
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(file)
}

/// The last `lines` lines of a file (reads at most its last 256 KiB).
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    const MAX_BYTES: u64 = 256 * 1024;
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(MAX_BYTES)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(err) => format!("<cannot read {}: {err}>", path.display()),
    }
}
