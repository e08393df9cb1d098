//! etcd compatibility with real clients, and the README's etcd compatibility
//! matrix generated from this run.
//!
//! One test runs every client suite — etcdctl (the acceptance script), Go
//! clientv3 (the article's registration), Python etcd3 and Rust etcd-client,
//! each against its own servers — records each suite's checks in
//! `target/compat/etcd-<suite>.json`, renders the matrix and compares it with
//! the README between `<!-- compat:etcd:start -->` and `<!-- compat:etcd:end -->`.
//!
//! - `UPDATE_README=1` rewrites that README section instead of comparing.
//! - `SEXTANT_COMPAT_ONLY=python-etcd3,go-clientv3` runs only those suites
//!   (and leaves the README alone).
//!
//! Reports, rendering and the README comparison are `testkit::compat`'s,
//! shared with the Consul matrix (`tests/it/consul_compat.rs`).

mod etcdctl;
mod go_clientv3;
mod python_etcd3;
mod rust_etcd_client;

use std::path::{Path, PathBuf};
use std::time::Duration;

use testkit::compat::{guarded, selected, Matrix};
use testkit::{wait_for, Server};

const BIN: &str = env!("CARGO_BIN_EXE_sextant");

const MATRIX: Matrix = Matrix {
    name: "etcd",
    intro: "etcd v3 gRPC on `--grpc-addr` — KV (Range, Put, DeleteRange, Txn, Compact), Watch, \
            Lease, Cluster, Maintenance; the catalog read-only under `/sextant/services/` (see \
            [docs/etcd.md](docs/etcd.md)) — checked with real clients by \
            `crates/sextant/tests/it/etcd_compat`:",
    client_heading: "etcd client",
    test: "etcd_compat",
    target_tmpdir: env!("CARGO_TARGET_TMPDIR"),
};

/// A directory of this test run's own under `target/tmp`.
fn scratch_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
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
async fn etcd_clients_pass_and_the_readme_matrix_is_current() {
    // Two lanes: the etcdctl script (about 80 s) beside the three client
    // suites one after another; each suite has servers of its own.
    let script_lane = async {
        let mut reports = Vec::new();
        if selected(etcdctl::SUITE) {
            reports.push(guarded(etcdctl::SUITE, etcdctl::run()).await);
        }
        reports
    };
    let client_lane = async {
        let mut reports = Vec::new();
        if selected(go_clientv3::SUITE) {
            reports.push(guarded(go_clientv3::SUITE, go_clientv3::run()).await);
        }
        if selected(python_etcd3::SUITE) {
            reports.push(guarded(python_etcd3::SUITE, python_etcd3::run()).await);
        }
        if selected(rust_etcd_client::SUITE) {
            reports.push(guarded(rust_etcd_client::SUITE, rust_etcd_client::run()).await);
        }
        reports
    };
    let (mut reports, clients) = tokio::join!(script_lane, client_lane);
    reports.extend(clients);

    MATRIX.conclude(&reports);
}
