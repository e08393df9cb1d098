//! Wiring the core of one server, in dependency order: log store → state
//! machine → network → Raft → registry → discovery → health → lease keeper
//! → internal gRPC API → cluster formation, the Raft observer and the
//! history compactor. The frontends are started on top of it by the server.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sextant_proto::internal::internal_server::InternalServer;
use sextant_storage::{Failpoints, LogStore, LogStoreConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cluster::bootstrap::Bootstrap;
use crate::cluster::discovery::Discovery;
use crate::compactor::Compactor;
use crate::health::{Health, HealthConfig};
use crate::internal_api::InternalService;
use crate::lease_keeper::LeaseKeeper;
use crate::node::{NodeId, ServerNode};
use crate::peer::MAX_MESSAGE_BYTES;
use crate::raft::network::Network;
use crate::raft::snapshot_file::{SnapshotFile, SnapshotFileError};
use crate::raft::state_machine::StateMachineStore;
use crate::raft::Raft;
use crate::registry::{Registry, RegistryConfig};
use crate::tasks::{stopped, until_stopped, Task};

/// What the core of a server is started with.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    pub node_id: NodeId,
    /// The server's name and the addresses it advertises.
    pub node: ServerNode,
    /// Where the Raft log and snapshots live.
    pub data_dir: PathBuf,
    pub election_timeout: Duration,
    pub snapshot_threshold: u64,
    pub watch_backlog: usize,
    pub join: Vec<String>,
    pub bootstrap_expect: usize,
    pub kv_history_retention: u64,
    pub compaction_interval: Duration,
    pub health: HealthConfig,
    /// TEST ONLY: see `RegistryConfig::unsafe_stale_reads`.
    pub unsafe_stale_reads: bool,
    /// TEST ONLY: storage faults.
    pub failpoints: Failpoints,
}

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("cannot open the Raft log: {0}")]
    Log(String),
    #[error(transparent)]
    Snapshot(#[from] SnapshotFileError),
    #[error("cannot start Raft: {0}")]
    Raft(String),
    #[error("cannot start health checking: {0}")]
    Health(String),
}

/// The running core: what the frontends are built on.
pub struct Core {
    pub registry: Arc<Registry>,
    pub discovery: Arc<Discovery>,
    pub health: Arc<Health>,
    pub lease_keeper: Arc<LeaseKeeper>,
}

impl Core {
    /// Starts Raft and the core's tasks, serving the internal API on
    /// `raft_listener`; every task ends when `stop` turns true.
    pub async fn start(
        config: CoreConfig,
        raft_listener: TcpListener,
        stop: &watch::Receiver<bool>,
    ) -> Result<(Core, Vec<Task>), CoreError> {
        if config.failpoints.any() {
            tracing::warn!(failpoints = %config.failpoints, "TEST ONLY: storage failpoints are on");
        }
        let log_config = LogStoreConfig {
            failpoints: config.failpoints,
            ..LogStoreConfig::default()
        };
        let log_store = LogStore::open(config.data_dir.join("raft-log"), log_config)
            .map_err(|e| CoreError::Log(e.to_string()))?;
        let state_machine = StateMachineStore::open(
            SnapshotFile::new(config.data_dir.join("snapshots")),
            config.watch_backlog,
        )?;
        let shared = state_machine.shared();
        let network = Network::default();
        let peers = network.clients.clone();
        let raft_config =
            crate::raft::config::raft_config(config.election_timeout, config.snapshot_threshold)
                .validate()
                .map_err(|e| CoreError::Raft(e.to_string()))?;
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            network,
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| CoreError::Raft(e.to_string()))?;

        let registry = Arc::new(Registry::new(
            config.node_id,
            config.node.clone(),
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
        let (health, mut tasks) = match crate::health::start(
            registry.clone(),
            discovery.clone(),
            peers.clone(),
            config.health.clone(),
            stop.clone(),
        ) {
            Ok(started) => started,
            Err(e) => {
                // Leave nothing running behind a failed start.
                let _ = registry.shutdown_raft().await;
                return Err(CoreError::Health(e));
            }
        };
        let lease_keeper = LeaseKeeper::new(registry.clone(), config.election_timeout);
        tasks.push(serve_internal(
            raft_listener,
            InternalService::new(
                registry.clone(),
                discovery.clone(),
                lease_keeper.clone(),
                health.clone(),
            ),
            stop,
        ));
        tasks.push((
            "lease-keeper",
            tokio::spawn(lease_keeper.clone().run(stop.clone())),
        ));
        let bootstrap = Bootstrap {
            registry: registry.clone(),
            discovery: discovery.clone(),
            peers,
            join: config.join.clone(),
            bootstrap_expect: config.bootstrap_expect,
        };
        tasks.push(until_stopped("bootstrap", stop, bootstrap.run()));
        tasks.push(until_stopped(
            "raft-observer",
            stop,
            crate::raft::observer::log_transitions(registry.raft().clone()),
        ));
        let compactor = Compactor {
            registry: registry.clone(),
            retention: config.kv_history_retention,
            interval: config.compaction_interval,
        };
        tasks.push(until_stopped("compactor", stop, compactor.run()));
        let core = Core {
            registry,
            discovery,
            health,
            lease_keeper,
        };
        Ok((core, tasks))
    }
}

/// Serves the internal gRPC API (Raft, forwarding, everything between
/// servers) on the raft port.
fn serve_internal(
    listener: TcpListener,
    service: InternalService,
    stop: &watch::Receiver<bool>,
) -> Task {
    let internal = InternalServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let stop = stopped(stop.clone());
    let task = tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(internal)
            .serve_with_incoming_shutdown(
                // Without TCP_NODELAY a reply written in more than one
                // segment (HTTP/2 headers, data, trailers) waits for the
                // peer's delayed ACK: 40 ms added to a Raft round now
                // and then.
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                stop,
            )
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "internal gRPC server failed");
        }
    });
    ("internal-grpc", task)
}
