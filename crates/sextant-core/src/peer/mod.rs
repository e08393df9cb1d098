//! Server-to-server calls: every one travels over the internal gRPC API on
//! the raft port — Raft's own messages, forwarded writes and reads, cluster
//! formation, lease keep-alives, TTL updates and session renewals — so that
//! one listener, and later one mutual-TLS configuration, guards them all.

mod batched;
mod client;
mod messages;

pub use batched::BatchedCalls;
pub use client::{CallError, Method, PeerClients, MAX_MESSAGE_BYTES};
pub use messages::*;
