//! The group-commit writer thread.
//!
//! One named OS thread owns every file of the log. Requests arrive in order on a bounded
//! channel. The thread takes everything that is queued, writes all appends, issues one
//! `fdatasync` for the lot and then completes the appends in order. Truncate, purge and vote
//! requests are ordered with the appends around them: pending appends are synced and completed
//! before such a request runs. After the first I/O failure the writer refuses all further
//! requests, because the on-disk state is no longer known.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio::sync::oneshot;

use super::failpoints::Failpoints;
use super::meta_file;
use super::metric_names::{STORAGE_BYTES_WRITTEN, STORAGE_FSYNCS, STORAGE_FSYNC_SECONDS};
use super::segment;
use super::segment::Segment;

/// Longest time a test pause ([`Request::Pause`]) may hold the writer.
const MAX_PAUSE: Duration = Duration::from_secs(30);

/// Callback run (on the writer thread) when an append is durable or has failed.
pub type DoneFn = Box<dyn FnOnce(io::Result<()>) + Send + 'static>;

/// Completes an append exactly once. If it is dropped without being completed (the writer
/// stopped or panicked), the callback receives an error.
pub struct Completion(Option<DoneFn>);

impl Completion {
    pub fn new(f: DoneFn) -> Self {
        Completion(Some(f))
    }

    pub fn complete(mut self, res: io::Result<()>) {
        if let Some(f) = self.0.take() {
            f(res);
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "log append was not flushed (rejected, or the log writer stopped)",
            )));
        }
    }
}

/// Consecutive entries, already framed as records.
pub struct AppendBatch {
    /// Log index of the first record.
    pub first_index: u64,
    /// Concatenated records.
    pub bytes: Vec<u8>,
    /// Framed length of each record.
    pub record_lens: Vec<u32>,
}

pub type Ack = oneshot::Sender<io::Result<()>>;

pub enum Request {
    Append {
        batch: AppendBatch,
        done: Completion,
    },
    /// Delete entries with index `>= index`.
    Truncate {
        index: u64,
        done: Ack,
    },
    /// Record the purged id (`meta`, encoded) and delete segments wholly `<= index`.
    Purge {
        index: u64,
        meta: Vec<u8>,
        done: Ack,
    },
    SaveVote {
        meta: Vec<u8>,
        done: Ack,
    },
    /// Coalesced: only the latest value is written, after the appends queued before it are
    /// synced, and at most once per `committed_interval` (always on close).
    SaveCommitted {
        meta: Vec<u8>,
    },
    /// Test hook: hold the writer until `resume` is dropped.
    Pause {
        paused: oneshot::Sender<()>,
        resume: std::sync::mpsc::Receiver<()>,
    },
    /// Flush everything and stop.
    Close {
        done: Ack,
    },
}

/// Counters maintained by the writer.
#[derive(Debug, Default)]
pub struct Counters {
    pub log_syncs: AtomicU64,
    pub group_commits: AtomicU64,
    pub append_requests: AtomicU64,
    pub entries_written: AtomicU64,
    pub bytes_written: AtomicU64,
    pub segments_created: AtomicU64,
    pub segments_deleted: AtomicU64,
    pub meta_writes: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// The group-commit fsync, for `/metrics` (the other syncs seal segments).
fn observe_fsync(started: Instant) {
    metrics::histogram!(STORAGE_FSYNC_SECONDS).record(started.elapsed().as_secs_f64());
    metrics::counter!(STORAGE_FSYNCS).increment(1);
}

/// Everything the writer thread owns.
pub struct Writer {
    dir: PathBuf,
    segments: Vec<Segment>,
    max_segment_bytes: u64,
    counters: Arc<Counters>,
    /// Appends written but not yet synced, in arrival order.
    pending: Vec<Completion>,
    pending_committed: Option<Vec<u8>>,
    committed_interval: Duration,
    last_committed_write: Option<Instant>,
    /// Set by the first I/O failure.
    failed: Option<(io::ErrorKind, String)>,
    /// Test-only faults (all off outside the safety harness).
    failpoints: Failpoints,
}

impl Writer {
    pub fn new(
        dir: PathBuf,
        segments: Vec<Segment>,
        max_segment_bytes: u64,
        committed_interval: Duration,
        counters: Arc<Counters>,
        failpoints: Failpoints,
    ) -> Self {
        Writer {
            dir,
            segments,
            max_segment_bytes,
            counters,
            pending: Vec::new(),
            pending_committed: None,
            committed_interval,
            last_committed_write: None,
            failed: None,
            failpoints,
        }
    }

