//! The etcd acceptance check (`shared/tools/etcdctl_checks.sh`, driving the
//! real etcdctl 3.4) against `sextant agent --dev`, and against a 3-server
//! cluster through each server's own gRPC endpoint: leader and followers
//! must all answer like etcd.

use std::path::PathBuf;
use std::time::Duration;

use testkit::{wait_for, Cluster, ClusterOpts, Server};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sextant");
/// The script sleeps for lease expiry and watch setup; it takes about 20 s.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

fn checks_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/etcdctl_checks.sh")
}

/// Runs the script against `endpoint`, prints its report, and asserts every
/// check passed.
async fn run_checks(label: &str, endpoint: std::net::SocketAddr) {
    let script = checks_script();
    assert!(script.exists(), "missing {}", script.display());
    let run = Command::new("bash")
        .arg(&script)
        .arg(endpoint.to_string())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(SCRIPT_TIMEOUT, run).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => panic!("{label}: cannot run {}: {e}", script.display()),
        Err(_) => panic!("{label}: etcdctl_checks.sh did not finish in {SCRIPT_TIMEOUT:?}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("===== {label}: etcdctl_checks.sh {endpoint} =====\n{stdout}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !stderr.trim().is_empty() {
        println!("----- stderr -----\n{stderr}");
    }
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        output.status.success() && summary.ends_with(" 0 failed"),
        "{label}: etcdctl checks failed ({summary})"
    );
}

async fn wait_leader(server: &Server) {
    wait_for(
        "the agent to know a leader",
        Duration::from_secs(30),
        || async {
            match server.http().status_leader().await {
                Ok(leader) if !leader.is_empty() => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn etcdctl_checks_pass_against_a_dev_agent() {
    let dev = Server::start_dev(BIN).await;
    wait_leader(&dev).await;
    run_checks("dev", dev.grpc_addr()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn etcdctl_checks_pass_through_every_member_of_a_cluster() {
    let cluster = Cluster::start(BIN, 3, ClusterOpts::default()).await;
    for server in cluster.servers() {
        let label = format!("cluster member {}", server.name());
        run_checks(&label, server.grpc_addr()).await;
    }
}
