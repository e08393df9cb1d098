//! `sextant-bench nacos-rates` (hidden): the list, register and heartbeat
//! workloads of `compare rnacos`, alternating between two Nacos APIs that
//! are already running — two builds of Sextant side by side, say — so a
//! change is measured against its parent in the same run. A diagnostic;
//! `compare rnacos` is the benchmark.

use std::time::Duration;

use clap::Args;

use crate::compare_common::{alternate, Better, Row};
use crate::nacos_load::{self, Target};
use crate::report::{table, Section};

#[derive(Args)]
pub struct NacosRatesArgs {
    /// The Nacos API whose figures come first (like `http://127.0.0.1:8848`).
    #[arg(long)]
    first: String,
    /// The Nacos API it is compared with.
    #[arg(long)]
    second: String,
    /// How long each run of a workload lasts.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Runs per workload and API; medians are reported.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
}

const NAMES: [&str; 2] = ["first", "second"];

pub async fn run(args: NacosRatesArgs) -> anyhow::Result<Section> {
    let targets = [Target::new(args.first)?, Target::new(args.second)?];
    for target in &targets {
        target.wait_ready(Duration::from_secs(30)).await?;
        nacos_load::prepare_list(target).await?;
    }
    let (d, clients) = (args.duration, args.clients);
    let mut list = Row::new(
        format!("instance list, healthyOnly, {clients} clients"),
        "ops/s",
        Better::Higher,
    );
    alternate(&mut list, &targets, &NAMES, args.repeats, |t| async move {
        nacos_load::list(&t, clients, d).await
    })
    .await?;
    let mut register = Row::new(
        format!("register, {clients} clients"),
        "ops/s",
        Better::Higher,
    );
    alternate(
        &mut register,
        &targets,
        &NAMES,
        args.repeats,
        |t| async move { nacos_load::register(&t, clients, d).await },
    )
    .await?;
    let heartbeat = nacos_load::heartbeat_row(&targets, &NAMES, clients, args.repeats, d).await?;
    let cells: Vec<Vec<String>> = [list, register, heartbeat].iter().map(Row::cells).collect();
    let markdown = format!(
        "{} per run, median of {} runs alternating between the two; the last column is the \
         first's advantage.\n\n{}",
        humantime::format_duration(d),
        args.repeats,
        table(&["workload", "first", "second", "ratio"], &cells)
    );
    Ok(Section {
        name: "nacos-rates",
        markdown,
    })
}
