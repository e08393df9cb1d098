//! The core of a Sextant server, shared by every frontend: Raft wiring, the
//! registry facade (the one door to the replicated state), calls between
//! servers, cluster formation, health checking, the etcd lease keeper, the
//! watch hub, history compaction and telemetry.
//!
//! Frontends depend on this crate, never on openraft: the facade hands out a
//! typed read view ([`registry::StateView`]) and a status snapshot
//! ([`registry::RaftStatus`]) instead of Raft's own types.

pub mod cluster;
pub mod compactor;
pub mod config_error;
pub mod grpc_span;
pub mod health;
pub mod http_metrics;
pub mod identity;
pub(crate) mod internal_api;
pub mod lease_keeper;
pub mod node;
pub mod peer;
pub(crate) mod raft;
pub mod registry;
pub mod scrape;
pub mod snapshot_archive;
pub mod tasks;
pub mod telemetry;
pub mod watch_hub;
pub mod wiring;

pub use config_error::ConfigError;
pub use node::{NodeId, ServerNode};
