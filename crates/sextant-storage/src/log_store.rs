//! [`LogStore`]: openraft's `RaftLogStorage` over the segmented log.

// `StorageError` is openraft's (large) error type; the trait methods must return it.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::RwLock;
use std::time::Duration;

use openraft::storage::LogFlushed;
use openraft::storage::LogState;
use openraft::storage::RaftLogStorage;
use openraft::AnyError;
use openraft::DefensiveError;
use openraft::ErrorSubject;
use openraft::ErrorVerb;
use openraft::LogId;
use openraft::OptionalSend;
use openraft::RaftLogId;
use openraft::RaftLogReader;
use openraft::RaftTypeConfig;
use openraft::StorageError;
use openraft::StorageIOError;
use openraft::Violation;
use openraft::Vote;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;

use super::error::OpenError;
use super::failpoints::Failpoints;
use super::mem_log::get_entries;
use super::mem_log::read_mem;
use super::mem_log::write_mem;
use super::mem_log::MemLog;
use super::mem_log::Shared;
use super::mem_log::StoredEntry;
use super::record;
use super::recovery;
use super::writer::AppendBatch;
use super::writer::Completion;
use super::writer::Counters;
use super::writer::Request;
use super::writer::Writer;
use super::writer::WriterHandle;

/// Tuning of a [`LogStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStoreConfig {
    /// A new segment file is started when appending a record would take the current one past
    /// this size (a segment always takes at least one record). Default 64 MiB.
    pub max_segment_bytes: u64,
    /// Capacity of the queue in front of the writer thread, in requests; it also bounds how
    /// many requests share one sync. `append` waits when the queue is full. Default 1024.
    pub queue_capacity: usize,
    /// The committed log id is written at most this often (and always on close). It is
    /// advisory, so losing the latest value in a crash is harmless. Default 100 ms; zero writes
    /// it after every group of appends.
    pub committed_write_interval: Duration,
    /// Test-only storage faults (see [`Failpoints`]); none by default.
    pub failpoints: Failpoints,
}

impl Default for LogStoreConfig {
    fn default() -> Self {
        LogStoreConfig {
            max_segment_bytes: 64 * 1024 * 1024,
            queue_capacity: 1024,
            committed_write_interval: Duration::from_millis(100),
            failpoints: Failpoints::default(),
        }
    }
}

/// Counters of a [`LogStore`], for metrics and tests. All are totals since open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStoreStats {
    /// `fdatasync` calls on segment files.
    pub log_syncs: u64,
    /// Groups of appends completed by one round of syncing.
    pub group_commits: u64,
    /// Append requests handled by the writer.
    pub append_requests: u64,
    /// Entries written.
    pub entries_written: u64,
    /// Record bytes written (headers included).
    pub bytes_written: u64,
    /// Segment files created.
    pub segments_created: u64,
    /// Segment files deleted by truncate and purge.
    pub segments_deleted: u64,
    /// Atomic meta file writes (vote, purged, committed); each costs two fsyncs.
    pub meta_writes: u64,
}

/// A cheap, cloneable reader of the log (the entries live in memory, shared with the store).
pub struct LogReader<C: RaftTypeConfig> {
    mem: Shared<C>,
}

impl<C: RaftTypeConfig> Clone for LogReader<C> {
    fn clone(&self) -> Self {
        LogReader {
            mem: self.mem.clone(),
        }
    }
}

impl<C> RaftLogReader<C> for LogReader<C>
where
    C: RaftTypeConfig,
    C::Entry: DeserializeOwned,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        get_entries(&self.mem, range)
    }
}

/// Handle returned by [`LogStore::pause_writer`]; the writer resumes when it is dropped.
#[doc(hidden)]
pub struct WriterPause {
    _resume: std::sync::mpsc::Sender<()>,
}

/// The durable Raft log: a segmented append-only log in one directory, plus the vote and the
/// purged and committed log ids in small meta files.
///
/// Entries of the live log are also kept in memory, so reads never touch the disk. Writes go to
/// a dedicated writer thread which batches appends so that many share one `fdatasync`
/// (group commit). `append` returns once the entries are readable; its callback fires once
/// they are durable. `truncate`, `purge` and `save_vote` return once durable.
///
/// Dropping the store (or [`LogStore::close`]) stops the writer after flushing everything
/// queued. Only one `LogStore` may have a directory open at a time.
pub struct LogStore<C: RaftTypeConfig> {
    dir: PathBuf,
    mem: Shared<C>,
    writer: WriterHandle,
    counters: Arc<Counters>,
    vote: Option<Vote<C::NodeId>>,
    committed: Option<LogId<C::NodeId>>,
}

fn writer_gone<C: RaftTypeConfig>(
    subject: ErrorSubject<C::NodeId>,
    verb: ErrorVerb,
) -> StorageError<C::NodeId> {
    StorageError::from_io_error(
        subject,
        verb,
        io::Error::new(
            io::ErrorKind::BrokenPipe,
            "log writer thread is not running",
        ),
    )
}

