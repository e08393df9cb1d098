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
use sextant_state::StateMachine;
use tokio::sync::watch;

use super::snapshot_file::{SnapshotFile, StoredSnapshot};
use super::{
    Answers, Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
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
    /// The revision of the applied state, so readers can wait for it to move.
    revision_tx: watch::Sender<u64>,
    /// The last applied Raft log index. An entry may carry several commands,
    /// each with its own revision, so revisions run ahead of log indexes;
    /// read barriers, which name log indexes, wait on this.
    applied_index_tx: watch::Sender<u64>,
    /// What each applied batch changed, for watchers of keys and services.
    hub: WatchHub,
}

impl SharedState {
    fn new(applied: Applied, watch_backlog: usize) -> Arc<Self> {
        let revision = applied.machine.revision();
        let (revision_tx, _) = watch::channel(revision);
        let (applied_index_tx, _) = watch::channel(applied.last_applied.map_or(0, |l| l.index));
        Arc::new(Self {
            applied: RwLock::new(applied),
            revision_tx,
            applied_index_tx,
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

    /// The revision of the applied state: that of the last applied command.
    pub fn revision(&self) -> u64 {
        *self.revision_tx.borrow()
    }

    /// The index of the last applied Raft log entry.
    pub fn applied_index(&self) -> u64 {
        *self.applied_index_tx.borrow()
    }

    /// A receiver that changes whenever entries are applied, holding the last
    /// applied log index.
    pub fn subscribe_applied_index(&self) -> watch::Receiver<u64> {
        self.applied_index_tx.subscribe()
    }

    /// A receiver that changes whenever entries are applied.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.revision_tx.subscribe()
    }

    pub fn hub(&self) -> &WatchHub {
        &self.hub
    }

    fn publish(&self, revision: u64, applied_index: u64) {
        self.revision_tx.send_replace(revision);
        self.applied_index_tx.send_replace(applied_index);
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

/// The revision of an entry's first command: one past the state's revision,
/// and never below the entry's log index (so revisions never fall behind
/// log indexes, and equal them while every entry carries one command).
fn entry_revision(state_revision: u64, index: u64) -> u64 {
    (state_revision + 1).max(index)
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

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Answers>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut answers = Vec::new();
        let mut kv_events = Vec::new();
        let mut services = BTreeSet::new();
        let (revision, applied_index) = {
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
                // Every entry moves the revision at least to its log index (so a
                // state that never saw batches has revision == index, as before)
                // and each command takes a revision of its own. Every replica
                // applies the same entries in the same order, so all agree.
                let answer = match entry.payload {
                    EntryPayload::Normal(proposal) => {
                        let mut done = Vec::with_capacity(proposal.commands.len());
                        let first = entry_revision(applied.machine.revision(), index);
                        for (revision, command) in (first..).zip(&proposal.commands) {
                            let outcome = applied.machine.apply_with_events(revision, command);
                            kv_events.extend(outcome.kv_events);
                            services.extend(outcome.service_names);
                            done.push((revision, outcome.response));
                        }
                        applied.machine.advance(index);
                        Answers { commands: done }
                    }
                    EntryPayload::Blank => {
                        applied.machine.advance(index);
                        Answers::default()
                    }
                    EntryPayload::Membership(membership) => {
                        applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                        applied.machine.advance(index);
                        Answers::default()
                    }
                };
                answers.push(answer);
            }
            let revision = applied.machine.revision();
            // Published while the state is still locked, so that a reader
            // who sees revision R knows R's changes are already on the hub
            // (etcd watch progress reports rely on it). Publishing never blocks.
            self.shared.hub.publish(revision, kv_events, &services);
            (revision, applied.last_applied.map_or(0, |l| l.index))
        };
        self.shared.publish(revision, applied_index);
        Ok(answers)
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
        let applied_index = restored.last_applied.map_or(0, |l| l.index);
        *self.shared.write() = restored;
        self.shared.hub.reset(revision);
        self.shared.publish(revision, applied_index);
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

#[cfg(test)]
mod tests {
    use openraft::CommittedLeaderId;
    use sextant_state::{Command, KvCondition, LockAction, Op, Response};

    use super::super::Proposal;
    use super::*;

    fn put(key: &str) -> Command {
        Command::new(
            0,
            Op::KvPut {
                key: key.as_bytes().to_vec(),
                value: key.as_bytes().to_vec(),
                flags: 0,
                lease: None,
                condition: KvCondition::None,
                lock: LockAction::None,
            },
        )
    }

    fn entry(index: u64, payload: EntryPayload<TypeConfig>) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload,
        }
    }

    fn batch(index: u64, keys: &[&str]) -> Entry {
        let commands = keys.iter().map(|k| put(k)).collect();
        entry(index, EntryPayload::Normal(Proposal { commands }))
    }

    fn revisions(answer: &Answers) -> Vec<u64> {
        answer
            .commands
            .iter()
            .map(|(revision, _)| *revision)
            .collect()
    }

    #[tokio::test]
    async fn each_command_of_an_entry_gets_its_own_revision_in_order() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut store = StateMachineStore::open(SnapshotFile::new(dir.path()), 64).expect("opens");
        let answers = store
            .apply(vec![
                batch(1, &["a", "b", "c"]),
                batch(2, &["d"]),
                entry(3, EntryPayload::Blank),
                // A log index ahead of the revision (entries applied before
                // batching, say) pulls the revision up to it.
                batch(10, &["e", "a"]),
            ])
            .await
            .expect("applies");
        assert_eq!(answers.len(), 4, "one answer per entry");
        assert_eq!(revisions(&answers[0]), vec![1, 2, 3]);
        assert_eq!(revisions(&answers[1]), vec![4]);
        assert!(
            answers[2].commands.is_empty(),
            "a blank entry carries no command"
        );
        assert_eq!(revisions(&answers[3]), vec![10, 11]);
        for answer in &answers {
            for (_, response) in &answer.commands {
                assert_eq!(*response, Response::Done);
            }
        }

        let shared = store.shared();
        assert_eq!(shared.revision(), 11);
        assert_eq!(shared.applied_index(), 10);
        let applied = shared.read();
        let kv = applied.machine.kv();
        let mod_revision = |key: &str| kv.get(key.as_bytes()).expect("key exists").mod_revision;
        assert_eq!(mod_revision("b"), 2);
        assert_eq!(mod_revision("c"), 3);
        assert_eq!(mod_revision("d"), 4);
        assert_eq!(mod_revision("e"), 10);
        // Written twice: once in the first entry, last in the fourth.
        assert_eq!(mod_revision("a"), 11);
        assert_eq!(kv.get(b"a").expect("key exists").create_revision, 1);
        assert_eq!(kv.get(b"a").expect("key exists").version, 2);
    }

    #[tokio::test]
    async fn replicas_applying_the_same_entries_in_different_chunks_agree() {
        // openraft hands a follower entries in whatever groups arrived; the
        // revisions must depend on the entries alone.
        let entries = || {
            vec![
                batch(1, &["a", "b"]),
                batch(2, &["c", "d", "e"]),
                batch(3, &["f"]),
            ]
        };
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut whole = StateMachineStore::open(SnapshotFile::new(dir.path().join("whole")), 64)
            .expect("opens");
        let mut pieces = StateMachineStore::open(SnapshotFile::new(dir.path().join("pieces")), 64)
            .expect("opens");
        let at_once: Vec<Vec<u64>> = whole
            .apply(entries())
            .await
            .expect("applies")
            .iter()
            .map(revisions)
            .collect();
        let mut one_by_one = Vec::new();
        for e in entries() {
            let answer = pieces.apply(vec![e]).await.expect("applies");
            one_by_one.extend(answer.iter().map(revisions));
        }
        assert_eq!(at_once, one_by_one);
        assert_eq!(at_once, vec![vec![1, 2], vec![3, 4, 5], vec![6]]);
        assert_eq!(whole.shared().revision(), pieces.shared().revision());
    }
}