    /// Starts the thread. `capacity` bounds the request queue and one group.
    pub fn spawn(self, capacity: usize) -> io::Result<WriterHandle> {
        let (tx, rx) = mpsc::channel(capacity);
        let thread = std::thread::Builder::new()
            .name("sextant-log-writer".to_string())
            .spawn(move || self.run(rx, capacity))?;
        Ok(WriterHandle {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    fn run(mut self, mut rx: mpsc::Receiver<Request>, capacity: usize) {
        let mut batch = Vec::with_capacity(capacity);
        // What recovery found is on disk.
        if let Err(e) = self.failpoints.record_synced(&self.dir, &self.segments) {
            self.fail(&e);
        }
        loop {
            if rx.blocking_recv_many(&mut batch, capacity) == 0 {
                break; // every sender is gone and the queue is empty
            }
            if self.process(&mut batch) {
                break;
            }
        }
        // Requests still queued after a close are completed with errors on drop.
        self.flush();
        self.write_committed(true);
        tracing::debug!(dir = %self.dir.display(), "log writer stopped");
    }

    /// Handles one group of requests. Returns `true` when asked to stop.
    fn process(&mut self, batch: &mut Vec<Request>) -> bool {
        for req in batch.drain(..) {
            match req {
                Request::Append { batch, done } => {
                    bump(&self.counters.append_requests, 1);
                    if let Some(e) = self.failure() {
                        done.complete(Err(e));
                        continue;
                    }
                    match self.write_append(&batch) {
                        Ok(()) => self.pending.push(done),
                        Err(e) => {
                            self.fail(&e);
                            done.complete(Err(e));
                        }
                    }
                }
                Request::Truncate { index, done } => {
                    let res = self.ordered_op(|w| w.truncate(index));
                    let _ = done.send(res);
                }
                Request::Purge { index, meta, done } => {
                    let res = self.ordered_op(|w| w.purge(index, &meta));
                    let _ = done.send(res);
                }
                Request::SaveVote { meta, done } => {
                    let res = self.ordered_op(|w| w.write_meta(meta_file::VOTE, &meta));
                    let _ = done.send(res);
                }
                Request::SaveCommitted { meta } => {
                    self.pending_committed = Some(meta);
                }
                Request::Pause { paused, resume } => {
                    self.flush();
                    let _ = paused.send(());
                    let _ = resume.recv_timeout(MAX_PAUSE);
                }
                Request::Close { done } => {
                    self.flush();
                    self.write_committed(true);
                    let res = match self.failure() {
                        Some(e) => Err(e),
                        None => Ok(()),
                    };
                    let _ = done.send(res);
                    return true;
                }
            }
        }
        self.group_commit();
        self.write_committed(false);
        false
    }

    /// Runs a non-append operation after every earlier append is durable.
    fn ordered_op(&mut self, op: impl FnOnce(&mut Self) -> io::Result<()>) -> io::Result<()> {
        self.flush();
        if let Some(e) = self.failure() {
            return Err(e);
        }
        let res = op(self).and_then(|()| self.record_synced());
        if let Err(e) = &res {
            self.fail(e);
        }
        res
    }

    fn failure(&self) -> Option<io::Error> {
        self.failed
            .as_ref()
            .map(|(kind, msg)| io::Error::new(*kind, format!("log writer failed earlier: {msg}")))
    }

    /// Records the first failure and fails every append still waiting for a sync.
    fn fail(&mut self, e: &io::Error) {
        if self.failed.is_none() {
            tracing::error!(dir = %self.dir.display(), error = %e, "log write failed; refusing further writes");
            self.failed = Some((e.kind(), e.to_string()));
        }
        let pending = std::mem::take(&mut self.pending);
        for done in pending {
            let err = self
                .failure()
                .unwrap_or_else(|| io::Error::other("log writer failed"));
            done.complete(Err(err));
        }
    }

    /// The end of a group: every append written is synced, then acknowledged.
    fn group_commit(&mut self) {
        if self.failpoints.unsynced_acks && self.failed.is_none() {
            // The planted bug: acknowledged, though only in the page cache.
            for done in self.pending.drain(..) {
                done.complete(Ok(()));
            }
            return;
        }
        self.flush();
    }

    /// Syncs what was written and completes the waiting appends in order.
    fn flush(&mut self) {
        // (Unsynced segments without waiting appends exist only under the
        // `unsynced-acks` failpoint.)
        if self.pending.is_empty() && !self.segments.iter().any(Segment::is_dirty) {
            return;
        }
        let res = match self.failure() {
            Some(e) => Err(e),
            None => self.sync_dirty().and_then(|()| self.record_synced()),
        };
        match res {
            Err(e) => self.fail(&e),
            Ok(()) => {
                bump(&self.counters.group_commits, 1);
                for done in self.pending.drain(..) {
                    done.complete(Ok(()));
                }
            }
        }
    }

    fn sync_dirty(&mut self) -> io::Result<()> {
        for seg in self.segments.iter_mut().filter(|s| s.is_dirty()) {
            if let Some(injected) = self.failpoints.fsync_failure(&self.dir) {
                return Err(injected);
            }
            let started = Instant::now();
            if seg.sync()? {
                bump(&self.counters.log_syncs, 1);
                observe_fsync(started);
            }
        }
        Ok(())
    }

    /// Under the `power-loss` failpoint, notes what is durable before it is acknowledged.
    fn record_synced(&self) -> io::Result<()> {
        self.failpoints.record_synced(&self.dir, &self.segments)
    }

    /// Writes the latest committed id, if there is one and (unless `force`) the last write is
    /// at least `committed_interval` old. The committed id is advisory, so it is not worth two
    /// fsyncs per group; a crash may lose the latest value, never expose one ahead of the log.
    fn write_committed(&mut self, force: bool) {
        if self.pending_committed.is_none() || self.failed.is_some() {
            return;
        }
        let due = self
            .last_committed_write
            .is_none_or(|t| t.elapsed() >= self.committed_interval);
        if !force && !due {
            return;
        }
        let Some(meta) = self.pending_committed.take() else {
            return;
        };
        self.last_committed_write = Some(Instant::now());
        if let Err(e) = self.write_meta(meta_file::COMMITTED, &meta) {
            self.fail(&e);
        }
    }

    fn write_meta(&mut self, name: &str, meta: &[u8]) -> io::Result<()> {
        meta_file::write_atomic(&self.dir, name, meta)?;
        bump(&self.counters.meta_writes, 1);
        Ok(())
    }

    fn new_segment(&mut self, first_index: u64) -> io::Result<()> {
        let seg = Segment::create(&self.dir, first_index)?;
        meta_file::sync_dir(&self.dir)?;
        bump(&self.counters.segments_created, 1);
        self.segments.push(seg);
        Ok(())
    }

    fn remove_segment(&mut self, pos: usize) -> io::Result<()> {
        let seg = self.segments.remove(pos);
        segment::remove_file(seg.path())?;
        bump(&self.counters.segments_deleted, 1);
        Ok(())
    }

    /// Makes the last segment the one that receives `first_index`.
    fn prepare_active(&mut self, first_index: u64) -> io::Result<()> {
        let Some(active) = self.segments.last_mut() else {
            return self.new_segment(first_index);
        };
        let next = active.next_index();
        if next == first_index {
            return Ok(());
        }
        if first_index < next && active.count() > 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("append at index {first_index} overlaps the log, which ends before {next}"),
            ));
        }
        if active.count() == 0 {
            // An empty segment named for another index: replace it.
            let pos = self.segments.len() - 1;
            self.remove_segment(pos)?;
        } else {
            // A gap: only possible below the purge point (the log store checks continuity
            // above it). Start a new segment at the new index.
            if active.sync()? {
                bump(&self.counters.log_syncs, 1);
            }
            active.close();
        }
        self.new_segment(first_index)
    }

