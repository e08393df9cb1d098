//! `sextant-bench compare rnacos`: the same Nacos v1 naming requests against
//! one Sextant server and one r-nacos node on loopback, alternating between
//! the two on every repeat, then the memory each needs per registered
//! instance.
//!
//! One node each: r-nacos replicates ephemeral instances between its nodes
//! with its own protocol rather than Raft, so a 3-node r-nacos would not be
//! the same durability as 3 Sextant servers either way; a single node of
//! each keeps the comparison simple and still gives r-nacos the edge, since
//! Sextant commits and fsyncs every registration and r-nacos only keeps it
//! in memory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use testkit::{Cluster, ClusterOpts};

use crate::compare_common::{alternate, rss_kib_of, Better, Row};
use crate::nacos_load::{self, BulkRegistration, Target};
use crate::report::{table, Section};
use crate::rnacos_server::{self, RnacosServer};

#[derive(Args)]
pub struct CompareRnacosArgs {
    /// How long each run of a workload lasts.
    #[arg(long, default_value = "4s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Runs per workload and system; medians are reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Concurrent clients of the register, heartbeat and list workloads.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Instance counts of the memory measurement, each on fresh servers.
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    instances: Vec<u64>,
    /// Services the instances of the memory measurement are spread over.
    #[arg(long, default_value_t = 1000)]
    services: u64,
    /// Concurrent clients registering the instances of the memory measurement.
    #[arg(long, default_value_t = 256)]
    register_clients: usize,
    /// The r-nacos binary [default: `rnacos` on PATH or in ~/.cargo/bin, installed there
    /// with `cargo install` if missing].
    #[arg(long)]
    rnacos_bin: Option<PathBuf>,
}

/// Both systems keep every ephemeral instance this long without a beat, so
/// that nothing expires during the run (Nacos's defaults are 15 s and 30 s).
const BEAT_TIMEOUT: Duration = Duration::from_secs(3600);
const DELETE_TIMEOUT: Duration = Duration::from_secs(7200);

/// How progress lines name the two systems, in `Pair` order.
const NAMES: [&str; 2] = ["sextant", "r-nacos"];

/// One Sextant server and one r-nacos node, both freshly started.
struct Pair {
    sextant: Cluster,
    rnacos: RnacosServer,
}

impl Pair {
    async fn start(bin: &Path, rnacos_bin: &Path) -> anyhow::Result<Self> {
        let mut opts = ClusterOpts::default();
        opts.server.extra_args.extend([
            "--nacos-beat-timeout".to_owned(),
            humantime::format_duration(BEAT_TIMEOUT).to_string(),
            "--nacos-delete-timeout".to_owned(),
            humantime::format_duration(DELETE_TIMEOUT).to_string(),
        ]);
        let sextant = Cluster::start(bin, 1, opts).await;
        let rnacos = RnacosServer::start(rnacos_bin, BEAT_TIMEOUT, DELETE_TIMEOUT).await?;
        let pair = Self { sextant, rnacos };
        for target in pair.targets()? {
            target.wait_ready(Duration::from_secs(30)).await?;
        }
        Ok(pair)
    }

    fn targets(&self) -> anyhow::Result<[Target; 2]> {
        Ok([
            Target::new(format!("http://{}", self.sextant.server(0).nacos_addr()))?,
            self.rnacos.target()?,
        ])
    }

    /// Resident memory of each system's server process, in KiB.
    fn rss_kib(&self) -> [u64; 2] {
        [
            self.sextant.server(0).pid().map_or(0, rss_kib_of),
            self.rnacos.pid().map_or(0, rss_kib_of),
        ]
    }
}

