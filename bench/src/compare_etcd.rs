//! `sextant-bench compare etcd`: the same etcd v3 workloads against a
//! Sextant cluster and a real etcd cluster of the same size, both on
//! loopback with every write fsync'd by a majority, alternating between the
//! two on every repeat so that both see the same machine noise.

use std::path::Path;
use std::time::{Duration, Instant};

use clap::Args;
use testkit::{Cluster, ClusterOpts};

use crate::compare_common::{alternate, ms, rss_kib_of, Better, Row};
use crate::etcd_cluster::EtcdCluster;
use crate::etcd_load::{self, Connections};
use crate::report::{table, Section};

#[derive(Args)]
pub struct CompareEtcdArgs {
    /// Servers per cluster (1 or 3).
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// How long each run of a workload lasts.
    #[arg(long, default_value = "4s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Runs per workload and system; medians are reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Concurrent clients of the put workloads.
    #[arg(long, value_delimiter = ',', default_value = "1,64,256")]
    put_clients: Vec<usize>,
    /// Concurrent clients of the read, lease and keep-alive workloads.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Watchers of the watch-latency workload, and the put rate they follow.
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
    #[arg(long, default_value_t = 1000)]
    watch_rate: u32,
    /// Leader kills per system; the median time until a write succeeds again is reported.
    #[arg(long, default_value_t = 5)]
    failover_rounds: usize,
}

/// The two systems under test.
enum System {
    Sextant(Cluster),
    Etcd(EtcdCluster),
}

impl System {
    fn endpoints(&self) -> Vec<String> {
        match self {
            System::Sextant(c) => c
                .servers()
                .iter()
                .map(|s| format!("http://{}", s.grpc_addr()))
                .collect(),
            System::Etcd(e) => e.endpoints(),
        }
    }

    fn rss_kib(&self) -> u64 {
        let pids: Vec<u32> = match self {
            System::Sextant(c) => c.servers().iter().filter_map(|s| s.pid()).collect(),
            System::Etcd(e) => e.pids(),
        };
        pids.into_iter().map(rss_kib_of).sum()
    }

    /// Kills the leader, times the first write served through another
    /// server, then restarts the killed one and waits until it is back.
    async fn failover(&mut self) -> anyhow::Result<Duration> {
        match self {
            System::Sextant(cluster) => {
                let leader = cluster.leader_index().await;
                let other = (0..cluster.len()).find(|&i| i != leader).unwrap_or(0);
                let endpoint = format!("http://{}", cluster.server(other).grpc_addr());
                cluster.server_mut(leader).kill().await;
                let took = etcd_load::first_write_after(&endpoint, Instant::now()).await?;
                cluster.restart(&[leader]).await;
                cluster.wait_converged().await;
                cluster.wait_caught_up().await;
                Ok(took)
            }
            System::Etcd(cluster) => {
                let leader = cluster.leader_index().await?;
                let other = if leader == 0 { 1 } else { 0 };
                let endpoint = cluster.member_endpoint(other);
                cluster.kill(leader).await;
                let took = etcd_load::first_write_after(&endpoint, Instant::now()).await?;
                cluster.restart(leader).await?;
                Ok(took)
            }
        }
    }
}