fn encode_err<C: RaftTypeConfig>(
    subject: ErrorSubject<C::NodeId>,
    e: &bincode::ErrorKind,
) -> StorageError<C::NodeId> {
    StorageError::IO {
        source: StorageIOError::new(subject, ErrorVerb::Write, AnyError::new(e)),
    }
}

impl<C> LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned + Clone,
{
    /// Opens (creating if needed) the log in `dir`, recovering from any torn or corrupt tail,
    /// and starts the writer thread. Blocks while it scans the log.
    pub fn open(dir: impl AsRef<Path>, config: LogStoreConfig) -> Result<Self, OpenError> {
        if config.max_segment_bytes == 0 {
            return Err(OpenError::Config(
                "max_segment_bytes must be positive".into(),
            ));
        }
        if config.queue_capacity == 0 {
            return Err(OpenError::Config("queue_capacity must be positive".into()));
        }
        let dir = dir.as_ref().to_path_buf();
        if dir.is_dir() {
            config
                .failpoints
                .discard_unsynced(&dir)
                .map_err(OpenError::io(&dir))?;
        }
        let rec = recovery::recover::<C>(&dir)?;
        let counters = Arc::new(Counters::default());
        let writer = Writer::new(
            dir.clone(),
            rec.segments,
            config.max_segment_bytes,
            config.committed_write_interval,
            counters.clone(),
            config.failpoints,
        )
        .spawn(config.queue_capacity)
        .map_err(OpenError::Spawn)?;
        tracing::info!(
            dir = %dir.display(),
            entries = rec.entries.len(),
            last_purged = ?rec.last_purged,
            "opened raft log"
        );
        Ok(LogStore {
            dir,
            mem: Arc::new(RwLock::new(MemLog {
                entries: rec.entries,
                last_purged: rec.last_purged,
            })),
            writer,
            counters,
            vote: rec.vote,
            committed: rec.committed,
        })
    }

    /// The directory holding the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> LogStoreStats {
        let c = &self.counters;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        LogStoreStats {
            log_syncs: get(&c.log_syncs),
            group_commits: get(&c.group_commits),
            append_requests: get(&c.append_requests),
            entries_written: get(&c.entries_written),
            bytes_written: get(&c.bytes_written),
            segments_created: get(&c.segments_created),
            segments_deleted: get(&c.segments_deleted),
            meta_writes: get(&c.meta_writes),
        }
    }

    /// A reader sharing this store's in-memory log.
    pub fn reader(&self) -> LogReader<C> {
        LogReader {
            mem: self.mem.clone(),
        }
    }

    /// Appends `entries` (which must continue the log) and calls `done` on the writer thread
    /// once they are durable, or with the error that prevented it. When this returns `Ok` the
    /// entries are readable. This is what [`RaftLogStorage::append`] uses.
    pub async fn append_with<I, F>(
        &mut self,
        entries: I,
        done: F,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry>,
        F: FnOnce(io::Result<()>) + Send + 'static,
    {
        let done = Completion::new(Box::new(done));
        let mut entries: Vec<C::Entry> = entries.into_iter().collect();

        // Every entry must continue the log: consecutive indexes, the first one right after the
        // last entry (or after the purge point when the log is empty). Entries at or below the
        // purge point are already compacted into a snapshot: they are dropped, as purge would
        // have dropped them. (openraft never sends them; its conformance suite does.)
        {
            let mem = read_mem(&self.mem)?;
            let floor = mem.last_purged.as_ref().map(|p| p.index);
            let mut prev = mem.last_log_id();
            let mut expected = prev.as_ref().map(|p| p.index.saturating_add(1));
            let mut in_batch: Option<u64> = None;
            for e in &entries {
                let id = e.get_log_id().clone();
                let below_floor = floor.is_some_and(|f| id.index <= f);
                let ok = match in_batch {
                    Some(i) => id.index == i.saturating_add(1),
                    None => below_floor || expected.is_none_or(|x| x == id.index),
                };
                if !ok || (!below_floor && expected.is_some_and(|x| x != id.index)) {
                    return Err(DefensiveError::new(
                        ErrorSubject::Log(id.clone()),
                        Violation::LogsNonConsecutive { prev, next: id },
                    )
                    .into());
                }
                in_batch = Some(id.index);
                if !below_floor {
                    expected = Some(id.index.saturating_add(1));
                    prev = Some(id);
                }
            }
            if let Some(f) = floor {
                entries.retain(|e| e.get_log_id().index > f);
            }
        }
        let first_index = match entries.first() {
            Some(e) => e.get_log_id().index,
            None => 0,
        };

        let mut bytes = Vec::new();
        let mut record_lens = Vec::with_capacity(entries.len());
        let mut stored = Vec::with_capacity(entries.len());
        for e in &entries {
            let start = record::begin(&mut bytes);
            bincode::serialize_into(&mut bytes, e)
                .map_err(|err| encode_err::<C>(ErrorSubject::Log(e.get_log_id().clone()), &err))?;
            stored.push(StoredEntry {
                log_id: e.get_log_id().clone(),
                payload: bytes[start + record::HEADER_LEN..].into(),
            });
            let len = record::finish(&mut bytes, start).map_err(|err| {
                StorageError::from_io_error(
                    ErrorSubject::Log(e.get_log_id().clone()),
                    ErrorVerb::Write,
                    err,
                )
            })?;
            record_lens.push(len);
        }

        {
            let mut mem = write_mem(&self.mem)?;
            for e in stored {
                mem.entries.insert(e.log_id.index, e);
            }
        }

        let req = Request::Append {
            batch: AppendBatch {
                first_index,
                bytes,
                record_lens,
            },
            done,
        };
        // On failure the request, and with it `done`, is dropped: `done` then gets an error.
        self.writer
            .send(req)
            .await
            .map_err(|_| writer_gone::<C>(ErrorSubject::Logs, ErrorVerb::Write))
    }

    /// Sends a request and waits for the writer's answer.
    async fn call(
        &self,
        subject: ErrorSubject<C::NodeId>,
        verb: ErrorVerb,
        make: impl FnOnce(oneshot::Sender<io::Result<()>>) -> Request,
    ) -> Result<(), StorageError<C::NodeId>> {
        let (tx, rx) = oneshot::channel();
        if self.writer.send(make(tx)).await.is_err() {
            return Err(writer_gone::<C>(subject, verb));
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StorageError::from_io_error(subject, verb, e)),
            Err(_) => Err(writer_gone::<C>(subject, verb)),
        }
    }

    /// Flushes everything queued, stops the writer thread and reports the final flush.
    pub async fn close(mut self) -> Result<(), StorageError<C::NodeId>> {
        let res = self
            .call(ErrorSubject::Logs, ErrorVerb::Write, |done| {
                Request::Close { done }
            })
            .await;
        self.writer.shutdown();
        res
    }

    /// Test hook: completes what is queued, then holds the writer thread (for at most 30 s)
    /// until the returned guard is dropped. Requests sent meanwhile queue up and are then
    /// handled as one group.
    #[doc(hidden)]
    pub async fn pause_writer(&self) -> Result<WriterPause, StorageError<C::NodeId>> {
        let (paused_tx, paused_rx) = oneshot::channel();
        let (resume_tx, resume_rx) = std::sync::mpsc::channel();
        let req = Request::Pause {
            paused: paused_tx,
            resume: resume_rx,
        };
        if self.writer.send(req).await.is_err() || paused_rx.await.is_err() {
            return Err(writer_gone::<C>(ErrorSubject::Logs, ErrorVerb::Write));
        }
        Ok(WriterPause { _resume: resume_tx })
    }
}

