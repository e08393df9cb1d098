//! Sextant's native registry API, `sextant.v1.Registry`, on `--grpc-addr`
//! next to the etcd API: what the `sextant-client` crate speaks.
//!
//! Like the etcd adapters, every call is a thin mapping onto what the
//! Consul API already uses — nothing here keeps a registry of its own:
//! - `Register` / `Deregister` are catalog writes (`Op::RegisterService`,
//!   `Op::DeregisterService`), answered once committed and applied on the
//!   receiving server; a `ttl_ms` becomes a TTL check, other checks are the
//!   HTTP, TCP and gRPC checks the servers probe for the Consul API;
//! - `KeepAlive` renews TTL checks through [`sextant_core::health::Health::ttl_update_routed`],
//!   the path of Consul's `/v1/agent/check/pass`;
//! - `Discover` and `Watch` read `Catalog::instances`, the evaluation behind
//!   `/v1/health/service/:name`, and `Watch` wakes on the watch hub's
//!   per-service watch, as blocking health queries do.
//!
//! Instances live on one catalog node, [`NATIVE_NODE`], not on the node of
//! the server that received them: a client process keeps its instances
//! alive itself (TTL, probes), so the death of that server — whose
//! `serfHealth` check counts for every instance on its node — must not take
//! them out of discovery. Failures become gRPC statuses in one place,
//! `error.rs`.

mod convert;
mod discover;
mod error;
mod keepalive;
mod register;
mod selection;
mod service;
mod watch;

use std::sync::Arc;

use sextant_proto::v1::registry_server::RegistryServer;
use tokio::sync::watch as signal;
use tonic::transport::server::Router;

use sextant_core::health::Health;
use sextant_core::registry::Registry;

pub use error::NativeError;

/// The catalog node every instance registered through this API is on.
pub const NATIVE_NODE: &str = "sextant-native";

/// The largest request accepted, as for the etcd API (a KeepAlive naming
/// thousands of instances still fits).
const MAX_DECODING_BYTES: usize = 2 * 1024 * 1024;

/// What the calls share.
#[derive(Clone)]
pub struct NativeContext {
    /// Writes and reads of the replicated state.
    pub registry: Arc<Registry>,
    /// TTL updates, routed to the server that owns each check.
    pub health: Arc<Health>,
    /// Set when the server stops, so that long-lived streams end.
    pub stop: signal::Receiver<bool>,
}

/// Adds the `sextant.v1.Registry` service to a gRPC router.
pub fn add_service<L>(router: Router<L>, ctx: NativeContext) -> Router<L> {
    router.add_service(
        RegistryServer::new(service::NativeRegistry::new(ctx))
            .max_decoding_message_size(MAX_DECODING_BYTES),
    )
}
