//! `sextant agent`: composes the configuration (defaults < file < flags),
//! starts the server, and stops it on SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use sextant_server::ServerConfig;

use crate::config_file::FileConfig;
use crate::observability::{self, LogFormat};

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
    /// Nacos v1 naming HTTP API [default: 127.0.0.1:8848]
    #[arg(long)]
    nacos_addr: Option<SocketAddr>,
    /// An ephemeral Nacos instance without a beat for this long turns
    /// unhealthy [default: 15s] (hidden: Nacos's value; tests shorten it)
    #[arg(long, hide = true)]
    nacos_beat_timeout: Option<String>,
    /// An ephemeral Nacos instance without a beat for this long is deleted
    /// [default: 30s] (hidden, like --nacos-beat-timeout)
    #[arg(long, hide = true)]
    nacos_delete_timeout: Option<String>,
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
    /// Log filter, e.g. info, debug, sextant_core=debug [default: info]
    #[arg(long)]
    log_level: Option<String>,
    /// Log lines as text or as JSON objects [default: text]
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// Export request and Raft proposal spans over OTLP/gRPC to this
    /// collector, e.g. http://127.0.0.1:4317 [default: none]
    #[arg(long)]
    otlp_endpoint: Option<String>,
    /// TEST ONLY, hidden: the planted bug that `sextant-chaos --planted-bug
    /// stale-reads` must detect. Linearizable reads skip the read barrier.
    #[arg(long, hide = true)]
    unsafe_stale_reads: bool,
    /// TEST ONLY, hidden: the planted bug that `sextant-chaos --planted-bug
    /// ttl-early-expiry` must detect. TTL checks expire half-way.
    #[arg(long, hide = true)]
    unsafe_ttl_early_expiry: bool,
    /// TEST ONLY, hidden: storage failpoints for `sextant-chaos`, e.g.
    /// power-loss,fsync-error (needs a build with `--features failpoints`).
    #[arg(long, hide = true, value_parser = parse_failpoints)]
    failpoints: Option<sextant_storage::Failpoints>,
}

fn parse_failpoints(text: &str) -> Result<sextant_storage::Failpoints, String> {
    text.parse()
        .map_err(|e: sextant_storage::FailpointError| e.to_string())
}

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
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
    let observability = observability::init(&observability::Settings {
        log_level: args
            .log_level
            .as_deref()
            .or(file.log_level.as_deref())
            .unwrap_or("info"),
        log_format: args.log_format.or(file.log_format).unwrap_or_default(),
        otlp_endpoint: args
            .otlp_endpoint
            .as_deref()
            .or(file.otlp_endpoint.as_deref()),
        node_name: &config.name,
    })?;
    let served = serve(config).await;
    observability.shutdown().await;
    drop(temporary_dir);
    served
}

/// Runs the server until SIGINT/SIGTERM.
async fn serve(config: ServerConfig) -> anyhow::Result<()> {
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
    if let Some(nacos) = a.nacos {
        println!("    Nacos naming API:  http://{nacos}");
    }
    println!("    data directory:    {}", config.data_dir.display());
    tokio::select! {
        signalled = wait_for_signal() => signalled?,
        fatal = server.fatal() => {
            tracing::error!(error = %fatal, "Raft stopped on a fatal error; shutting down");
            let _ = server.shutdown(false).await;
            anyhow::bail!("Raft stopped on a fatal error: {fatal}");
        }
    }
    tracing::info!(leave, "shutting down");
    let left = server.shutdown(leave).await;
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
    config.nacos_addr = args
        .nacos_addr
        .or(file.nacos_addr)
        .unwrap_or(config.nacos_addr);
    let duration = |flag: &Option<String>, key: &Option<String>, what: &str| {
        flag.as_deref()
            .or(key.as_deref())
            .map(|text| {
                humantime::parse_duration(text).with_context(|| format!("invalid {what} {text:?}"))
            })
            .transpose()
    };
    if let Some(timeout) = duration(
        &args.nacos_beat_timeout,
        &file.nacos_beat_timeout,
        "Nacos beat timeout",
    )? {
        config.nacos.beat_timeout = timeout;
    }
    if let Some(timeout) = duration(
        &args.nacos_delete_timeout,
        &file.nacos_delete_timeout,
        "Nacos delete timeout",
    )? {
        config.nacos.delete_timeout = timeout;
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
    config.unsafe_stale_reads = args.unsafe_stale_reads;
    config.health.unsafe_early_ttl_expiry = args.unsafe_ttl_early_expiry;
    config.failpoints = args.failpoints.unwrap_or_default();
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

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    Ok(())
}
