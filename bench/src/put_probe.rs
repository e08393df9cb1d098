//! `sextant-bench put-probe` (hidden): one put workload against a fresh
//! Sextant cluster, with each server's Raft and storage counters read from
//! `/metrics` before and after, so the entries written per fsync and the
//! share of forwarded writes can be told apart. A diagnostic for the write
//! path; `compare etcd` is the benchmark.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use clap::Args;
use testkit::{Cluster, ClusterOpts};

use crate::etcd_load::{self, Connections};
use crate::report::Section;

#[derive(Args)]
pub struct PutProbeArgs {
    /// Servers in the cluster.
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// How long each run lasts.
    #[arg(long, default_value = "4s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Runs, each followed by its counters.
    #[arg(long, default_value_t = 2)]
    repeats: usize,
    /// Send every put to the leader instead of spreading clients over all servers.
    #[arg(long)]
    leader_only: bool,
    /// Keep the cluster running this long after the runs (to attach perf).
    #[arg(long, value_parser = humantime::parse_duration)]
    linger: Option<Duration>,
}

/// The counters compared before and after a run.
const COUNTERS: [&str; 4] = [
    "sextant_raft_last_log_index",
    "sextant_storage_fsyncs_total",
    "sextant_storage_bytes_written_total",
    "sextant_storage_fsync_seconds_sum",
];

async fn scrape(cluster: &Cluster) -> Vec<BTreeMap<&'static str, f64>> {
    let mut all = Vec::new();
    for server in cluster.servers() {
        let text = match server.http().get("/metrics").await {
            Ok(reply) => reply.text(),
            Err(_) => String::new(),
        };
        let mut values = BTreeMap::new();
        for name in COUNTERS {
            let value = text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .find_map(|l| {
                    let (key, value) = l.rsplit_once(' ')?;
                    let bare = key.split('{').next()?;
                    (bare == name).then(|| value.parse::<f64>().ok())?
                })
                .unwrap_or(0.0);
            values.insert(name, value);
        }
        all.push(values);
    }
    all
}

pub async fn run(bin: &Path, args: PutProbeArgs) -> anyhow::Result<Section> {
    let cluster = Cluster::start(bin, args.members, ClusterOpts::default()).await;
    let leader = cluster.leader_index().await;
    let endpoints: Vec<String> = cluster
        .servers()
        .iter()
        .enumerate()
        .filter(|(i, _)| !args.leader_only || *i == leader)
        .map(|(_, s)| format!("http://{}", s.grpc_addr()))
        .collect();
    let pids: Vec<String> = cluster
        .servers()
        .iter()
        .map(|s| s.pid().map_or("-".into(), |p| p.to_string()))
        .collect();
    eprintln!("leader is server {leader}; pids {pids:?}");
    let conns = Connections::open(&endpoints).await?;
    for run in 1..=args.repeats {
        let before = scrape(&cluster).await;
        let rate = etcd_load::put(&conns, args.clients, args.duration, 256).await;
        let after = scrape(&cluster).await;
        eprintln!(
            "run {run}: {:.0} puts/s, p50 {:?}, p99 {:?}, errors {}",
            rate.ops_per_sec, rate.p50, rate.p99, rate.errors
        );
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            let d = |name: &str| a[name] - b[name];
            let fsyncs = d("sextant_storage_fsyncs_total");
            eprintln!(
                "  server {i}{}: entries {:.0}, fsyncs {fsyncs:.0}, entries/fsync {:.1}, mean fsync {:.2} ms",
                if i == leader { " (leader)" } else { "" },
                d("sextant_raft_last_log_index"),
                d("sextant_raft_last_log_index") / fsyncs.max(1.0),
                1000.0 * d("sextant_storage_fsync_seconds_sum") / fsyncs.max(1.0),
            );
        }
    }
    if let Some(linger) = args.linger {
        eprintln!("lingering {linger:?}");
        tokio::time::sleep(linger).await;
    }
    Ok(Section {
        name: "put-probe",
        markdown: String::new(),
    })
}