    fn write_append(&mut self, batch: &AppendBatch) -> io::Result<()> {
        if batch.record_lens.is_empty() {
            return Ok(());
        }
        self.prepare_active(batch.first_index)?;
        let mut chunk_start = 0usize; // byte offset of the unwritten chunk in `batch.bytes`
        let mut chunk_first = 0usize; // record number of the chunk's first record
        let mut chunk_bytes = 0u64;
        for (i, len) in batch.record_lens.iter().enumerate() {
            let len = u64::from(*len);
            let active_len = self.segments.last().map_or(0, |s| s.len());
            let used = active_len + chunk_bytes;
            if used > 0 && used + len > self.max_segment_bytes {
                self.write_chunk(batch, chunk_start, chunk_bytes, chunk_first, i)?;
                chunk_start += chunk_bytes as usize;
                chunk_first = i;
                chunk_bytes = 0;
                self.roll(batch.first_index + i as u64)?;
            }
            chunk_bytes += len;
        }
        let n = batch.record_lens.len();
        self.write_chunk(batch, chunk_start, chunk_bytes, chunk_first, n)?;
        bump(&self.counters.entries_written, n as u64);
        bump(&self.counters.bytes_written, batch.bytes.len() as u64);
        metrics::counter!(STORAGE_BYTES_WRITTEN).increment(batch.bytes.len() as u64);
        Ok(())
    }

