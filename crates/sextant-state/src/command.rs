//! The commands that go through Raft and the responses their application yields.
//!
//! A command carries everything its application needs, including the time at
//! which the leader proposed it: applying a command never reads a clock, so
//! every replica that applies the same log reaches the same state.

use serde::{Deserialize, Serialize};

use crate::catalog::{Check, CheckStatus, Node, Service};
pub use crate::kv::{KvCondition, LockAction};
use crate::lease::LeaseId;
use crate::session::{Session, SessionId};

/// One replicated change, stamped with the proposer's wall-clock time.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// Milliseconds since the Unix epoch on the proposing server.
    pub now_ms: u64,
    pub op: Op,
}

impl Command {
    pub fn new(now_ms: u64, op: Op) -> Self {
        Self { now_ms, op }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Write one key.
    KvPut {
        #[serde(with = "crate::byte_buf")]
        key: Vec<u8>,
        #[serde(with = "crate::byte_buf")]
        value: Vec<u8>,
        /// Consul's opaque 64-bit flags.
        flags: u64,
        /// Attach the key to this lease (etcd); `None` detaches it.
        lease: Option<LeaseId>,
        condition: KvCondition,
        lock: LockAction,
    },
    /// Delete one key, or every key starting with `key` when `prefix` is set.
    KvDelete {
        key: Vec<u8>,
        prefix: bool,
        condition: KvCondition,
    },
    /// Forget every superseded version of a key older than `revision`.
    KvCompact { revision: u64 },

    /// Create or replace a node.
    RegisterNode { node: Node },
    /// Remove a node with its services and checks; its sessions are invalidated.
    DeregisterNode { node: String },
    /// Create or replace a service instance on a node, with checks that belong to it.
    /// With `replace_checks`, the service's existing checks not listed are removed.
    RegisterService {
        node: String,
        service: Service,
        checks: Vec<Check>,
        replace_checks: bool,
    },
    /// Remove a service instance and its checks. Absent is not an error.
    DeregisterService { node: String, service_id: String },
    /// Create or replace a check (node-level when `check.service_id` is `None`).
    RegisterCheck { check: Check },
    /// Remove a check. Absent is not an error.
    DeregisterCheck { node: String, check_id: String },
    /// Record a check's new status and output.
    UpdateCheck {
        node: String,
        check_id: String,
        status: CheckStatus,
        output: String,
    },

    /// Create a session (its id is chosen by the proposer).
    CreateSession { session: Session },
    /// Destroy a session, releasing or deleting what it holds per its behavior.
    DestroySession { id: SessionId },

    /// Grant a lease with an id chosen by the proposer.
    LeaseGrant { id: LeaseId, ttl_secs: i64 },
    /// Revoke a lease and delete every key attached to it.
    LeaseRevoke { id: LeaseId },

    /// An etcd Txn (etcd's Put and DeleteRange travel as one, too): compares,
    /// then one branch, atomically at this entry's revision.
    Txn { txn: crate::txn::Txn },

    /// Replace the whole state with a snapshot (`sextant snapshot restore`).
    /// The command carries the encoded bytes and every replica decodes them
    /// while applying, so all reach the same state. The restored state
    /// continues at this entry's revision: nothing moves backwards for
    /// watchers, and every key or record that differs is written anew here.
    RestoreSnapshot {
        /// Bytes written by `StateMachine::encode_snapshot`.
        #[serde(with = "crate::byte_buf")]
        snapshot: Vec<u8>,
    },
}

/// The outcome of applying one command.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// The command changed what it was asked to change (or was a no-op by design).
    Done,
    /// A conditional command: `true` if its condition held and it was applied.
    Applied(bool),
    /// How many keys a delete removed.
    Deleted(u64),
    /// What an etcd Txn did.
    Txn(crate::txn::TxnResult),
    /// The command was rejected; nothing changed.
    Rejected(crate::ApplyError),
}