impl<C> RaftLogReader<C> for LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned + Clone,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        get_entries(&self.mem, range)
    }
}

impl<C> RaftLogStorage<C> for LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned + Clone,
{
    type LogReader = LogReader<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        let mem = read_mem(&self.mem)?;
        Ok(LogState {
            last_purged_log_id: mem.last_purged.clone(),
            last_log_id: mem.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.reader()
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let meta = bincode::serialize(vote).map_err(|e| encode_err::<C>(ErrorSubject::Vote, &e))?;
        self.call(ErrorSubject::Vote, ErrorVerb::Write, |done| {
            Request::SaveVote { meta, done }
        })
        .await?;
        self.vote = Some(vote.clone());
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(self.vote.clone())
    }

    /// Records the committed log id. It is written (atomically) only after every append queued
    /// before it is durable, at most once per `committed_write_interval` and always on close;
    /// this does not wait for the write. The committed id is advisory: a crash may lose the
    /// latest updates but never exposes one ahead of the durable log.
    async fn save_committed(
        &mut self,
        committed: Option<LogId<C::NodeId>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        let meta =
            bincode::serialize(&committed).map_err(|e| encode_err::<C>(ErrorSubject::Store, &e))?;
        self.writer
            .send(Request::SaveCommitted { meta })
            .await
            .map_err(|_| writer_gone::<C>(ErrorSubject::Store, ErrorVerb::Write))?;
        self.committed = committed;
        Ok(())
    }

    async fn read_committed(
        &mut self,
    ) -> Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(self.committed.clone())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.append_with(entries, move |res| callback.log_io_completed(res))
            .await
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let removed = {
            let mut mem = write_mem(&self.mem)?;
            mem.entries.split_off(&log_id.index)
        };
        drop(removed);
        let index = log_id.index;
        self.call(ErrorSubject::Log(log_id), ErrorVerb::Delete, |done| {
            Request::Truncate { index, done }
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let meta = bincode::serialize(&log_id)
            .map_err(|e| encode_err::<C>(ErrorSubject::Log(log_id.clone()), &e))?;
        let removed = {
            let mut mem = write_mem(&self.mem)?;
            if mem
                .last_purged
                .as_ref()
                .is_some_and(|p| p.index >= log_id.index)
            {
                return Ok(());
            }
            mem.last_purged = Some(log_id.clone());
            let keep = mem.entries.split_off(&log_id.index.saturating_add(1));
            std::mem::replace(&mut mem.entries, keep)
        };
        drop(removed);
        let index = log_id.index;
        self.call(ErrorSubject::Log(log_id), ErrorVerb::Delete, |done| {
            Request::Purge { index, meta, done }
        })
        .await
    }
}