    fn write_chunk(
        &mut self,
        batch: &AppendBatch,
        start: usize,
        bytes: u64,
        first_record: usize,
        end_record: usize,
    ) -> io::Result<()> {
        if first_record == end_record {
            return Ok(());
        }
        let active = self
            .segments
            .last_mut()
            .ok_or_else(|| io::Error::other("no active segment"))?;
        let data = batch
            .bytes
            .get(start..start + bytes as usize)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "append batch lengths do not match its bytes",
                )
            })?;
        active.append(data, &batch.record_lens[first_record..end_record])
    }

    /// Seals the active segment (synced, closed) and starts a new one at `next_index`.
    fn roll(&mut self, next_index: u64) -> io::Result<()> {
        if let Some(active) = self.segments.last_mut() {
            if active.sync()? {
                bump(&self.counters.log_syncs, 1);
            }
            active.close();
        }
        self.new_segment(next_index)
    }

    fn truncate(&mut self, index: u64) -> io::Result<()> {
        let mut removed = false;
        while self
            .segments
            .last()
            .is_some_and(|s| s.first_index() >= index)
        {
            self.remove_segment(self.segments.len() - 1)?;
            removed = true;
        }
        if let Some(seg) = self.segments.last_mut() {
            seg.truncate_from(index)?;
        }
        if removed {
            meta_file::sync_dir(&self.dir)?;
        }
        Ok(())
    }

    fn purge(&mut self, index: u64, meta: &[u8]) -> io::Result<()> {
        self.write_meta(meta_file::PURGED, meta)?;
        let mut removed = false;
        while let Some(first) = self.segments.first() {
            let wholly_purged = match first.last_index() {
                Some(last) => last <= index,
                None => first.first_index() <= index,
            };
            if !wholly_purged {
                break;
            }
            self.remove_segment(0)?;
            removed = true;
        }
        if removed {
            meta_file::sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// The sending side, owned by the log store. Dropping it stops the thread after everything
/// queued has been written and synced.
pub struct WriterHandle {
    tx: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

/// The writer thread is gone.
#[derive(Debug)]
pub struct WriterGone;

impl WriterHandle {
    pub async fn send(&self, req: Request) -> Result<(), WriterGone> {
        match &self.tx {
            Some(tx) => tx.send(req).await.map_err(|_| WriterGone),
            None => Err(WriterGone),
        }
    }

    /// Closes the queue and waits for the thread to finish.
    pub fn shutdown(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("log writer thread panicked");
            }
        }
    }
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}
