//! The state machine: every replicated store, and the one function that
//! applies a committed command to them.
//!
//! The revision is the index of the last applied Raft entry. Every entry
//! moves it, whether its command was applied, rejected, or carried none (a
//! blank or membership entry, through `advance`): the log index was consumed
//! either way, and replicas must agree on the revision as on everything else.
//! A rejected command changes nothing else.

mod catalog_ops;
mod invariants;
mod kv_ops;
mod lease_ops;
mod restore_ops;
#[cfg(test)]
mod restore_tests;
mod session_ops;
mod snapshot;
#[cfg(test)]
mod tests;
mod txn_ops;
#[cfg(test)]
mod txn_tests;

pub use snapshot::{SnapshotError, SNAPSHOT_FORMAT_VERSION};

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::command::{Command, Op, Response};
use crate::kv::{KvEvent, KvStore};
use crate::lease::LeaseStore;
use crate::session::SessionStore;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct StateMachine {
    /// The index of the last applied Raft entry.
    revision: u64,
    kv: KvStore,
    catalog: Catalog,
    sessions: SessionStore,
    leases: LeaseStore,
    /// etcd's cluster id: fixed by the first entry ever applied (see
    /// `adopt_cluster_id`), then kept through snapshots, so every member
    /// reports the same id for the cluster's whole life.
    cluster_id: u64,
}

/// What applying one entry did, beyond its response: what the server's watch
/// hub needs to wake exactly the watchers whose answer changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyOutcome {
    pub response: Response,
    /// Every key change, in the order made, all at the entry's revision.
    pub kv_events: Vec<KvEvent>,
    /// Service names whose `Catalog::instances` answer changed.
    pub service_names: BTreeSet<String>,
}

/// What the op handlers collect while one command is applied.
#[derive(Default)]
struct Effects {
    kv_events: Vec<KvEvent>,
    service_names: BTreeSet<String>,
}

impl StateMachine {
    pub fn new() -> Self {
        Self::default()
    }

    /// The index of the last applied Raft entry (0 before any).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn kv(&self) -> &KvStore {
        &self.kv
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn sessions(&self) -> &SessionStore {
        &self.sessions
    }

    pub fn leases(&self) -> &LeaseStore {
        &self.leases
    }

    /// etcd's cluster id; 0 until the first entry is applied.
    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    /// Records the cluster id unless one is already set. The Raft layer calls
    /// it with a value derived from the log id of the first entry it applies,
    /// which every replica applies identically, so all agree without another
    /// command.
    pub fn adopt_cluster_id(&mut self, id: u64) {
        if self.cluster_id == 0 {
            self.cluster_id = id;
        }
    }

    /// Applies the command of the Raft entry at `index`; see `apply_with_events`.
    pub fn apply(&mut self, index: u64, cmd: &Command) -> Response {
        self.apply_with_events(index, cmd).response
    }

    /// Applies the command of the Raft entry at `index` and reports what
    /// changed.
    ///
    /// `index` must be above the current revision. An entry at or below it
    /// was already applied (a replay over a snapshot that covers it), so it
    /// is ignored with `Response::Done`: applying it twice would write keys
    /// at a revision in the past.
    pub fn apply_with_events(&mut self, index: u64, cmd: &Command) -> ApplyOutcome {
        let mut fx = Effects::default();
        let response = if index <= self.revision {
            Response::Done
        } else {
            self.set_revision(index);
            self.dispatch(&cmd.op, cmd.now_ms, &mut fx)
        };
        ApplyOutcome {
            response,
            kv_events: fx.kv_events,
            service_names: fx.service_names,
        }
    }

    /// Moves the revision to `index` for a Raft entry without a command
    /// (blank or membership). A stale index is ignored.
    pub fn advance(&mut self, index: u64) {
        if index > self.revision {
            self.set_revision(index);
        }
    }

    fn set_revision(&mut self, index: u64) {
        self.revision = index;
        self.kv.set_revision(index);
    }

    fn dispatch(&mut self, op: &Op, now_ms: u64, fx: &mut Effects) -> Response {
        match op {
            Op::KvPut {
                key,
                value,
                flags,
                lease,
                condition,
                lock,
            } => self.kv_put(key, value, *flags, *lease, *condition, lock, now_ms, fx),
            Op::KvDelete {
                key,
                prefix,
                condition,
            } => self.kv_delete(key, *prefix, *condition, fx),
            Op::KvCompact { revision } => self.kv_compact(*revision),
            Op::RegisterNode { .. }
            | Op::DeregisterNode { .. }
            | Op::RegisterService { .. }
            | Op::DeregisterService { .. }
            | Op::RegisterCheck { .. }
            | Op::DeregisterCheck { .. }
            | Op::UpdateCheck { .. } => self.catalog_op(op, now_ms, fx),
            Op::CreateSession { session } => self.create_session(session),
            Op::DestroySession { id } => {
                self.destroy_session(id, now_ms, fx);
                Response::Done
            }
            Op::LeaseGrant { id, ttl_secs } => self.lease_grant(*id, *ttl_secs),
            Op::LeaseRevoke { id } => self.lease_revoke(*id, fx),
            Op::Txn { txn } => self.txn(txn, now_ms, fx),
            Op::RestoreSnapshot { snapshot } => self.restore_snapshot(snapshot, fx),
        }
    }
}
