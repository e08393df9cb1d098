//! `sextant-bench`: starts real Sextant servers on loopback, drives load at
//! them, and prints what it measured. Figures are medians over repeated runs;
//! these machines are shared and noisy, so compare ratios from one run.

mod baseline_install;
mod blocking_queries;
mod compare_common;
mod compare_etcd;
mod compare_rnacos;
mod core_cluster;
mod etcd_cluster;
mod etcd_load;
mod machine;
mod nacos_fill;
mod nacos_load;
mod nacos_rates;
mod put_probe;
mod report;
mod rnacos_server;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sextant-bench",
    about = "Benchmarks that run real Sextant servers"
)]
struct Cli {
    /// The sextant binary to run [default: `sextant` beside this binary].
    #[arg(long, global = true)]
    sextant_bin: Option<PathBuf>,
    /// Rewrite this README's section for the benchmark with the results.
    #[arg(long, global = true)]
    write_readme: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A 3-server cluster: KV write throughput with concurrent clients, and leader failover time.
    Core(core_cluster::CoreArgs),
    /// 10,000 blocking queries on one service among 1,000 × 10 instances; one change → time until all return, server CPU.
    BlockingQueries(blocking_queries::BlockingArgs),
    /// The same load against Sextant and a real baseline started side by side.
    #[command(subcommand)]
    Compare(Baseline),
    /// Diagnostic: one put load with each server's Raft and fsync counters.
    #[command(hide = true)]
    PutProbe(put_probe::PutProbeArgs),
    /// Diagnostic: registers Nacos instances into a running server and prints its RSS before and after.
    #[command(hide = true)]
    NacosFill(nacos_fill::NacosFillArgs),
    /// Diagnostic: the Nacos list and register workloads alternating between two running servers.
    #[command(hide = true)]
    NacosRates(nacos_rates::NacosRatesArgs),
}

#[derive(Subcommand)]
enum Baseline {
    /// etcd 3.4 (Debian's etcd-server) over the etcd v3 gRPC API: puts, reads, leases, watches, failover, memory.
    Etcd(compare_etcd::CompareEtcdArgs),
    /// r-nacos (cargo install rnacos) over the Nacos v1 naming HTTP API: register, heartbeat, list, memory per instance.
    Rnacos(compare_rnacos::CompareRnacosArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The diagnostics that drive servers started by hand need no binary.
    let bin = || testkit::sextant_beside_me(cli.sextant_bin.clone());
    let section = match cli.command {
        Command::Core(args) => core_cluster::run(&bin()?, args).await?,
        Command::BlockingQueries(args) => blocking_queries::run(&bin()?, args).await?,
        Command::Compare(Baseline::Etcd(args)) => compare_etcd::run(&bin()?, args).await?,
        Command::Compare(Baseline::Rnacos(args)) => compare_rnacos::run(&bin()?, args).await?,
        Command::PutProbe(args) => put_probe::run(&bin()?, args).await?,
        Command::NacosFill(args) => nacos_fill::run(args).await?,
        Command::NacosRates(args) => nacos_rates::run(args).await?,
    };
    println!("\n{}", section.markdown);
    if let Some(readme) = cli.write_readme {
        report::write_readme_section(&readme, &section)?;
        println!("updated {}", readme.display());
    }
    Ok(())
}
