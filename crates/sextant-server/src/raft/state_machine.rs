//! openraft's view of the state machine: applies committed entries to the pure
//! [`sextant_state::StateMachine`], builds and installs snapshots, and tells
//! readers (blocking queries, watches) that the applied revision moved.
//!
//! The state lives in memory behind a lock that is never held across `.await`;
//! snapshots are written to disk through [`SnapshotFile`].

use std::collections::BTreeSet;
use std::io::Cursor;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError};
use sextant_state::{Response, StateMachine};
use tokio::sync::watch;

use super::snapshot_file::{SnapshotFile, StoredSnapshot};
use super::{Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use crate::watch_hub::WatchHub;

/// The applied state of one server.
#[derive(Debug, Default)]
pub struct Applied {
    pub machine: StateMachine,
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
}

/// The applied state, shared between openraft (which writes it) and the
/// registry facade (which reads it).
#[derive(Debug)]
pub struct SharedState {
    applied: RwLock<Applied>,
    /// The last applied log index, so readers can wait for it to move.
    revision_tx: watch::Sender<u64>,
    /// What each applied batch changed, for watchers of keys and services.
    hub: WatchHub,
}

impl SharedState {
    fn new(applied: Applied, watch_backlog: usize) -> Arc<Self> {
        let revision = applied.machine.revision();
        let (revision_tx, _) = watch::channel(revision);
        Arc::new(Self {
            applied: RwLock::new(applied),
            revision_tx,
            hub: WatchHub::with_capacity(watch_backlog),
        })
    }

    /// Reads the state; a poisoned lock still holds a consistent state because
    /// every write to it is a whole-entry apply or a whole-state swap.
    pub fn read(&self) -> RwLockReadGuard<'_, Applied> {
        self.applied.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Applied> {
        self.applied.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The last applied revision (Raft log index).
    pub fn revision(&self) -> u64 {
        *self.revision_tx.borrow()
    }

    /// A receiver that changes whenever entries are applied.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.revision_tx.subscribe()
    }

    pub fn hub(&self) -> &WatchHub {
        &self.hub
    }

    fn publish(&self, revision: u64) {
        self.revision_tx.send_replace(revision);
    }
}

/// The [`RaftStateMachine`] implementation handed to openraft.
#[derive(Clone)]
pub struct StateMachineStore {
    shared: Arc<SharedState>,
    snapshot_file: SnapshotFile,
}

impl StateMachineStore {
    /// Opens the state machine, restoring it from the snapshot on disk if there is one.
    /// openraft then re-applies the log entries after the snapshot.
    /// `watch_backlog`: how many applied batches a key watcher may fall
    /// behind before it must resync from the history.
    pub fn open(
        snapshot_file: SnapshotFile,
        watch_backlog: usize,
    ) -> Result<Self, super::snapshot_file::SnapshotFileError> {
        let applied = match snapshot_file.load()? {
            Some(stored) => restore(&stored.meta, &stored.data).map_err(|reason| {
                super::snapshot_file::SnapshotFileError::Corrupt {
                    path: "state.snap".into(),
                    reason,
                }
            })?,
            None => Applied::default(),
        };
        Ok(Self {
            shared: SharedState::new(applied, watch_backlog),
            snapshot_file,
        })
    }

    pub fn shared(&self) -> Arc<SharedState> {
        self.shared.clone()
    }
}

/// etcd's cluster id, from the log id of the first entry a cluster applies:
/// the same on every replica, and different for clusters formed apart.
fn cluster_id_of(log_id: &LogId) -> u64 {
    let mut hash = crc32fast::Hasher::new();
    hash.update(&log_id.leader_id.term.to_le_bytes());
    hash.update(&log_id.leader_id.node_id.to_le_bytes());
    hash.update(&log_id.index.to_le_bytes());
    let low = u64::from(hash.finalize());
    (log_id.leader_id.node_id.rotate_left(32) ^ low).max(1)
}

fn restore(meta: &SnapshotMeta, data: &[u8]) -> Result<Applied, String> {
    let machine = StateMachine::decode_snapshot(data).map_err(|e| e.to_string())?;
    Ok(Applied {
        machine,
        last_applied: meta.last_log_id,
        membership: meta.last_membership.clone(),
    })
}

fn io_error(verb: openraft::ErrorVerb, e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::new(
        openraft::ErrorSubject::StateMachine,
        verb,
        openraft::AnyError::new(&e),
    )
    .into()
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let stored = {
            let applied = self.shared.read();
            let data = applied
                .machine
                .encode_snapshot()
                .map_err(|e| io_error(openraft::ErrorVerb::Write, e))?;
            let last = applied.last_applied;
            let snapshot_id = match last {
                Some(id) => format!(
                    "{}-{}-{}",
                    id.leader_id.term, id.leader_id.node_id, id.index
                ),
                None => "empty".to_string(),
            };
            StoredSnapshot {
                meta: SnapshotMeta {
                    last_log_id: last,
                    last_membership: applied.membership.clone(),
                    snapshot_id,
                },
                data,
            }
        };
        let file = self.snapshot_file.clone();
        let to_save = stored.clone();
        tokio::task::spawn_blocking(move || file.save(&to_save))
            .await
            .map_err(|e| io_error(openraft::ErrorVerb::Write, e))?
            .map_err(|e| io_error(openraft::ErrorVerb::Write, e))?;
        tracing::info!(snapshot = %stored.meta.snapshot_id, bytes = stored.data.len(), "snapshot saved");
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let applied = self.shared.read();
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut responses = Vec::new();
        let mut kv_events = Vec::new();
        let mut services = BTreeSet::new();
        let revision = {
            let mut applied = self.shared.write();
            for entry in entries {
                let index = entry.log_id.index;
                applied.last_applied = Some(entry.log_id);
                // Index 0 (the initial membership) looks alike in every cluster.
                if index > 0 {
                    applied
                        .machine
                        .adopt_cluster_id(cluster_id_of(&entry.log_id));
                }
                let response = match entry.payload {
                    EntryPayload::Normal(command) => {
                        let outcome = applied.machine.apply_with_events(index, &command);
                        kv_events.extend(outcome.kv_events);
                        services.extend(outcome.service_names);
                        outcome.response
                    }
                    EntryPayload::Blank => {
                        applied.machine.advance(index);
                        Response::Done
                    }
                    EntryPayload::Membership(membership) => {
                        applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                        applied.machine.advance(index);
                        Response::Done
                    }
                };
                responses.push(response);
            }
            let revision = applied.machine.revision();
            // Published while the state is still locked, so that a reader
            // who sees revision R knows R's changes are already on the hub
            // (etcd watch progress reports rely on it). Publishing never blocks.
            self.shared.hub.publish(revision, kv_events, &services);
            revision
        };
        self.shared.publish(revision);
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let restored = restore(meta, &data).map_err(|reason| {
            io_error(
                openraft::ErrorVerb::Read,
                std::io::Error::new(std::io::ErrorKind::InvalidData, reason),
            )
        })?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        let file = self.snapshot_file.clone();
        tokio::task::spawn_blocking(move || file.save(&stored))
            .await
            .map_err(|e| io_error(openraft::ErrorVerb::Write, e))?
            .map_err(|e| io_error(openraft::ErrorVerb::Write, e))?;
        let revision = restored.machine.revision();
        *self.shared.write() = restored;
        self.shared.hub.reset(revision);
        self.shared.publish(revision);
        tracing::info!(snapshot = %meta.snapshot_id, "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let file = self.snapshot_file.clone();
        let stored = tokio::task::spawn_blocking(move || file.load())
            .await
            .map_err(|e| io_error(openraft::ErrorVerb::Read, e))?
            .map_err(|e| io_error(openraft::ErrorVerb::Read, e))?;
        Ok(stored.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}
