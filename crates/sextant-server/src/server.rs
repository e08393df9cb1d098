//! Wiring one server together, in dependency order: identity → listeners →
//! log store → state machine → network → Raft → registry → internal gRPC API →
//! HTTP API → Nacos API → etcd API → DNS → cluster formation. Shutdown runs the other way round.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sextant_proto::internal::internal_server::InternalServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cluster::bootstrap::Bootstrap;
use crate::cluster::discovery::Discovery;
use crate::config::{ConfigError, ServerConfig};
use crate::identity::{self, Advertised};
use crate::lease_keeper::LeaseKeeper;
use crate::raft::network::{Network, MAX_MESSAGE_BYTES};
use crate::raft::service::InternalService;
use crate::raft::snapshot_file::{SnapshotFile, SnapshotFileError};
use crate::raft::state_machine::StateMachineStore;
use crate::raft::{Raft, ServerNode};
use crate::registry::{Registry, RegistryConfig};
use crate::storage::{LogStore, LogStoreConfig};
use crate::tasks::{stopped, until_stopped};

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
    #[error("cannot open the Raft log: {0}")]
    Log(String),
    #[error(transparent)]
    Snapshot(#[from] SnapshotFileError),
    #[error("cannot start Raft: {0}")]
    Raft(String),
    #[error("cannot start health checking: {0}")]
    Health(String),
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
    let dns_listeners = crate::dns::bind(dns_addr)
        .await
        .map_err(|source| bind_error("DNS", "--dns-addr", dns_addr, source))?;
    let dns_resolver =
        crate::dns::resolve::Resolver::new(&config.dns).map_err(|e| ConfigError::Invalid {
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
    crate::telemetry::handle();
    if config.failpoints.any() {
        tracing::warn!(failpoints = %config.failpoints, "TEST ONLY: storage failpoints are on");
    }
    let log_config = LogStoreConfig {
        failpoints: config.failpoints,
        ..LogStoreConfig::default()
    };
    let log_store = LogStore::open(data_dir.join("raft-log"), log_config)
        .map_err(|e| StartError::Log(e.to_string()))?;
    let state_machine = StateMachineStore::open(
        SnapshotFile::new(data_dir.join("snapshots")),
        config.watch_backlog,
    )?;
    let shared = state_machine.shared();
    let network = Network::default();
    let peers = network.clients.clone();
    let raft_config = config
        .raft_config()
        .validate()
        .map_err(|e| StartError::Raft(e.to_string()))?;
    let raft = Raft::new(
        node_id,
        Arc::new(raft_config),
        network,
        log_store,
        state_machine,
    )
    .await
    .map_err(|e| StartError::Raft(e.to_string()))?;

    let registry = Arc::new(Registry::new(
        node_id,
        node,
        raft,
        shared,
        peers.clone(),
        RegistryConfig {
            request_timeout: (config.election_timeout * 10).max(Duration::from_secs(5)),
            forward_timeout: (config.election_timeout * 5).max(Duration::from_secs(2)),
            election_timeout: config.election_timeout,
            unsafe_stale_reads: config.unsafe_stale_reads,
        },
    ));
    let discovery = Arc::new(Discovery::new(registry.clone()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();

    let lease_keeper = LeaseKeeper::new(registry.clone(), config.election_timeout);
    let internal = InternalServer::new(
        InternalService::new(registry.clone(), discovery.clone())
            .with_lease_keeper(lease_keeper.clone()),
    )
    .max_decoding_message_size(MAX_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let stop = stopped(stop_rx.clone());
    tasks.push((
        "internal-grpc",
        tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(internal)
                .serve_with_incoming_shutdown(
                    // Without TCP_NODELAY a reply written in more than one
                    // segment (HTTP/2 headers, data, trailers) waits for the
                    // peer's delayed ACK: 40 ms added to a Raft round now
                    // and then.
                    tonic::transport::server::TcpIncoming::from(raft_listener)
                        .with_nodelay(Some(true)),
                    stop,
                )
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "internal gRPC server failed");
            }
        }),
    ));

    let (health, health_tasks) = match crate::health::start(
        registry.clone(),
        discovery.clone(),
        peers.clone(),
        config.health.clone(),
        stop_rx.clone(),
    ) {
        Ok(started) => started,
        Err(e) => {
            // Leave nothing running behind a failed start.
            stop_tx.send_replace(true);
            for (_, task) in tasks {
                task.abort();
            }
            let _ = registry.raft().shutdown().await;
            return Err(StartError::Health(e));
        }
    };
    tasks.extend(health_tasks);
    let router = crate::http::router(crate::http::HttpState {
        registry: registry.clone(),
        discovery: discovery.clone(),
        peers: peers.clone(),
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

    let nacos_router = crate::nacos::router(crate::nacos::NacosState {
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

    tasks.push((
        "lease-keeper",
        tokio::spawn(lease_keeper.clone().run(stop_rx.clone())),
    ));
    let etcd = crate::etcd::EtcdContext {
        registry: registry.clone(),
        keeper: lease_keeper,
        config: config.etcd.clone(),
        lease_ttl_min_secs: crate::etcd::lease_ttl_min_secs(config.election_timeout),
        stop: stop_rx.clone(),
    };
    let grpc_router = crate::etcd::add_services(
        tonic::transport::Server::builder()
            .layer(crate::grpc_span::GrpcSpanLayer)
            .add_routes(Default::default()),
        etcd,
    );
    let grpc_router = crate::native::add_service(
        grpc_router,
        crate::native::NativeContext {
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
                .serve_with_incoming_shutdown(crate::etcd::authority::incoming(grpc_listener), stop)
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "etcd gRPC server failed");
            }
        }),
    ));

    tasks.push(until_stopped(
        "dns",
        &stop_rx,
        crate::dns::serve(dns_listeners, registry.clone(), dns_resolver),
    ));

    let bootstrap = Bootstrap {
        registry: registry.clone(),
        discovery,
        peers,
        join: config.join.clone(),
        bootstrap_expect: config.bootstrap_expect,
    };
    tasks.push(until_stopped("bootstrap", &stop_rx, bootstrap.run()));
    tasks.push(until_stopped(
        "raft-observer",
        &stop_rx,
        crate::raft::observer::log_transitions(registry.raft().clone()),
    ));

    let compactor = crate::compactor::Compactor {
        registry: registry.clone(),
        retention: config.kv_history_retention,
        interval: config.compaction_interval,
    };
    tasks.push(until_stopped("compactor", &stop_rx, compactor.run()));

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
    /// Resolves when Raft has stopped on a fatal error — the log could not be
    /// written or synced, say — with that error. Such a server can no longer
    /// take part in the cluster; like etcd, it should exit, so that it is
    /// restarted and recovers from what its disk holds. Never resolves while
    /// Raft runs or after a clean shutdown.
    pub async fn fatal(&self) -> String {
        let mut metrics = self.registry.raft().metrics();
        loop {
            if let Err(fatal) = &metrics.borrow_and_update().running_state {
                return match fatal {
                    openraft::error::Fatal::Stopped => std::future::pending().await,
                    fatal => fatal.to_string(),
                };
            }
            if metrics.changed().await.is_err() {
                // Raft's core task ended without saying why: it panicked
                // (a clean shutdown says `Stopped` first, and is not awaited
                // here anyway).
                return "Raft's core task ended (it panicked; see the log above)".to_owned();
            }
        }
    }

    /// Stops the server: optionally leaves the membership, then stops accepting
    /// requests, lets in-flight ones finish, and shuts Raft down (which flushes
    /// and closes the log). Stops in any case; the error says the leave failed.
    pub async fn shutdown(self, leave: bool) -> Result<(), crate::registry::RegistryError> {
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
        if let Err(e) = self.registry.raft().shutdown().await {
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
