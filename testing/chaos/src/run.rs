//! One run: cluster up, load and faults, heal, final reads, whole-cluster
//! crash and restart, reads again, check, report.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use testkit::{Cluster, ClusterOpts, ServerOpts};
use tokio::sync::watch;

use crate::checker::{self, wgl::Verdict};
use crate::faults::{FaultKind, Injector};
use crate::history::{self, Operation, Recorder};
use crate::nacos_holder::NacosInstance;
use crate::native_holder::NativeInstance;
use crate::network::Network;
use crate::recovery_check;
use crate::ttl_check::{self, ConsulTtlCheck, EtcdLease, HoldConfig, HoldLog};
use crate::watch_check;
use crate::workload::{self, Endpoint, LoadConfig, Process};

/// The process number of the harness's reads after the load, and after the restart.
const FINAL_READER: u32 = u32::MAX - 1;
const AFTER_RESTART_READER: u32 = u32::MAX;

/// Search steps per key before the checker gives up on it.
const CHECK_BUDGET: u64 = 20_000_000;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The seed everything random derives from (default: random, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// How long the load and the faults run, e.g. 60s.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Faults to inject, comma-separated: kill, restart, pause, partition,
    /// partition-leader, disk.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "kill,pause,partition,restart"
    )]
    faults: Vec<FaultKind>,
    /// Cluster size.
    #[arg(long, default_value_t = 3)]
    servers: usize,
    /// Concurrent client processes.
    #[arg(long, default_value_t = 8)]
    clients: u32,
    /// Extra clients that register, deregister and list service instances
    /// through the Consul catalog (checked: no deregistered instance reappears).
    #[arg(long, default_value_t = 2)]
    registry_clients: u32,
    /// Hold no TTL checks through the faults, only the etcd lease. By
    /// default a Consul TTL check, a Nacos ephemeral instance kept by beats
    /// and a native instance kept by KeepAlive are held too, each checked
    /// like the lease: none may expire while its renewals are acknowledged.
    #[arg(long)]
    no_ttl_checks: bool,
    /// Keys the clients share (few keys: operations conflict).
    #[arg(long, default_value_t = 5)]
    keys: usize,
    /// The servers' election timeout.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    election_timeout: Duration,
    /// How long a client operation may take before it is indeterminate.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    op_timeout: Duration,
    /// Where the history and (on failure) the servers' logs go; kept when
    /// given. Default: a fresh directory under the temp dir, removed after a
    /// clean run.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Appends this run's figures as one JSON line to this file (see the
    /// `readme` subcommand).
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// Runs the servers with a deliberately planted bug, which the checker
    /// must catch: `stale-reads` serves linearizable reads locally, without
    /// the read barrier; `lost-writes` acknowledges log appends before they
    /// are fsynced; `ttl-early-expiry` expires TTL checks half-way through
    /// their TTL (caught by the TTL holders, so not with --no-ttl-checks).
    #[arg(long, value_parser = ["stale-reads", "lost-writes", "ttl-early-expiry"])]
    planted_bug: Option<String>,
    /// The `sextant` binary (default: the one beside this binary).
    #[arg(long)]
    sextant_bin: Option<PathBuf>,
}

/// The figures of one run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    pub seed: u64,
    pub duration_secs: u64,
    pub servers: usize,
    pub faults_enabled: Vec<String>,
    pub planted_bug: Option<String>,
    pub ops: u64,
    pub indeterminate: u64,
    pub faults: u64,
    pub anomalies: u64,
    /// Keys the checker could not decide within its budget.
    pub undecided: u64,
    /// Events the watcher received under faults (checked against the history).
    #[serde(default)]
    pub watch_events: u64,
    /// Acknowledged renewals of the etcd lease held under faults (before
    /// the TTL holders were on by default, those of the Consul TTL check
    /// with `--ttl-checks` too).
    #[serde(default)]
    pub lease_renewals: u64,
    /// Acknowledged renewals of the TTL checks held under faults (Consul
    /// TTL check, Nacos beats, native keep-alives); 0 in older summaries.
    #[serde(default)]
    pub ttl_renewals: u64,
}

