//! One Sextant server: the durable Raft log, the Raft wiring, the registry
//! facade and the network frontends.
//!
//! Frontends (`http`) reach the replicated state only through [`registry::Registry`];
//! the state machine itself (`sextant-state`) does no I/O.

mod atomic_file;
pub mod cluster;
pub mod compactor;
pub mod config;
pub mod dns;
pub mod etcd;
/// Fuzz target bodies, shared by `fuzz/` and the seeded tests; not API.
#[doc(hidden)]
pub mod fuzzing;
pub mod grpc_span;
pub mod health;
pub mod http;
pub mod identity;
mod lease_forwarding;
pub mod lease_keeper;
pub mod nacos;
pub mod native;
pub mod raft;
pub mod registry;
pub mod server;
pub mod storage;
pub mod tasks;
pub mod telemetry;
pub mod watch_hub;

pub use config::ServerConfig;
pub use server::{start, RunningServer, StartError};
