//! The etcd acceptance check (`shared/tools/etcdctl_checks.sh`, driving the
//! real etcdctl 3.4) against `sextant agent --dev`, and against a 3-server
//! cluster through each server's own gRPC endpoint: leader and followers
//! must all answer like etcd. Every PASS/FAIL line of the script is one check.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use testkit::compat::{Report, Suite};
use testkit::{Cluster, ClusterOpts, Server};
use tokio::process::Command;

use super::{wait_leader, BIN};

pub const SUITE: Suite = Suite {
    id: "etcdctl",
    client: "etcdctl",
    scope: "`shared/tools/etcdctl_checks.sh` (KV, Txn, leases, watch, compaction, errors, \
            member list, status) against a dev agent and through each member of a 3-server cluster",
};

/// The script sleeps for lease expiry and watch setup; it takes about 20 s.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

fn checks_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/etcdctl_checks.sh")
}

pub async fn run() -> Report {
    let mut report = Report::new(SUITE);
    if let Err(err) = run_all(&mut report).await {
        report.aborted(&err);
    }
    report
}

async fn run_all(report: &mut Report) -> anyhow::Result<()> {
    let dev = Server::start_dev(BIN).await;
    wait_leader(&dev).await;
    run_checks(report, "dev agent", dev.grpc_addr()).await?;
    drop(dev);

    let cluster = Cluster::start(BIN, 3, ClusterOpts::default()).await;
    for server in cluster.servers() {
        let label = format!("cluster member {}", server.name());
        run_checks(report, &label, server.grpc_addr()).await?;
    }
    Ok(())
}

/// Runs the script against `endpoint` and records each of its checks as
/// `<label>: <check>`.
async fn run_checks(report: &mut Report, label: &str, endpoint: SocketAddr) -> anyhow::Result<()> {
    let script = checks_script();
    if !script.exists() {
        bail!("missing {}", script.display());
    }
    let run = Command::new("bash")
        .arg(&script)
        .arg(endpoint.to_string())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, run)
        .await
        .with_context(|| {
            format!("{label}: etcdctl_checks.sh did not finish in {SCRIPT_TIMEOUT:?}")
        })?
        .with_context(|| format!("{label}: cannot run {}", script.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("===== {label}: etcdctl_checks.sh {endpoint} =====\n{stdout}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !stderr.trim().is_empty() {
        println!("----- stderr -----\n{stderr}");
    }

    let mut counted = 0;
    let mut lines = stdout.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(version) = line.strip_prefix("# etcdctl: etcdctl version: ") {
            report.version = version.trim().to_owned();
        } else if let Some(name) = line.strip_prefix("PASS  ") {
            report.pass(format!("{label}: {name}"));
            counted += 1;
        } else if let Some(name) = line.strip_prefix("FAIL  ") {
            // The indented lines after a FAIL say why.
            let mut detail = Vec::new();
            while let Some(more) = lines.next_if(|l| l.starts_with("      ")) {
                detail.push(more.trim());
            }
            report.fail(format!("{label}: {name}"), detail.join(" | "));
            counted += 1;
        }
    }
    let summary = stdout.lines().last().unwrap_or_default();
    if counted == 0 || !output.status.success() && summary.ends_with(" 0 failed") {
        report.fail(
            format!("{label}: the script ran"),
            format!("exit {:?}, summary {summary:?}", output.status.code()),
        );
    }
    Ok(())
}