pub async fn run(args: RunArgs) -> anyhow::Result<Summary> {
    anyhow::ensure!(
        args.servers == 3 || args.servers == 5,
        "--servers must be 3 or 5"
    );
    anyhow::ensure!(
        args.keys > 0 && args.clients > 0,
        "--keys and --clients must be positive"
    );
    anyhow::ensure!(
        !(args.no_ttl_checks && args.planted_bug.as_deref() == Some("ttl-early-expiry")),
        "--planted-bug ttl-early-expiry needs the TTL holders: leave out --no-ttl-checks"
    );
    let seed = args.seed.unwrap_or_else(|| rand::rng().random());
    let fault_names: Vec<String> = args.faults.iter().map(|k| k.name().to_owned()).collect();
    println!(
        "sextant-chaos seed={seed} duration={:?} servers={} clients={}+{} keys={} faults={:?}{}",
        args.duration,
        args.servers,
        args.clients,
        args.registry_clients,
        args.keys,
        fault_names,
        args.planted_bug
            .as_deref()
            .map(|b| format!(" planted-bug={b}"))
            .unwrap_or_default()
    );
    let replay = replay_command(seed);
    println!("replay: {replay}");
    let mut rng = StdRng::seed_from_u64(seed);
    let bin = testkit::sextant_beside_me(args.sextant_bin.clone())?;
    let (out, keep_out) = match &args.out {
        Some(dir) => (dir.clone(), true),
        None => (
            std::env::temp_dir().join(format!("sextant-chaos-{seed}-{}", std::process::id())),
            false,
        ),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    let mut network = if args.faults.iter().any(|k| k.needs_network()) {
        Some(Network::create(args.servers).context(
            "partitions need network namespaces (root and iproute2); leave out partition faults to run without",
        )?)
    } else {
        None
    };
    let extra_args = server_args(&args);
    let each: Vec<ServerOpts> = (0..args.servers)
        .map(|i| ServerOpts {
            election_timeout: Some(args.election_timeout),
            extra_args: extra_args.clone(),
            bind_ip: network.as_ref().map(|n| n.server_ip(i)),
            launcher: network.as_ref().map(|n| n.launcher(i)).unwrap_or_default(),
            ..ServerOpts::default()
        })
        .collect();
    let mut cluster = Cluster::start_with(&bin, &each, ClusterOpts::default()).await;
    let endpoints: Vec<Endpoint> = cluster
        .servers()
        .iter()
        .map(|s| Endpoint {
            http: s.http_addr(),
            grpc: s.grpc_addr(),
            nacos: s.nacos_addr(),
        })
        .collect();
    let keys: Vec<String> = (0..args.keys).map(|i| format!("chaos/k{i}")).collect();
    println!("cluster up: {}", cluster.describe().await.trim_end());

    let recorder = Arc::new(Recorder::new());
    let exercised = exercise(
        &args,
        &mut cluster,
        network.as_mut(),
        &mut rng,
        &endpoints,
        &keys,
        &recorder,
    )
    .await;
    let Exercised {
        faults,
        before_crash,
        watch,
        held,
        recovery,
    } = match exercised {
        Ok(figures) => figures,
        Err(err) => {
            // Keep what there is: the servers' data directories go with the cluster.
            history::write_jsonl(&out.join("history.jsonl"), &recorder.snapshot())?;
            copy_logs(&cluster, &out)?;
            println!(
                "history and server logs kept in {} (replay: {replay})",
                out.display()
            );
            return Err(err);
        }
    };

    // Check.
    let operations = recorder.snapshot();
    history::write_jsonl(&out.join("history.jsonl"), &operations)?;
    let checked = check(&operations, before_crash);
    for anomaly in &watch.anomalies {
        println!("ANOMALY: watch: {anomaly}");
    }
    for anomaly in held.all().flat_map(|(_, log)| &log.anomalies) {
        println!("ANOMALY: {anomaly}");
    }
    for anomaly in &recovery.anomalies {
        println!("ANOMALY: health check: {anomaly}");
    }
    let summary = Summary {
        seed,
        duration_secs: args.duration.as_secs(),
        servers: args.servers,
        faults_enabled: fault_names,
        planted_bug: args.planted_bug.clone(),
        ops: operations.len() as u64,
        indeterminate: operations
            .iter()
            .filter(|o| matches!(o.outcome, history::Outcome::Indeterminate { .. }))
            .count() as u64,
        faults,
        anomalies: checked.anomalies
            + watch.anomalies.len() as u64
            + held
                .all()
                .map(|(_, log)| log.anomalies.len() as u64)
                .sum::<u64>()
            + recovery.anomalies.len() as u64,
        watch_events: watch.events,
        lease_renewals: held.lease.renewals,
        ttl_renewals: held.ttl.iter().map(|(_, log)| log.renewals).sum(),
        undecided: checked.undecided,
    };
    if let Some(path) = &args.summary_json {
        append_summary(path, &summary)?;
    }
    if summary.anomalies > 0 || summary.undecided > 0 {
        copy_logs(&cluster, &out)?;
        println!(
            "history and server logs kept in {} (replay: {replay})",
            out.display()
        );
    } else if keep_out {
        println!("history written to {}", out.display());
    } else {
        let _ = std::fs::remove_dir_all(&out);
    }
    drop(cluster);
    drop(network);
    println!(
        "ops={} faults={} anomalies={}",
        summary.ops, summary.faults, summary.anomalies
    );
    Ok(summary)
}

/// Runs the load and the faults, then the durability phase. Returns the
/// number of faults and how many operations were recorded before the
/// whole-cluster crash.
async fn exercise(
    args: &RunArgs,
    cluster: &mut Cluster,
    network: Option<&mut Network>,
    rng: &mut StdRng,
    endpoints: &[Endpoint],
    keys: &[String],
    recorder: &Arc<Recorder>,
) -> anyhow::Result<Exercised> {
    // Load and faults.
    let started = Instant::now();
    let harness_ip = network
        .as_deref()
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), Network::harness_ip);
    let (stop_tx, stop_rx) = watch::channel(false);
    let config = LoadConfig {
        keys: keys.to_vec(),
        op_timeout: args.op_timeout,
    };
    let mut clients = Vec::new();
    for id in 0..args.clients + args.registry_clients {
        let mut process = Process::new(
            id,
            endpoints.to_vec(),
            recorder.clone(),
            config.clone(),
            StdRng::seed_from_u64(rng.random()),
        )?;
        if id >= args.clients {
            process = process.into_registry_client();
        }
        clients.push(tokio::spawn(process.run(stop_rx.clone())));
    }
    // Drawn in this order so that adding a generator never changes the
    // schedule an older seed produced.
    let fault_rng = StdRng::seed_from_u64(rng.random());
    let watch_rng = StdRng::seed_from_u64(rng.random());
    let lease_rng = StdRng::seed_from_u64(rng.random());
    let ttl_check_rng = StdRng::seed_from_u64(rng.random());
    let nacos_rng = StdRng::seed_from_u64(rng.random());
    let native_rng = StdRng::seed_from_u64(rng.random());
    let watcher = tokio::spawn(watch_check::follow(
        endpoints.to_vec(),
        watch_rng,
        stop_rx.clone(),
        args.op_timeout,
    ));
    // A TTL of a few election timeouts (whole seconds, as etcd's are): long
    // enough that a renewal gets through between faults, short enough to
    // expire when none does.
    let ttl = Duration::from_secs((args.election_timeout * 5).as_secs().max(2));
    let hold = HoldConfig {
        ttl,
        renew_every: ttl / 6,
        op_timeout: args.op_timeout,
        started,
    };
    let holders = ttl_check::Holders {
        servers: endpoints.len(),
        stop: stop_rx.clone(),
        config: hold,
    };
    let timeout = args.op_timeout;
    let lease = holders.spawn(EtcdLease::new(endpoints.to_vec(), ttl, timeout), lease_rng);
    let ttl_holders = if args.no_ttl_checks {
        Vec::new()
    } else {
        vec![
            (
                "TTL checks",
                holders.spawn(ConsulTtlCheck::new(endpoints, ttl, timeout)?, ttl_check_rng),
            ),
            (
                "Nacos instances",
                holders.spawn(NacosInstance::new(endpoints, ttl, timeout)?, nacos_rng),
            ),
            (
                "native instances",
                holders.spawn(NativeInstance::new(endpoints, ttl, timeout)?, native_rng),
            ),
        ]
    };
    let faults = Injector {
        cluster: &mut *cluster,
        network,
        kinds: args.faults.clone(),
        rng: fault_rng,
        election_timeout: args.election_timeout,
        started,
    }
    .run(started + args.duration)
    .await;
    let _ = stop_tx.send(true);
    for client in clients {
        client.await.context("a client task failed")?;
    }
    let watched = watcher.await.context("the watcher task failed")?;
    let lease = lease.await.context("the lease holder failed")?;
    let mut held = Held {
        lease,
        ttl: Vec::new(),
    };
    for (what, holder) in ttl_holders {
        held.ttl
            .push((what, holder.await.context("a TTL check holder failed")?));
    }
    let faults = faults?;
    println!(
        "[{:>6.1}s] load stopped: {} operations",
        started.elapsed().as_secs_f64(),
        recorder.snapshot().len()
    );

    for (what, log) in held.all() {
        println!(
            "[{:>6.1}s] {what}: {} created, {} renewals, {} waits well into the TTL, {} expired after a TTL without renewal",
            started.elapsed().as_secs_f64(),
            log.creations,
            log.renewals,
            log.late,
            log.expiries
        );
    }

    // Watch: what the watcher saw must be the start of the whole history.
    let leader = cluster.wait_converged().await;
    let history = watch_check::reference(endpoints[leader], cluster.timeout()).await?;
    let watch = WatchOutcome {
        events: watched.events.len() as u64,
        streams: watched.streams,
        anomalies: watch_check::compare(&watched, &history),
    };
    println!(
        "[{:>6.1}s] watch: {} events over {} streams, history {} events",
        started.elapsed().as_secs_f64(),
        watch.events,
        watch.streams,
        history.len()
    );

    // Liveness on the healed cluster: a health check follows its target in bounded time.
    let recovery = recovery_check::run(endpoints[leader].http, harness_ip).await?;
    println!(
        "[{:>6.1}s] health check: passing {:?} after registration, critical {:?} after its target stopped, passing {:?} after it came back",
        started.elapsed().as_secs_f64(),
        recovery.to_passing,
        recovery.to_critical,
        recovery.back_to_passing
    );

    // Durability: read everything, crash every server at once, read again.
    workload::read_all(
        FINAL_READER,
        leader,
        endpoints[leader],
        keys,
        recorder,
        cluster.timeout(),
    )
    .await?;
    let before_crash = recorder.snapshot().len();
    cluster.kill_all().await;
    let all: Vec<usize> = (0..cluster.len()).collect();
    cluster.restart(&all).await;
    let leader = cluster.wait_converged().await;
    let reader = rng.random_range(0..cluster.len());
    workload::read_all(
        AFTER_RESTART_READER,
        reader,
        endpoints[reader],
        keys,
        recorder,
        cluster.timeout(),
    )
    .await?;
    println!(
        "[{:>6.1}s] whole-cluster SIGKILL and restart done (leader s{})",
        started.elapsed().as_secs_f64(),
        leader + 1
    );

    Ok(Exercised {
        faults,
        before_crash,
        watch,
        held,
        recovery,
    })
}

