//! `sextant agent`: composes the configuration (defaults < file < flags),
//! starts the server, and stops it on SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use sextant_server::ServerConfig;

use crate::config_file::FileConfig;

#[derive(Args, Debug, Default)]
pub struct AgentArgs {
    /// One server with everything on 127.0.0.1 and a fresh temporary data
    /// directory (unless --data-dir is given); no other setup.
    #[arg(long)]
    dev: bool,
    /// Run as a server (the only mode so far; accepted for Consul familiarity).
    #[arg(long)]
    server: bool,
    /// This server's name in the cluster (default: the host name).
    #[arg(long)]
    name: Option<String>,
    /// Where the Raft log, snapshots and the server's identity are kept.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Form a new cluster once this many servers have found each other.
    #[arg(long)]
    bootstrap_expect: Option<usize>,
    /// Another server's raft address (repeatable).
    #[arg(long)]
    join: Vec<String>,
    /// Consul-compatible HTTP API [default: 127.0.0.1:8500]
    #[arg(long)]
    http_addr: Option<SocketAddr>,
    /// etcd v3 and sextant.v1 gRPC APIs [default: 127.0.0.1:2379]
    #[arg(long)]
    grpc_addr: Option<SocketAddr>,
    /// Server-to-server traffic [default: 127.0.0.1:8300]
    #[arg(long)]
    raft_addr: Option<SocketAddr>,
    /// DNS interface [default: 127.0.0.1:8600]
    #[arg(long)]
    dns_addr: Option<SocketAddr>,
    /// The DNS zone answered for [default: consul.]
    #[arg(long)]
    dns_domain: Option<String>,
    /// Answer DNS with passing instances only, leaving out warning ones.
    #[arg(long)]
    dns_only_passing: bool,
    /// Most answer records in a UDP DNS response (TC set beyond) [default: 3]
    #[arg(long)]
    dns_udp_answer_limit: Option<usize>,
    /// TTL of DNS records, e.g. 0s, 5s [default: 0s]
    #[arg(long)]
    dns_ttl: Option<String>,
    /// Longest time without a leader before an election, e.g. 1s, 500ms [default: 1s]
    #[arg(long)]
    election_timeout: Option<String>,
    /// Log entries between snapshots [default: 10000]
    #[arg(long)]
    snapshot_threshold: Option<u64>,
    /// Revisions of key history to keep (0: keep all) [default: 100000]
    #[arg(long)]
    kv_history_retention: Option<u64>,
    /// On SIGINT/SIGTERM, leave the Raft membership before stopping.
    #[arg(long)]
    leave_on_terminate: bool,
    /// TOML configuration file; flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Log filter, e.g. info, debug, sextant_server=debug [default: info]
    #[arg(long)]
    log_level: Option<String>,
}

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    init_logging(
        args.log_level
            .as_deref()
            .or(file.log_level.as_deref())
            .unwrap_or("info"),
    );
    let dev = args.dev || file.dev.unwrap_or(false);
    // A dev agent without a data directory keeps its data in a temporary one,
    // removed when the agent exits.
    let mut temporary_dir = None;
    let data_dir = match args.data_dir.clone().or(file.data_dir.clone()) {
        Some(dir) => dir,
        None if dev => {
            let dir = tempfile::Builder::new()
                .prefix("sextant-dev-")
                .tempdir()
                .context("cannot create a temporary data directory")?;
            let path = dir.path().to_path_buf();
            temporary_dir = Some(dir);
            path
        }
        None => anyhow::bail!("--data-dir is required (or use --dev)"),
    };
    let config = compose(&args, &file, dev, data_dir)?;
    let leave = config.leave_on_terminate;
    let server = sextant_server::start(config.clone())
        .await
        .context("cannot start the agent")?;
    let a = &server.advertised;
    println!(
        "sextant agent ready: name={} node_id={:016x}",
        a.name, a.node_id
    );
    println!("    HTTP (Consul API): http://{}", a.http);
    println!("    Raft (servers):    {}", a.raft);
    println!("    gRPC:              {}", a.grpc);
    println!("    DNS:               {}", a.dns);
    println!("    data directory:    {}", config.data_dir.display());
    wait_for_signal().await?;
    tracing::info!(leave, "shutting down");
    let left = server.shutdown(leave).await;
    drop(temporary_dir);
    left.context("could not leave the cluster")
}

fn compose(
    args: &AgentArgs,
    file: &FileConfig,
    dev: bool,
    data_dir: PathBuf,
) -> anyhow::Result<ServerConfig> {
    let name = args
        .name
        .clone()
        .or(file.name.clone())
        .unwrap_or_else(host_name);
    let mut config = ServerConfig::new(name, data_dir);
    config.http_addr = args
        .http_addr
        .or(file.http_addr)
        .unwrap_or(config.http_addr);
    config.grpc_addr = args
        .grpc_addr
        .or(file.grpc_addr)
        .unwrap_or(config.grpc_addr);
    config.raft_addr = args
        .raft_addr
        .or(file.raft_addr)
        .unwrap_or(config.raft_addr);
    config.dns_addr = args.dns_addr.or(file.dns_addr).unwrap_or(config.dns_addr);
    if let Some(domain) = args.dns_domain.clone().or(file.dns_domain.clone()) {
        config.dns.domain = domain;
    }
    config.dns.only_passing = args.dns_only_passing || file.dns_only_passing.unwrap_or(false);
    config.dns.udp_answer_limit = args
        .dns_udp_answer_limit
        .or(file.dns_udp_answer_limit)
        .unwrap_or(config.dns.udp_answer_limit);
    if let Some(text) = args.dns_ttl.as_deref().or(file.dns_ttl.as_deref()) {
        config.dns.ttl =
            humantime::parse_duration(text).with_context(|| format!("invalid DNS TTL {text:?}"))?;
    }
    config.join = if args.join.is_empty() {
        file.join.clone().unwrap_or_default()
    } else {
        args.join.clone()
    };
    config.bootstrap_expect = args
        .bootstrap_expect
        .or(file.bootstrap_expect)
        .unwrap_or(if dev { 1 } else { 0 });
    if let Some(text) = args
        .election_timeout
        .as_deref()
        .or(file.election_timeout.as_deref())
    {
        config.election_timeout = humantime::parse_duration(text)
            .with_context(|| format!("invalid election timeout {text:?}"))?;
    }
    config.snapshot_threshold = args
        .snapshot_threshold
        .or(file.snapshot_threshold)
        .unwrap_or(config.snapshot_threshold);
    config.kv_history_retention = args
        .kv_history_retention
        .or(file.kv_history_retention)
        .unwrap_or(config.kv_history_retention);
    config.leave_on_terminate = args.leave_on_terminate || file.leave_on_terminate.unwrap_or(false);
    if file.server == Some(false) {
        anyhow::bail!(
            "client agents (server = false) are not supported yet: every agent is a server"
        );
    }
    if !dev && config.bootstrap_expect == 0 && config.join.is_empty() {
        anyhow::bail!("a server needs --bootstrap-expect N or --join ADDR (or use --dev)");
    }
    config.validate()?;
    Ok(config)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "sextant".to_string())
}

/// openraft warns about an unreachable peer on every retry; its errors are
/// what an operator needs, Sextant logs the state changes itself.
fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{filter},openraft=error")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    Ok(())
}
