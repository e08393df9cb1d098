//! The Python etcd3 client (Debian's python3-etcd3, under `/usr/bin/python3`)
//! against a 3-server cluster: `python/etcd3_interop.py` runs the checks and
//! prints one line per check; when it prints `kill-leader`, this side
//! SIGKILLs the leader and answers `killed` on its stdin.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, Context};
use testkit::compat::{Report, Suite};
use testkit::{Cluster, ClusterOpts};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use super::BIN;

pub const SUITE: Suite = Suite {
    id: "python-etcd3",
    client: "Python etcd3",
    scope: "KV, Txn, leases (refresh, TimeToLive, revoke, expiry), a lock from lease + Txn \
            (`client.lock`, and a Txn on the same key for contention), watch with history; a watch \
            across a leader SIGKILL (on a follower, and resumed on another server): no gap, no \
            duplicate",
};

/// Debian's interpreter: the one python3-etcd3 is installed for.
const PYTHON: &str = "/usr/bin/python3";
/// The whole script, lease expiries and a failover included.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

pub async fn run() -> Report {
    let mut report = Report::new(SUITE);
    if let Err(err) = run_all(&mut report).await {
        report.aborted(&err);
    }
    report
}

async fn run_all(report: &mut Report) -> anyhow::Result<()> {
    let mut cluster = Cluster::start(BIN, 3, ClusterOpts::default()).await;
    let leader = cluster.leader_index().await;
    let followers = cluster.follower_indexes().await;
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/etcd_compat/python/etcd3_interop.py");
    let mut command = Command::new(PYTHON);
    command
        .arg(&script)
        .arg("--leader")
        .arg(cluster.server(leader).grpc_addr().to_string());
    for &i in &followers {
        command
            .arg("--follower")
            .arg(cluster.server(i).grpc_addr().to_string());
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {PYTHON} {}", script.display()))?;
    let mut stdin = child.stdin.take().context("stdin is piped")?;
    let stdout = child.stdout.take().context("stdout is piped")?;
    let stderr = child.stderr.take().context("stderr is piped")?;
    let stderr = tokio::spawn(async move {
        let mut text = String::new();
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            text.push_str(&line);
            text.push('\n');
        }
        text
    });

    let mut lines = BufReader::new(stdout).lines();
    let drive = async {
        let mut summary = None;
        while let Some(line) = lines.next_line().await? {
            println!("[python-etcd3] script: {line}");
            if let Some(version) = line.strip_prefix("client python-etcd3 ") {
                report.version = version.trim().to_owned();
            } else if let Some(rest) = line.strip_prefix("check ") {
                if let Some(name) = rest.strip_suffix(" ok") {
                    report.pass(name);
                } else if let Some((name, why)) = rest.split_once(" fail ") {
                    report.fail(name, why);
                } else {
                    report.fail(rest, "unparsed check line");
                }
            } else if line == "kill-leader" {
                println!(
                    "[python-etcd3] SIGKILL leader {}",
                    cluster.server(leader).name()
                );
                cluster.server_mut(leader).kill().await;
                stdin.write_all(b"killed\n").await?;
                stdin.flush().await?;
            } else if line.ends_with(" failed") {
                summary = Some(line);
            }
        }
        anyhow::Ok(summary)
    };
    let summary = tokio::time::timeout(SCRIPT_TIMEOUT, drive)
        .await
        .map_err(|_| anyhow!("the script did not finish in {SCRIPT_TIMEOUT:?}"))??;
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await??;
    let stderr = stderr.await.unwrap_or_default();
    let finished = match summary {
        Some(_) if status.success() => Ok(()),
        _ => Err(format!(
            "exit {status}, summary {summary:?}; stderr:\n{stderr}"
        )),
    };
    if finished.is_err() || !report.all_passed() {
        println!("[python-etcd3] stderr:\n{stderr}");
    }
    report.step("the script ran to the end", finished)?;
    Ok(())
}
