//! Wiring one server together, in dependency order: identity → listeners →
//! the core (Raft, registry, internal gRPC API, health, cluster formation:
//! `sextant_core::wiring`) → Consul HTTP API → Nacos API → etcd and native
//! gRPC APIs → DNS. Shutdown runs the other way round.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sextant_core::identity::{self, Advertised};
use sextant_core::registry::{Registry, RegistryError};
use sextant_core::tasks::{stopped, until_stopped};
use sextant_core::wiring::{Core, CoreConfig, CoreError};
use sextant_core::{ConfigError, ServerNode};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::ServerConfig;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr} for {what}: {source}")]
    Bind {
        what: &'static str,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "the {what} address {addr} is already in use (another server on this machine?): set {flag}"
    )]
    AddrInUse {
        what: &'static str,
        addr: std::net::SocketAddr,
        flag: &'static str,
    },
    #[error(transparent)]
    Core(#[from] CoreError),
}

/// How long the server's tasks get to finish on shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A started server. Dropping it does not stop it: call [`RunningServer::shutdown`].
pub struct RunningServer {
    pub advertised: Advertised,
    pub registry: Arc<Registry>,
    stop_tx: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

/// Starts a server and returns once every listener is bound and the addresses are written.
pub async fn start(config: ServerConfig) -> Result<RunningServer, StartError> {
    config.validate()?;
    let data_dir = config.data_dir.clone();
    let data_dir_err = |source| StartError::DataDir {
        path: data_dir.clone(),
        source,
    };
    fs::create_dir_all(&data_dir).map_err(data_dir_err)?;
    let node_id = identity::node_id(&data_dir).map_err(data_dir_err)?;
    let previous = identity::previous(&data_dir);

    let raft_listener = bind(
        "Raft",
        "--raft-addr",
        identity::sticky(config.raft_addr, previous.as_ref().map(|p| p.raft)),
    )
    .await?;
    let http_listener = bind(
        "Consul HTTP",
        "--http-addr",
        identity::sticky(config.http_addr, previous.as_ref().map(|p| p.http)),
    )
    .await?;
    let grpc_listener = bind(
        "gRPC",
        "--grpc-addr",
        identity::sticky(config.grpc_addr, previous.as_ref().map(|p| p.grpc)),
    )
    .await?;
    let nacos_listener = bind(
        "Nacos HTTP",
        "--nacos-addr",
        identity::sticky(config.nacos_addr, previous.as_ref().and_then(|p| p.nacos)),
    )
    .await?;
    let dns_addr = identity::sticky(config.dns_addr, previous.as_ref().map(|p| p.dns));
    let dns_listeners = sextant_dns::bind(dns_addr)
        .await
        .map_err(|source| bind_error("DNS", "--dns-addr", dns_addr, source))?;
    let dns_resolver =
        sextant_dns::resolve::Resolver::new(&config.dns).map_err(|e| ConfigError::Invalid {
            field: "dns_domain",
            reason: e.to_string(),
        })?;
    let local = |l: &TcpListener, what| {
        l.local_addr().map_err(|source| StartError::Bind {
            what,
            addr: config.raft_addr,
            source,
        })
    };
    let advertised = Advertised {
        name: config.name.clone(),
        node_id,
        http: local(&http_listener, "http")?,
        grpc: local(&grpc_listener, "grpc")?,
        raft: local(&raft_listener, "raft")?,
        dns: dns_listeners
            .local_addr()
            .map_err(|source| StartError::Bind {
                what: "dns",
                addr: dns_addr,
                source,
            })?,
        nacos: Some(local(&nacos_listener, "nacos")?),
    };
    let node = ServerNode {
        name: config.name.clone(),
        raft_addr: advertised.raft.to_string(),
        http_addr: advertised.http.to_string(),
        grpc_addr: advertised.grpc.to_string(),
    };

    // Recorded before anything starts, so that a port chosen now is the one
    // this server comes back on, whatever happens next.
    identity::write_advertised(&data_dir, &advertised).map_err(data_dir_err)?;

    // Installed before anything is recorded (once per process).
    sextant_core::telemetry::handle();
    let (stop_tx, stop_rx) = watch::channel(false);
    let core_config = CoreConfig {
        node_id,
        node,
        data_dir: data_dir.clone(),
        election_timeout: config.election_timeout,
        snapshot_threshold: config.snapshot_threshold,
        watch_backlog: config.watch_backlog,
        join: config.join.clone(),
        bootstrap_expect: config.bootstrap_expect,
        kv_history_retention: config.kv_history_retention,
        compaction_interval: config.compaction_interval,
        health: config.health.clone(),
        unsafe_stale_reads: config.unsafe_stale_reads,
        failpoints: config.failpoints,
    };
    let (core, mut tasks) = Core::start(core_config, raft_listener, &stop_rx).await?;
    let Core {
        registry,
        discovery,
        health,
        lease_keeper,
    } = core;
    let router = sextant_consul::router(sextant_consul::HttpState {
        registry: registry.clone(),
        discovery: discovery.clone(),
        max_value_bytes: config.max_value_bytes,
        health: health.clone(),
        shared: Default::default(),
    });
    tasks.push((
        "http",
        tokio::spawn(serve_http(
            http_listener,
            router,
            stopped(stop_rx.clone()),
            "HTTP",
        )),
    ));

    let nacos_router = sextant_nacos::router(sextant_nacos::NacosState {
        registry: registry.clone(),
        health: health.clone(),
        config: config.nacos.clone(),
        lists: Default::default(),
    });
    tasks.push((
        "nacos",
        tokio::spawn(serve_http(
            nacos_listener,
            nacos_router,
            stopped(stop_rx.clone()),
            "Nacos HTTP",
        )),
    ));

    let etcd = sextant_etcd::EtcdContext {
        registry: registry.clone(),
        keeper: lease_keeper,
        config: config.etcd.clone(),
        lease_ttl_min_secs: sextant_etcd::lease_ttl_min_secs(config.election_timeout),
        stop: stop_rx.clone(),
    };
    let grpc_router = sextant_etcd::add_services(
        tonic::transport::Server::builder()
            .layer(sextant_core::grpc_span::GrpcSpanLayer)
            .add_routes(Default::default()),
        etcd,
    );
    let grpc_router = sextant_native::add_service(
        grpc_router,
        sextant_native::NativeContext {
            registry: registry.clone(),
            health,
            stop: stop_rx.clone(),
        },
    );
    let stop = stopped(stop_rx.clone());
    tasks.push((
        "grpc",
        tokio::spawn(async move {
            let served = grpc_router
                .serve_with_incoming_shutdown(
                    sextant_etcd::authority::incoming(grpc_listener),
                    stop,
                )
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "etcd gRPC server failed");
            }
        }),
    ));

    tasks.push(until_stopped(
        "dns",
        &stop_rx,
        sextant_dns::serve(dns_listeners, registry.clone(), dns_resolver),
    ));

    Ok(RunningServer {
        advertised,
        registry,
        stop_tx,
        tasks,
    })
}

