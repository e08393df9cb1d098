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

mod etcdctl;
mod go_clientv3;
mod matrix;
mod python_etcd3;
mod report;
mod rust_etcd_client;

use std::future::Future;
use std::time::{Duration, Instant};

use report::{Report, Suite};
use testkit::{wait_for, Server};

const BIN: &str = env!("CARGO_BIN_EXE_sextant");

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

/// Runs a suite in a task of its own, so a panic (a harness timeout, say)
/// becomes a failed check of that suite instead of ending the whole run.
async fn guarded<F>(suite: Suite, run: F) -> Report
where
    F: Future<Output = Report> + Send + 'static,
{
    let started = Instant::now();
    let report = match tokio::spawn(run).await {
        Ok(report) => report,
        Err(err) => {
            let mut report = Report::new(suite);
            let why = match err.try_into_panic() {
                Ok(panic) => panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| String::from("panicked")),
                Err(err) => err.to_string(),
            };
            report.fail("suite ran to the end", why);
            report
        }
    };
    println!(
        "[{}] {}/{} checks passed in {:?}",
        suite.id,
        report.passed(),
        report.checks.len(),
        started.elapsed()
    );
    report
}

fn selected(suite: Suite) -> bool {
    match std::env::var("SEXTANT_COMPAT_ONLY") {
        Ok(only) => only.split(',').any(|id| id.trim() == suite.id),
        Err(_) => true,
    }
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

    let dir = report::results_dir();
    for report in &reports {
        match report.write_to(&dir) {
            Ok(path) => println!("wrote {}", path.display()),
            Err(err) => panic!("cannot write the results of {}: {err:#}", report.id),
        }
    }

    let failed: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.checks
                .iter()
                .filter(|c| !c.passed)
                .map(move |c| format!("{}: {}: {}", r.id, c.name, c.detail))
        })
        .collect();

    let readme = if std::env::var_os("SEXTANT_COMPAT_ONLY").is_none() {
        matrix::check_readme(&reports)
    } else {
        println!("SEXTANT_COMPAT_ONLY is set: the README is neither compared nor updated");
        Ok(())
    };
    assert!(
        failed.is_empty() && readme.is_ok(),
        "{} compatibility checks failed:\n{}\n{}",
        failed.len(),
        failed.join("\n"),
        readme.err().unwrap_or_default()
    );
}
