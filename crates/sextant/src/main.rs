//! The `sextant` binary: runs a server (`sextant agent`) and talks to one
//! (`sextant kv`, `sextant members`, `sextant operator raft`).

mod agent;
mod client;
mod config_file;
mod observability;
mod progress;
mod registry_cli;
mod snapshot_cli;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sextant",
    version,
    about = "A highly available service registry"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a Sextant server.
    Agent(Box<agent::AgentArgs>),
    /// Read and write the key/value store.
    Kv {
        #[command(flatten)]
        target: client::Target,
        #[command(subcommand)]
        command: client::KvCommand,
    },
    /// List the servers of the cluster and whether they are alive.
    Members {
        #[command(flatten)]
        target: client::Target,
    },
    /// List every service with its tags.
    Services {
        #[command(flatten)]
        target: client::Target,
    },
    /// Read the catalog.
    Catalog {
        #[command(flatten)]
        target: client::Target,
        #[command(subcommand)]
        command: registry_cli::CatalogCommand,
    },
    /// Show the instances of a service with their health.
    Health {
        #[command(flatten)]
        target: client::Target,
        service: String,
        /// Only instances whose every check passes.
        #[arg(long)]
        passing: bool,
    },
    /// Register the service defined in a JSON file with the agent.
    Register {
        #[command(flatten)]
        target: client::Target,
        file: std::path::PathBuf,
    },
    /// Deregister a service by its id.
    Deregister {
        #[command(flatten)]
        target: client::Target,
        id: String,
    },
    /// Print a service's instances at every change (blocking queries).
    Watch {
        #[command(flatten)]
        target: client::Target,
        #[command(subcommand)]
        command: registry_cli::WatchCommand,
    },
    /// Save the whole state to a file, or restore it from one.
    Snapshot {
        #[command(flatten)]
        target: client::Target,
        #[command(subcommand)]
        command: snapshot_cli::SnapshotCommand,
    },
    /// Cluster operations.
    Operator {
        #[command(flatten)]
        target: client::Target,
        #[command(subcommand)]
        command: client::OperatorCommand,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Agent(args) => agent::run(*args).await,
            Command::Kv { target, command } => client::kv(&target, command).await,
            Command::Members { target } => client::members(&target).await,
            Command::Operator { target, command } => client::operator(&target, command).await,
            Command::Services { target } => registry_cli::services(&target).await,
            Command::Catalog { target, command } => registry_cli::catalog(&target, command).await,
            Command::Health {
                target,
                service,
                passing,
            } => registry_cli::health(&target, &service, passing).await,
            Command::Register { target, file } => registry_cli::register(&target, &file).await,
            Command::Deregister { target, id } => registry_cli::deregister(&target, &id).await,
            Command::Watch { target, command } => registry_cli::watch(&target, command).await,
            Command::Snapshot { target, command } => snapshot_cli::snapshot(&target, command).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error! {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