/// Binds one listener; `flag` is the agent flag that moves it, named when
/// the address is taken (by a second server started with the defaults).
async fn bind(
    what: &'static str,
    flag: &'static str,
    addr: std::net::SocketAddr,
) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| bind_error(what, flag, addr, source))
}

fn bind_error(
    what: &'static str,
    flag: &'static str,
    addr: std::net::SocketAddr,
    source: std::io::Error,
) -> StartError {
    if source.kind() == std::io::ErrorKind::AddrInUse {
        StartError::AddrInUse { what, addr, flag }
    } else {
        StartError::Bind { what, addr, source }
    }
}

impl RunningServer {
    /// Resolves when Raft has stopped on a fatal error, with that error
    /// (see [`Registry::fatal`]).
    pub async fn fatal(&self) -> String {
        self.registry.fatal().await
    }

    /// Stops the server: optionally leaves the membership, then stops accepting
    /// requests, lets in-flight ones finish, and shuts Raft down (which flushes
    /// and closes the log). Stops in any case; the error says the leave failed.
    pub async fn shutdown(self, leave: bool) -> Result<(), RegistryError> {
        let left = if leave {
            let left = self.registry.remove_server(self.registry.id()).await;
            if left.is_ok() {
                tracing::info!("left the cluster");
            }
            left
        } else {
            Ok(())
        };
        self.stop_tx.send_replace(true);
        // One grace period for all tasks together; what is still running after
        // it (a blocking query parked for minutes, a client not reading its
        // stream) is aborted, not left behind.
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        for (name, mut task) in self.tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                tracing::warn!(task = name, "did not stop in time; aborted");
                task.abort();
            }
        }
        if let Err(e) = self.registry.shutdown_raft().await {
            tracing::warn!(error = %e, "Raft did not shut down cleanly");
        }
        tracing::info!("stopped");
        left
    }
}

/// Serves `router` on `listener` until `stop` resolves, letting requests in
/// flight finish (the Consul and Nacos APIs).
async fn serve_http(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
    what: &'static str,
) {
    use axum::serve::ListenerExt;
    // Replies leave as soon as they are written, not after the client's
    // delayed ACK of an earlier segment (Nagle).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(stop)
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "{what} server failed");
    }
}
