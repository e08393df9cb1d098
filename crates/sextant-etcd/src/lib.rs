//! The etcd v3 gRPC API on `--grpc-addr`: KV, Watch, Lease, Cluster and
//! Maintenance, so that etcd clients work against Sextant unchanged.
//!
//! Each service is a thin adapter: it validates a request, maps it onto the
//! state crate's types, and calls the registry facade (writes through Raft,
//! reads after a read barrier). etcd semantics live in `sextant-state`
//! (ranges, Txns, history) and in the lease keeper; errors become gRPC
//! statuses in one place, `error.rs`. The catalog is visible read-only under
//! `catalog_view::PREFIX`.

pub mod authority;
mod catalog_view;
mod cluster;
// Reached by the fuzz facade (`crate::fuzzing`) for the request checks.
pub(crate) mod convert;
mod error;
/// The fuzz target body of the etcd request checks, shared by `fuzz/` and
/// the seeded tests; not API.
#[doc(hidden)]
pub mod fuzzing;
mod kv;
mod lease;
mod maintenance;
mod watch;
mod watch_stream;

use std::sync::Arc;
use std::time::Duration;

use sextant_proto::etcd::etcdserverpb::cluster_server::ClusterServer;
use sextant_proto::etcd::etcdserverpb::kv_server::KvServer;
use sextant_proto::etcd::etcdserverpb::lease_server::LeaseServer;
use sextant_proto::etcd::etcdserverpb::maintenance_server::MaintenanceServer;
use sextant_proto::etcd::etcdserverpb::watch_server::WatchServer;
use sextant_proto::etcd::etcdserverpb::ResponseHeader;
use tokio::sync::watch as signal;
use tonic::transport::server::Router;

use sextant_core::lease_keeper::LeaseKeeper;
use sextant_core::registry::Registry;

pub use catalog_view::PREFIX as CATALOG_PREFIX;

/// etcd's `--max-request-bytes` default: larger requests are refused.
pub const MAX_REQUEST_BYTES: usize = 1536 * 1024;
/// What gRPC itself accepts: the request limit plus etcd's 512 KiB of slack.
pub const MAX_DECODING_BYTES: usize = MAX_REQUEST_BYTES + 512 * 1024;

/// Knobs of the etcd API.
#[derive(Clone, Debug)]
pub struct EtcdConfig {
    /// How often a watcher created with `progress_notify` gets a progress
    /// response when nothing else was sent (etcd: 10 minutes).
    pub progress_notify_interval: Duration,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        Self {
            progress_notify_interval: Duration::from_secs(600),
        }
    }
}

/// The shortest lease TTL granted, as etcd derives it: 1.5 election
/// timeouts rounded up to whole seconds (2 s with the default 1 s), so a
/// lease cannot expire during the election that follows a leader's death.
pub fn lease_ttl_min_secs(election_timeout: Duration) -> i64 {
    let min_ms = election_timeout.as_millis().saturating_mul(3) / 2;
    i64::try_from(min_ms.div_ceil(1000)).unwrap_or(1).max(1)
}

/// What every adapter shares.
#[derive(Clone)]
pub struct EtcdContext {
    pub registry: Arc<Registry>,
    pub keeper: Arc<LeaseKeeper>,
    pub config: EtcdConfig,
    /// See `lease_ttl_min_secs`.
    pub lease_ttl_min_secs: i64,
    /// Set when the server stops, so long-lived streams end.
    pub stop: signal::Receiver<bool>,
}

impl EtcdContext {
    /// A response header: the cluster and member ids, the Raft term and the
    /// given revision (0 for calls that do not touch the key space).
    pub fn header(&self, revision: u64) -> Option<ResponseHeader> {
        let raft_term = self.registry.term();
        let cluster_id = self.registry.view().cluster_id();
        Some(ResponseHeader {
            cluster_id,
            member_id: self.registry.id(),
            revision: i64::try_from(revision).unwrap_or(i64::MAX),
            raft_term,
        })
    }

    /// The store's current revision.
    pub fn revision(&self) -> u64 {
        self.registry.revision()
    }
}

/// Adds every etcd service to a gRPC router.
pub fn add_services<L>(router: Router<L>, ctx: EtcdContext) -> Router<L> {
    router
        .add_service(limit(KvServer::new(kv::KvService::new(ctx.clone()))))
        .add_service(
            WatchServer::new(watch::WatchService::new(ctx.clone()))
                .max_decoding_message_size(MAX_DECODING_BYTES),
        )
        .add_service(
            LeaseServer::new(lease::LeaseService::new(ctx.clone()))
                .max_decoding_message_size(MAX_DECODING_BYTES),
        )
        .add_service(
            ClusterServer::new(cluster::ClusterService::new(ctx.clone()))
                .max_decoding_message_size(MAX_DECODING_BYTES),
        )
        .add_service(
            MaintenanceServer::new(maintenance::MaintenanceService::new(ctx))
                .max_decoding_message_size(MAX_DECODING_BYTES),
        )
}

fn limit<S>(server: KvServer<S>) -> KvServer<S>
where
    S: sextant_proto::etcd::etcdserverpb::kv_server::Kv,
{
    server.max_decoding_message_size(MAX_DECODING_BYTES)
}
