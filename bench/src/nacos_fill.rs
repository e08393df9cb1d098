//! `sextant-bench nacos-fill` (hidden): registers many Nacos instances, with
//! the same requests as the memory rows of `compare rnacos`, into a server
//! that is already running — one started under a heap profiler, say — and
//! prints the server's RSS before and after. A diagnostic for memory per
//! instance; `compare rnacos` is the benchmark.

use std::time::Duration;

use clap::Args;

use crate::compare_common::rss_kib_of;
use crate::nacos_load::{self, BulkRegistration, Target};
use crate::report::Section;

#[derive(Args)]
pub struct NacosFillArgs {
    /// The Nacos API to fill, like `http://127.0.0.1:8848`.
    #[arg(long, default_value = "http://127.0.0.1:8848")]
    base: String,
    /// The server's process id, for its RSS.
    #[arg(long)]
    pid: Option<u32>,
    /// Instances to register.
    #[arg(long, default_value_t = 100_000)]
    instances: u64,
    /// Services the instances are spread over.
    #[arg(long, default_value_t = 1000)]
    services: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 256)]
    clients: usize,
    /// How long to wait after registering before measuring, for background
    /// work (snapshots, compaction) to settle.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    settle: Duration,
}

pub async fn run(args: NacosFillArgs) -> anyhow::Result<Section> {
    let target = Target::new(args.base.clone())?;
    target.wait_ready(Duration::from_secs(30)).await?;
    let rss = || args.pid.map_or(0, rss_kib_of);
    let idle = rss();
    let BulkRegistration {
        registered,
        failed,
        took,
    } = nacos_load::register_many(&target, args.instances, args.services, args.clients).await;
    tokio::time::sleep(args.settle).await;
    let loaded = rss();
    let per_instance = loaded.saturating_sub(idle) as f64 * 1024.0 / registered.max(1) as f64;
    let markdown = format!(
        "registered {registered} instances ({failed} failed) into {} services with {} clients \
         in {took:.1?} ({:.0} inst/s); RSS {idle} KiB → {loaded} KiB, {per_instance:.0} B per \
         instance",
        args.services,
        args.clients,
        registered as f64 / took.as_secs_f64(),
    );
    Ok(Section {
        name: "nacos-fill",
        markdown,
    })
}
