//! One Sextant server, assembled: its configuration, its listeners, the
//! core (`sextant-core`: Raft, the registry facade, health, cluster
//! formation) and every frontend on top of it — Consul's HTTP API, etcd's
//! and Sextant's gRPC APIs, Nacos, DNS — started in order and shut down in
//! the reverse order.
//!
//! Frontends reach the replicated state only through the core's registry
//! facade; the state machine itself (`sextant-state`) does no I/O.

pub mod config;
pub mod server;

pub use config::ServerConfig;
pub use server::{start, RunningServer, StartError};