pub async fn run(bin: &Path, args: CompareEtcdArgs) -> anyhow::Result<Section> {
    anyhow::ensure!(
        args.members == 1 || args.members == 3,
        "--members must be 1 or 3"
    );
    eprintln!(
        "starting {} Sextant servers and {} etcd members",
        args.members, args.members
    );
    let mut systems = [
        System::Sextant(Cluster::start(bin, args.members, ClusterOpts::default()).await),
        System::Etcd(EtcdCluster::start(args.members).await?),
    ];
    // Idle memory, before any load.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut idle = Row::new(
        format!("idle RSS, all {} servers", args.members),
        "MiB",
        Better::Lower,
    );
    idle.sextant.push(systems[0].rss_kib() as f64 / 1024.0);
    idle.baseline.push(systems[1].rss_kib() as f64 / 1024.0);

    let mut rows = Vec::new();
    let mut connections = Vec::new();
    for system in &systems {
        connections.push(Connections::open(&system.endpoints()).await?);
    }
    let d = args.duration;
    let total_runs = args.repeats;
    for &clients in &args.put_clients {
        let mut row = Row::new(
            format!("put 256 B, {clients} clients"),
            "ops/s",
            Better::Higher,
        );
        alternate(&mut row, &connections, &NAMES, total_runs, |c| async move {
            Ok(etcd_load::put(&c, clients, d, 256).await)
        })
        .await?;
        rows.push(row);
    }
    for (name, serializable) in [("linearizable", false), ("serializable", true)] {
        let clients = args.clients;
        let mut row = Row::new(
            format!("{name} range, {clients} clients"),
            "ops/s",
            Better::Higher,
        );
        alternate(&mut row, &connections, &NAMES, total_runs, |c| async move {
            Ok(etcd_load::range(&c, clients, d, serializable).await)
        })
        .await?;
        rows.push(row);
    }
    {
        let clients = args.clients;
        let mut row = Row::new(
            format!("lease grant, {clients} clients"),
            "ops/s",
            Better::Higher,
        );
        alternate(&mut row, &connections, &NAMES, total_runs, |c| async move {
            Ok(etcd_load::lease_grant(&c, clients, d).await)
        })
        .await?;
        rows.push(row);
        let mut row = Row::new(
            format!("lease keep-alive, {clients} streams"),
            "ops/s",
            Better::Higher,
        );
        alternate(&mut row, &connections, &NAMES, total_runs, |c| async move {
            etcd_load::keep_alive(&c, clients, d).await
        })
        .await?;
        rows.push(row);
    }
    {
        let title = format!(
            "watch event latency, {} watchers, {} puts/s",
            args.watchers, args.watch_rate
        );
        let mut p50 = Row::new(format!("{title}: p50"), "ms", Better::Lower);
        let mut p99 = Row::new(format!("{title}: p99"), "ms", Better::Lower);
        for repeat in 0..total_runs {
            for (i, c) in connections.iter().enumerate() {
                let (a, b, n) =
                    etcd_load::watch_latency(c, args.watchers, args.watch_rate, d).await?;
                eprintln!(
                    "  {} run {}/{}: watch p50 {a:?} p99 {b:?} ({n} events)",
                    NAMES[i],
                    repeat + 1,
                    total_runs
                );
                p50.push(i, ms(a));
                p99.push(i, ms(b));
            }
        }
        rows.push(p50);
        rows.push(p99);
    }
    if args.members > 1 && args.failover_rounds > 0 {
        let mut row = Row::new(
            format!(
                "leader SIGKILL → writes served (median of {})",
                args.failover_rounds
            ),
            "ms",
            Better::Lower,
        );
        for round in 0..args.failover_rounds {
            for (i, system) in systems.iter_mut().enumerate() {
                let took = system.failover().await?;
                eprintln!(
                    "  {} failover {}/{}: {took:?}",
                    NAMES[i],
                    round + 1,
                    args.failover_rounds
                );
                row.push(i, ms(took));
            }
        }
        rows.push(row);
    }
    let mut loaded = Row::new(
        format!("RSS after the workloads, all {} servers", args.members),
        "MiB",
        Better::Lower,
    );
    loaded.sextant.push(systems[0].rss_kib() as f64 / 1024.0);
    loaded.baseline.push(systems[1].rss_kib() as f64 / 1024.0);
    rows.push(idle);
    rows.push(loaded);

    let cells: Vec<Vec<String>> = rows.iter().map(Row::cells).collect();
    let markdown = format!(
        "{} Sextant servers vs {} etcd {} members on loopback (one machine: {}), election timeout 1 s \
         on both, every write fsync'd by a majority on both; the same etcd v3 gRPC requests from one \
         load generator, clients spread over all servers; {} per run, median of {} runs alternating \
         between the two. The last column is Sextant's advantage (above 1× is better for Sextant).\n\n{}",
        args.members,
        args.members,
        etcd_version(),
        crate::machine::describe(),
        humantime::format_duration(d),
        total_runs,
        table(&["workload", "sextant", "etcd", "ratio"], &cells)
    );
    Ok(Section {
        name: if args.members == 1 {
            "compare-etcd-1"
        } else {
            "compare-etcd"
        },
        markdown,
    })
}

/// How progress lines name the two systems, in `System` order.
const NAMES: [&str; 2] = ["sextant", "etcd"];

fn etcd_version() -> String {
    std::process::Command::new("/usr/bin/etcd")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|v| v.lines().next().map(|l| l.replace("etcd Version: ", "")))
        .unwrap_or_else(|| "unknown".into())
}
