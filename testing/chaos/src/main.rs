//! `sextant-chaos`: proves, run by run, that Sextant keeps its safety
//! promises under faults.
//!
//! A run starts a real 3- or 5-server cluster, drives concurrent clients
//! through both the etcd v3 gRPC API and the Consul HTTP KV API on a few keys
//! (put, linearizable get, CAS, delete), and meanwhile kills, restarts,
//! pauses and partitions servers on a schedule drawn from one printed seed.
//! Every operation is recorded with its invoke and completion time; one that
//! errored or timed out is indeterminate. Afterwards the harness heals
//! everything, reads every key, SIGKILLs the whole cluster at once, restarts
//! it and reads every key again, then checks the history for
//! linearizability ([`checker`]): a stale read, a lost acknowledged write,
//! an impossible CAS answer or a deregistered instance listed again is an
//! anomaly. A watcher that keeps resuming through the faults must have seen
//! exactly the start of the event history ([`watch_check`]).
//!
//! Partitions use one network namespace per server ([`network`] says why);
//! they need root and iproute2.
//!
//! The last line printed is `ops=… faults=… anomalies=…`; the exit status
//! is 0 only without anomalies (1 with, 2 when the harness itself failed).
//! A failing run keeps its history and every server's log in the directory
//! it names.

mod check_state;
mod checker;
mod clients;
mod faults;
mod history;
mod nacos_holder;
mod native_holder;
mod network;
mod readme;
mod recovery_check;
mod run;
mod ttl_check;
mod watch_check;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "sextant-chaos",
    about = "Fault injection with linearizability and durability checks against a real Sextant cluster",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: run::RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Rewrites the README's campaign figures (between `<!-- chaos:start -->`
    /// and `<!-- chaos:end -->`) from the summaries runs appended with --summary-json.
    Readme {
        /// The JSON-lines file the runs appended to.
        #[arg(long)]
        summaries: PathBuf,
        /// The README to update.
        #[arg(long, default_value = "README.md")]
        readme: PathBuf,
    },
    /// Checks a history a run left behind (`history.jsonl`) again.
    Check {
        /// The JSON-lines history.
        history: PathBuf,
    },
}

/// Resolves on SIGINT or SIGTERM (never, if neither can be watched).
async fn interrupted() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Readme { summaries, readme }) => {
            return match readme::update(&summaries, &readme) {
                Ok(section) => {
                    println!("{section}");
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("error: {err:#}");
                    ExitCode::from(2)
                }
            };
        }
        Some(Command::Check { history }) => {
            return match history::read_jsonl(&history) {
                Ok(operations) => {
                    let checked = run::check(&operations, operations.len());
                    println!(
                        "ops={} faults=0 anomalies={}",
                        operations.len(),
                        checked.anomalies
                    );
                    if checked.anomalies == 0 {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(err) => {
                    eprintln!("error: reading {}: {err:#}", history.display());
                    ExitCode::from(2)
                }
            };
        }
        None => {}
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(2);
        }
    };
    // testkit panics (with the servers' log tails) when a cluster does not
    // form or a server does not restart; that is a harness failure, exit 2.
    let outcome = runtime.block_on(async {
        let mut task = tokio::spawn(run::run(cli.run));
        tokio::select! {
            outcome = &mut task => Some(outcome),
            () = interrupted() => {
                // Dropping the run kills the servers and removes the namespaces.
                task.abort();
                let _ = task.await;
                None
            }
        }
    });
    let Some(outcome) = outcome else {
        eprintln!("interrupted: servers stopped, network removed");
        return ExitCode::from(130);
    };
    match outcome {
        Ok(Ok(summary)) if summary.anomalies == 0 => ExitCode::SUCCESS,
        Ok(Ok(_)) => ExitCode::from(1),
        Ok(Err(err)) => {
            eprintln!("error: {err:#}");
            println!("ops=0 faults=0 anomalies=0 error=harness");
            ExitCode::from(2)
        }
        Err(panic) => {
            eprintln!("error: the harness failed: {panic}");
            println!("ops=0 faults=0 anomalies=0 error=harness");
            ExitCode::from(2)
        }
    }
}
