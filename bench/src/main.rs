//! `sextant-bench`: starts real Sextant servers on loopback, drives load at
//! them, and prints what it measured. Figures are medians over repeated runs;
//! these machines are shared and noisy, so compare ratios from one run.

mod blocking_queries;
mod core_cluster;
mod machine;
mod report;

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
}

fn sextant_bin(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path);
    }
    let me = std::env::current_exe()?;
    let beside = me.with_file_name("sextant");
    anyhow::ensure!(
        beside.exists(),
        "no sextant binary at {}: build it (cargo build --release -p sextant) or pass --sextant-bin",
        beside.display()
    );
    Ok(beside)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let bin = sextant_bin(cli.sextant_bin)?;
    let section = match cli.command {
        Command::Core(args) => core_cluster::run(&bin, args).await?,
        Command::BlockingQueries(args) => blocking_queries::run(&bin, args).await?,
    };
    println!("\n{}", section.markdown);
    if let Some(readme) = cli.write_readme {
        report::write_readme_section(&readme, &section)?;
        println!("updated {}", readme.display());
    }
    Ok(())
}
