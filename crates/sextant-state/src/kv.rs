//! One MVCC key space, shared by Consul's `/v1/kv` and etcd's KV service.
//!
//! Every key keeps the versions it went through until a compaction forgets the
//! superseded ones, so etcd clients can read at a past revision and watchers
//! can replay history. A delete leaves a tombstone carrying its revision:
//! Consul's blocking queries on a prefix must see a delete move the index
//! forward, and etcd's watchers must see a DELETE event.
//!
//! The store knows nothing of leases and sessions beyond the ids written on a
//! key. The state machine checks that those exist before a write, and keeps
//! its lease → keys and session → keys indexes up to date from the events that
//! every write emits (the same events that feed watchers).

mod conditions;
mod event;
mod invariants;
mod query;
mod read;
mod restore;
#[cfg(test)]
mod tests;
mod write;

pub use conditions::{KvCondition, LockAction};
pub use event::{KvEvent, KvEventKind};
pub use query::{RangeQuery, RangeResult, SortOrder, SortTarget};
pub(crate) use write::PutRequest;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::lease::LeaseId;
use crate::session::SessionId;

/// One live version of a key, as both Consul and etcd clients see it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct KeyValue {
    #[serde(with = "crate::byte_buf")]
    pub key: Vec<u8>,
    #[serde(with = "crate::byte_buf")]
    pub value: Vec<u8>,
    /// The revision that created this incarnation of the key (Consul's CreateIndex).
    pub create_revision: u64,
    /// The revision of the last write to the key (Consul's ModifyIndex).
    pub mod_revision: u64,
    /// 1 on creation, +1 per write; starts again at 1 after a delete (etcd).
    pub version: u64,
    /// The etcd lease the key is attached to; it is deleted when the lease is revoked.
    pub lease: Option<LeaseId>,
    /// Consul's opaque flags.
    pub flags: u64,
    /// How many times a Consul lock on the key was newly acquired.
    pub lock_index: u64,
    /// The Consul session holding the key's lock, if any.
    pub session: Option<SessionId>,
}

/// One entry in a key's history: what the key was from `revision()` on.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
enum Version {
    Live(KeyValue),
    /// The key was deleted at `revision`.
    Deleted {
        revision: u64,
    },
}

impl Version {
    fn revision(&self) -> u64 {
        match self {
            Version::Live(kv) => kv.mod_revision,
            Version::Deleted { revision } => *revision,
        }
    }

    fn live(&self) -> Option<&KeyValue> {
        match self {
            Version::Live(kv) => Some(kv),
            Version::Deleted { .. } => None,
        }
    }
}

/// The key space with its history.
///
/// Invariants: every history is non-empty, in apply order, so revisions never
/// decrease along it; the newest entry of a history is the key's current state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct KvStore {
    /// Every key's versions, oldest first.
    history: BTreeMap<Vec<u8>, Vec<Version>>,
    /// The state machine's revision, mirrored here so that a read can tell a
    /// future revision from a past one without reaching into the machine.
    revision: u64,
    /// Reads below this revision are refused: their versions may be gone.
    compacted_revision: u64,
    /// The revision of the last write that changed any key: the index a Consul
    /// blocking query falls back to when nothing matches its key or prefix.
    last_change_revision: u64,
    /// The newest tombstone a compaction dropped. A prefix's index never goes
    /// below it, so dropping tombstones never moves a Consul index backwards.
    reaped_tombstone_revision: u64,
    /// Keys whose lock may not be acquired before the given time (ms since the
    /// epoch): Consul's lock-delay after a session holding them was destroyed.
    lock_delays: BTreeMap<Vec<u8>, u64>,
}

impl KvStore {
    pub fn new() -> Self {
        Self::default()
    }
}