/// The servers' extra flags. Every run simulates power cuts: a SIGKILL then
/// also loses what the server wrote but never fsynced, so the whole-cluster
/// crash checks the fsyncs too. Disk faults need fsyncs that can fail; a
/// planted bug is switched on by its hidden flag.
fn server_args(args: &RunArgs) -> Vec<String> {
    let mut failpoints = vec!["power-loss"];
    if args.faults.contains(&FaultKind::Disk) {
        failpoints.push("fsync-error");
    }
    let mut extra = Vec::new();
    match args.planted_bug.as_deref() {
        Some("stale-reads") => extra.push("--unsafe-stale-reads".to_owned()),
        Some("lost-writes") => failpoints.push("unsynced-acks"),
        Some("ttl-early-expiry") => extra.push("--unsafe-ttl-early-expiry".to_owned()),
        _ => {}
    }
    extra.extend(["--failpoints".to_owned(), failpoints.join(",")]);
    extra
}

/// What the load and fault phase leaves for the checks.
struct Exercised {
    faults: u64,
    /// Operations recorded before the whole-cluster crash.
    before_crash: usize,
    watch: WatchOutcome,
    held: Held,
    recovery: recovery_check::Recovery,
}

/// What the holders saw.
struct Held {
    /// The etcd lease's holder.
    lease: HoldLog,
    /// Each TTL check's holder, by what it holds (none with
    /// `--no-ttl-checks`).
    ttl: Vec<(&'static str, HoldLog)>,
}

impl Held {
    fn all(&self) -> impl Iterator<Item = (&'static str, &HoldLog)> {
        std::iter::once(("leases", &self.lease))
            .chain(self.ttl.iter().map(|(what, log)| (*what, log)))
    }
}

/// The watch check's figures.
struct WatchOutcome {
    events: u64,
    streams: u64,
    anomalies: Vec<String>,
}

/// What the checker found.
pub struct Checked {
    pub anomalies: u64,
    pub undecided: u64,
}

/// Checks the whole history; a key that fails is checked again without the
/// reads after the whole-cluster restart, to tell a lost write from a
/// linearizability violation during the load.
pub fn check(operations: &[Operation], before_crash: usize) -> Checked {
    let started = Instant::now();
    let reports = checker::check_history(operations, CHECK_BUDGET);
    let mut before: Option<BTreeMap<String, Verdict>> = None;
    let mut checked = Checked {
        anomalies: 0,
        undecided: 0,
    };
    for report in &reports {
        match &report.verdict {
            Verdict::Linearizable => {}
            Verdict::Unknown { steps } => {
                checked.undecided += 1;
                println!(
                    "undecided: key {} ({} operations): no verdict within {steps} steps",
                    report.key, report.operations
                );
            }
            Verdict::NotLinearizable { linearized, .. } => {
                checked.anomalies += 1;
                let earlier = before.get_or_insert_with(|| {
                    checker::check_history(&operations[..before_crash], CHECK_BUDGET)
                        .into_iter()
                        .map(|r| (r.key, r.verdict))
                        .collect()
                });
                let kind = match earlier.get(&report.key) {
                    Some(Verdict::Linearizable) => {
                        "lost acknowledged write (after the whole-cluster restart)"
                    }
                    _ => "not linearizable",
                };
                println!(
                    "ANOMALY: key {}: {kind}; after {linearized} operations in order, no place for: {}",
                    report.key,
                    report
                        .culprit
                        .as_ref()
                        .and_then(|op| serde_json::to_string(op).ok())
                        .unwrap_or_default()
                );
            }
        }
    }
    println!(
        "checked {} keys, {} operations in {:?}",
        reports.len(),
        operations.len(),
        started.elapsed()
    );
    checked
}

fn append_summary(path: &Path, summary: &Summary) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(file, "{}", serde_json::to_string(summary)?)?;
    Ok(())
}

fn copy_logs(cluster: &Cluster, out: &Path) -> anyhow::Result<()> {
    for server in cluster.servers() {
        for file in ["stderr.log", "stdout.log"] {
            let from = server.data_dir().join(file);
            let to = out.join(format!("{}.{file}", server.name()));
            if from.exists() {
                std::fs::copy(&from, &to)
                    .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
            }
        }
    }
    Ok(())
}

/// This run's command line, with `--seed` added if it was drawn at random.
fn replay_command(seed: u64) -> String {
    let mut words: Vec<String> = std::env::args().collect();
    if !words
        .iter()
        .any(|w| w == "--seed" || w.starts_with("--seed="))
    {
        words.extend(["--seed".to_owned(), seed.to_string()]);
    }
    words.join(" ")
}
