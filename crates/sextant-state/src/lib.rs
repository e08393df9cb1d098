//! The replicated state machine of Sextant.
//!
//! Everything a server agrees on through Raft lives here: the catalog (nodes,
//! services, checks), sessions, leases and one MVCC key space. Applying a
//! command is pure and deterministic: no I/O, no clock, no randomness, no
//! hash-ordered containers. The revision of every change is the Raft log index
//! that carried it, so one counter is at once Consul's index and etcd's revision.
//!
//! This crate depends on nothing of the server: no Raft, no storage, no network.

mod byte_buf;
pub mod catalog;
pub mod command;
/// Fuzz target bodies, shared by `fuzz/` and the seeded tests; not API.
#[doc(hidden)]
pub mod fuzzing;
pub mod kv;
pub mod lease;
pub mod machine;
pub mod session;
pub mod txn;

pub use command::{Command, KvCondition, LockAction, Op, Response};
pub use machine::StateMachine;

use serde::{Deserialize, Serialize};

/// Why a command was rejected by the state machine. A rejected command changes nothing.
#[derive(thiserror::Error, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum ApplyError {
    #[error("node {node:?} is not registered")]
    UnknownNode { node: String },
    #[error("service {service_id:?} is not registered on node {node:?}")]
    UnknownService { node: String, service_id: String },
    #[error("check {check_id:?} is not registered on node {node:?}")]
    UnknownCheck { node: String, check_id: String },
    #[error("invalid session {id:?}")]
    UnknownSession { id: String },
    #[error("session {id:?} already exists")]
    SessionExists { id: String },
    /// Consul refuses a session on a check that is not healthy.
    #[error("check {check_id:?} on node {node:?} is in {status} state")]
    CheckFailing {
        node: String,
        check_id: String,
        status: crate::catalog::CheckStatus,
    },
    #[error("lease {id} not found")]
    UnknownLease { id: i64 },
    #[error("lease {id} already exists")]
    LeaseExists { id: i64 },
    #[error("revision {revision} has been compacted (compacted revision {compacted})")]
    Compacted { revision: u64, compacted: u64 },
    #[error("revision {revision} is in the future (current revision {current})")]
    FutureRevision { revision: u64, current: u64 },
    /// An etcd put that keeps the value or lease of a key that does not exist.
    #[error("key {key:?} not found")]
    KeyNotFound { key: Vec<u8> },
    /// A restore whose snapshot does not decode to a consistent state.
    #[error("invalid snapshot: {reason}")]
    InvalidSnapshot { reason: String },
}