pub async fn run(bin: &Path, args: CompareRnacosArgs) -> anyhow::Result<Section> {
    let rnacos_bin = rnacos_server::binary(args.rnacos_bin.clone())?;
    let rnacos_version = rnacos_server::version(&rnacos_bin);
    eprintln!("starting 1 Sextant server and 1 r-nacos node ({rnacos_version})");
    let pair = Pair::start(bin, &rnacos_bin).await?;
    let targets = pair.targets()?;
    // Idle memory, before any load.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut idle = Row::new("idle RSS".into(), "MiB", Better::Lower);
    for (i, kib) in pair.rss_kib().into_iter().enumerate() {
        idle.push(i, kib as f64 / 1024.0);
    }

    let (d, repeats, clients) = (args.duration, args.repeats, args.clients);
    let mut rows = Vec::new();
    {
        let mut row = Row::new(
            format!("register (new ephemeral instance), {clients} clients"),
            "ops/s",
            Better::Higher,
        );
        alternate(&mut row, &targets, &NAMES, repeats, |t| async move {
            nacos_load::register(&t, clients, d).await
        })
        .await?;
        rows.push(row);
    }
    rows.push(nacos_load::heartbeat_row(&targets, &NAMES, clients, repeats, d).await?);
    {
        for target in &targets {
            nacos_load::prepare_list(target).await?;
        }
        let mut row = Row::new(
            format!(
                "instance list, {}-instance service, healthyOnly, {clients} clients",
                nacos_load::LISTED_INSTANCES
            ),
            "ops/s",
            Better::Higher,
        );
        alternate(&mut row, &targets, &NAMES, repeats, |t| async move {
            nacos_load::list(&t, clients, d).await
        })
        .await?;
        rows.push(row);
    }
    let mut loaded = Row::new("RSS after the workloads".into(), "MiB", Better::Lower);
    for (i, kib) in pair.rss_kib().into_iter().enumerate() {
        loaded.push(i, kib as f64 / 1024.0);
    }
    rows.push(idle);
    rows.push(loaded);
    drop(pair);

    for &instances in &args.instances {
        rows.extend(memory_per_instance(bin, &rnacos_bin, &args, instances).await?);
    }

    let cells: Vec<Vec<String>> = rows.iter().map(Row::cells).collect();
    let markdown = format!(
        "1 Sextant server vs 1 {rnacos_version} node on loopback (one machine: {}), the same Nacos \
         v1 naming HTTP requests from one load generator. Sextant commits every registration \
         through Raft and fsyncs it before answering `ok`; r-nacos keeps ephemeral instances in \
         memory only. Both with beat and delete timeouts of {} and {}, so nothing expires during \
         the run; r-nacos with `RUST_LOG=warn` (no per-request log lines). {} per run, median of \
         {} runs alternating between the two. Memory rows: fresh servers of both, {} instances \
         registered as fast as possible by {} clients into {} services (one run), RSS measured \
         after; per instance = (RSS − idle RSS) / instances. The last column is Sextant's \
         advantage (above 1× is better for Sextant).\n\n{}",
        crate::machine::describe(),
        humantime::format_duration(BEAT_TIMEOUT),
        humantime::format_duration(DELETE_TIMEOUT),
        humantime::format_duration(d),
        repeats,
        args.instances
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" and "),
        args.register_clients,
        args.services,
        table(&["workload", "sextant", "r-nacos", "ratio"], &cells)
    );
    Ok(Section {
        name: "compare-rnacos",
        markdown,
    })
}

/// Registers `instances` instances into fresh servers of both systems, one
/// after the other, and reports the registration rate and the RSS each
/// instance added.
async fn memory_per_instance(
    bin: &Path,
    rnacos_bin: &Path,
    args: &CompareRnacosArgs,
    instances: u64,
) -> anyhow::Result<Vec<Row>> {
    eprintln!("memory at {instances} instances: starting fresh servers");
    let pair = Pair::start(bin, rnacos_bin).await?;
    let targets = pair.targets()?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = pair.rss_kib();
    let mut rate = Row::new(
        format!(
            "register {instances} instances into {} services, {} clients",
            args.services, args.register_clients
        ),
        "inst/s",
        Better::Higher,
    );
    let mut per_instance = Row::new(
        format!("RSS per registered instance, {instances} instances"),
        "B",
        Better::Lower,
    );
    for (i, target) in targets.iter().enumerate() {
        let BulkRegistration {
            registered,
            failed,
            took,
        } = nacos_load::register_many(target, instances, args.services, args.register_clients)
            .await;
        eprintln!(
            "  {} registered {registered} instances in {took:?} ({failed} failed)",
            NAMES[i]
        );
        anyhow::ensure!(
            failed == 0,
            "{} failed {failed} of {instances} registrations",
            NAMES[i]
        );
        rate.push(i, registered as f64 / took.as_secs_f64());
    }
    // Let background work (compaction, snapshots, allocator caches) settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loaded = pair.rss_kib();
    for i in 0..2 {
        let added_bytes = loaded[i].saturating_sub(idle[i]) as f64 * 1024.0;
        eprintln!(
            "  {} RSS {} KiB idle → {} KiB loaded",
            NAMES[i], idle[i], loaded[i]
        );
        per_instance.push(i, added_bytes / instances as f64);
    }
    Ok(vec![rate, per_instance])
}
