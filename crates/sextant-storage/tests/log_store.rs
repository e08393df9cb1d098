//! Tests of the durable Raft log store (`sextant_storage::LogStore`) on real files.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::Cursor;
use std::path::Path;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use openraft::storage::LogState;
use openraft::storage::RaftLogStorage;
use openraft::storage::RaftLogStorageExt;
use openraft::storage::RaftStateMachine;
use openraft::testing::StoreBuilder;
use openraft::testing::Suite;
use openraft::AnyError;
use openraft::BasicNode;
use openraft::CommittedLeaderId;
use openraft::Entry;
use openraft::EntryPayload;
use openraft::ErrorSubject;
use openraft::ErrorVerb;
use openraft::LogId;
use openraft::OptionalSend;
use openraft::RaftLogReader;
use openraft::RaftSnapshotBuilder;
use openraft::Snapshot;
use openraft::SnapshotMeta;
use openraft::StorageError;
use openraft::StorageIOError;
use openraft::StoredMembership;
use openraft::Vote;
use sextant_storage::LogStore;
use sextant_storage::LogStoreConfig;
use tempfile::TempDir;

openraft::declare_raft_types!(
    pub TC:
        D = String,
        R = String,
);

type Store = LogStore<TC>;
type TestResult = Result<(), Box<dyn std::error::Error>>;

// ---------------------------------------------------------------------------------------------
// Helpers

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 0), index)
}

fn ent(term: u64, index: u64) -> Entry<TC> {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(format!("value-{index}-term-{term}")),
    }
}

fn ents(term: u64, range: impl IntoIterator<Item = u64>) -> Vec<Entry<TC>> {
    range.into_iter().map(|i| ent(term, i)).collect()
}

fn config(max_segment_bytes: u64) -> LogStoreConfig {
    LogStoreConfig {
        max_segment_bytes,
        ..LogStoreConfig::default()
    }
}

fn open(dir: &Path, max_segment_bytes: u64) -> Result<Store, Box<dyn std::error::Error>> {
    Ok(LogStore::open(dir, config(max_segment_bytes))?)
}

async fn all(store: &mut Store) -> Result<Vec<Entry<TC>>, StorageError<u64>> {
    store.try_get_log_entries(..).await
}

/// Segment files of `dir`, sorted by first index.
fn segment_files(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut out: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let first = name
                .strip_prefix("log-")?
                .strip_suffix(".seg")?
                .parse()
                .ok()?;
            Some((first, e.path()))
        })
        .collect();
    out.sort();
    out
}

/// Start offsets of the records in a segment file (`[len u32][crc u32][payload]`).
fn record_offsets(data: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= data.len() {
        let len = u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        out.push(pos);
        pos += 8 + len;
    }
    assert_eq!(pos, data.len(), "well-formed segment");
    out
}

const BIG: u64 = 64 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// openraft's conformance suite

/// A minimal in-memory state machine, only for the conformance suite.
#[derive(Default)]
struct SmState {
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    snapshot: Option<(SnapshotMeta<u64, BasicNode>, Vec<u8>)>,
    snapshot_seq: u64,
}

#[derive(Clone, Default)]
struct MemSm(Arc<Mutex<SmState>>);

fn sm_err(e: impl std::error::Error + 'static) -> StorageError<u64> {
    StorageIOError::new(
        ErrorSubject::StateMachine,
        ErrorVerb::Write,
        AnyError::new(&e),
    )
    .into()
}

impl RaftSnapshotBuilder<TC> for MemSm {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TC>, StorageError<u64>> {
        let mut st = self.0.lock().unwrap();
        let data = bincode::serialize(&(st.last_applied, st.membership.clone())).map_err(sm_err)?;
        st.snapshot_seq += 1;
        let meta = SnapshotMeta {
            last_log_id: st.last_applied,
            last_membership: st.membership.clone(),
            snapshot_id: format!("snapshot-{}", st.snapshot_seq),
        };
        st.snapshot = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TC> for MemSm {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        let st = self.0.lock().unwrap();
        Ok((st.last_applied, st.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<String>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TC>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut st = self.0.lock().unwrap();
        let mut out = Vec::new();
        for e in entries {
            st.last_applied = Some(e.log_id);
            if let EntryPayload::Membership(m) = &e.payload {
                st.membership = StoredMembership::new(Some(e.log_id), m.clone());
            }
            out.push(String::new());
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = snapshot.into_inner();
        let (last_applied, membership): (Option<LogId<u64>>, StoredMembership<u64, BasicNode>) =
            bincode::deserialize(&data).map_err(sm_err)?;
        let mut st = self.0.lock().unwrap();
        st.last_applied = last_applied;
        st.membership = membership;
        st.snapshot = Some((meta.clone(), data));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TC>>, StorageError<u64>> {
        let st = self.0.lock().unwrap();
        Ok(st.snapshot.as_ref().map(|(meta, data)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(data.clone())),
        }))
    }
}

struct Builder {
    max_segment_bytes: u64,
}

impl StoreBuilder<TC, Store, MemSm, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, Store, MemSm), StorageError<u64>> {
        let dir = tempfile::tempdir()
            .map_err(|e| StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Write, e))?;
        let store = LogStore::open(dir.path(), config(self.max_segment_bytes))?;
        Ok((dir, store, MemSm::default()))
    }
}

#[test]
fn openraft_suite() -> TestResult {
    Suite::<TC, Store, MemSm, Builder, TempDir>::test_all(Builder {
        max_segment_bytes: BIG,
    })?;
    Ok(())
}

/// The suite again with segments so small that nearly every entry gets its own segment, so
/// truncate and purge cross segment boundaries.
#[test]
fn openraft_suite_tiny_segments() -> TestResult {
    Suite::<TC, Store, MemSm, Builder, TempDir>::test_all(Builder {
        max_segment_bytes: 100,
    })?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Restart

#[tokio::test]
async fn restart_keeps_entries_vote_purged_and_committed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let vote = Vote::new_committed(3, 1);
    {
        let mut s = open(dir.path(), 300)?;
        s.save_vote(&Vote::new(2, 1)).await?;
        s.blocking_append(ents(1, 0..=10)).await?;
        s.save_vote(&vote).await?;
        s.blocking_append(ents(3, 11..=20)).await?;
        s.purge(log_id(1, 5)).await?;
        s.save_committed(Some(log_id(3, 15))).await?;
        s.close().await?;
    }

    let expected: Vec<_> = ents(1, 6..=10)
        .into_iter()
        .chain(ents(3, 11..=20))
        .collect();
    for round in 0..2 {
        // The first reopen ends with a plain drop, the second with close().
        let mut s = open(dir.path(), 300)?;
        assert_eq!(all(&mut s).await?, expected, "round {round}");
        assert_eq!(s.read_vote().await?, Some(vote));
        assert_eq!(s.read_committed().await?, Some(log_id(3, 15)));
        assert_eq!(
            s.get_log_state().await?,
            LogState {
                last_purged_log_id: Some(log_id(1, 5)),
                last_log_id: Some(log_id(3, 20)),
            }
        );
        // Purged entries are gone from reads.
        assert!(s.try_get_log_entries(0..6).await?.is_empty());
        if round == 1 {
            s.close().await?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn drop_flushes_queued_appends() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (tx, rx) = mpsc::channel();
    {
        let mut s = open(dir.path(), BIG)?;
        for i in 1..=50 {
            let tx = tx.clone();
            s.append_with([ent(1, i)], move |r| tx.send((i, r.is_ok())).unwrap())
                .await?;
        }
        s.save_committed(Some(log_id(1, 50))).await?;
        // Dropped without waiting for any callback.
    }
    let done: Vec<_> = rx.try_iter().collect();
    assert_eq!(done, (1..=50).map(|i| (i, true)).collect::<Vec<_>>());

    let mut s = open(dir.path(), BIG)?;
    assert_eq!(all(&mut s).await?, ents(1, 1..=50));
    assert_eq!(s.read_committed().await?, Some(log_id(1, 50)));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Torn and corrupt tails

/// Writes `n` entries (index 1..=n) into a fresh directory and returns it with the bytes of its
/// only segment.
async fn write_single_segment(
    n: u64,
) -> Result<(TempDir, PathBuf, Vec<u8>), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut s = open(dir.path(), BIG)?;
    s.blocking_append(ents(1, 1..=n)).await?;
    s.close().await?;
    let segs = segment_files(dir.path());
    assert_eq!(segs.len(), 1);
    let path = segs[0].1.clone();
    let data = fs::read(&path)?;
    Ok((dir, path, data))
}

/// Reopens `dir`, expects exactly `intact` entries (index 1..=intact) and a segment trimmed to
/// `trimmed_len`, then appends more and checks they survive another reopen.
async fn check_recovery(
    dir: &Path,
    seg: &Path,
    intact: u64,
    trimmed_len: usize,
    what: &str,
) -> TestResult {
    {
        let mut s = open(dir, BIG)?;
        assert_eq!(
            all(&mut s).await?,
            ents(1, 1..=intact),
            "{what}: recovered prefix"
        );
        let last = (intact > 0).then(|| log_id(1, intact));
        assert_eq!(s.get_log_state().await?.last_log_id, last, "{what}");
        if intact > 0 {
            assert_eq!(
                fs::metadata(seg)?.len() as usize,
                trimmed_len,
                "{what}: file trimmed"
            );
        }
        s.blocking_append(ents(2, intact + 1..=intact + 3)).await?;
        s.close().await?;
    }
    let mut s = open(dir, BIG)?;
    let want: Vec<_> = ents(1, 1..=intact)
        .into_iter()
        .chain(ents(2, intact + 1..=intact + 3))
        .collect();
    assert_eq!(all(&mut s).await?, want, "{what}: after second reopen");
    s.close().await?;
    Ok(())
}

#[tokio::test]
async fn torn_tail_at_every_offset_of_the_last_record() -> TestResult {
    let n = 5;
    let (_orig, path, data) = write_single_segment(n).await?;
    let name = path.file_name().unwrap().to_owned();
    let offs = record_offsets(&data);
    assert_eq!(offs.len(), n as usize);
    let last = offs[n as usize - 1];

    // From "record entirely missing" to "one byte short".
    for cut in last..data.len() {
        let dir = tempfile::tempdir()?;
        let seg = dir.path().join(&name);
        fs::write(&seg, &data[..cut])?;
        check_recovery(dir.path(), &seg, n - 1, last, &format!("cut at {cut}")).await?;
    }
    Ok(())
}

#[tokio::test]
async fn flipped_byte_in_a_middle_record() -> TestResult {
    let n = 5;
    let (orig, path, data) = write_single_segment(n).await?;
    let name = path.file_name().unwrap().to_owned();
    let offs = record_offsets(&data);
    // Damage every byte (header and payload) of the third record, one at a time.
    let (start, end) = (offs[2], offs[3]);
    for pos in start..end {
        let dir = tempfile::tempdir()?;
        let seg = dir.path().join(&name);
        let mut damaged = data.clone();
        damaged[pos] ^= 0xff;
        fs::write(&seg, &damaged)?;
        check_recovery(dir.path(), &seg, 2, start, &format!("flip at {pos}")).await?;
    }
    drop(orig);
    Ok(())
}

#[tokio::test]
async fn whole_log_torn_in_the_first_record() -> TestResult {
    let (_orig, path, data) = write_single_segment(3).await?;
    let dir = tempfile::tempdir()?;
    let seg = dir.path().join(path.file_name().unwrap());
    fs::write(&seg, &data[..5])?;
    check_recovery(dir.path(), &seg, 0, 0, "first record torn").await
}

/// Writes entries 1..=n with tiny segments (two records each).
async fn write_segmented(n: u64) -> Result<TempDir, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut s = open(dir.path(), SMALL)?;
    for i in 1..=n {
        s.blocking_append([ent(1, i)]).await?;
    }
    s.close().await?;
    Ok(dir)
}

/// Room for two test records per segment.
const SMALL: u64 = 130;

#[tokio::test]
async fn corruption_in_a_middle_segment_drops_later_segments() -> TestResult {
    let dir = write_segmented(10).await?;
    let segs = segment_files(dir.path());
    assert_eq!(
        segs.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![1, 3, 5, 7, 9]
    );

    // Damage the second record of the segment starting at 5 (index 6).
    let mut data = fs::read(&segs[2].1)?;
    let offs = record_offsets(&data);
    let mid = offs[1] + 12;
    data[mid] ^= 0x01;
    fs::write(&segs[2].1, &data)?;

    let mut s = open(dir.path(), SMALL)?;
    assert_eq!(all(&mut s).await?, ents(1, 1..=5));
    let left = segment_files(dir.path());
    assert_eq!(left.iter().map(|s| s.0).collect::<Vec<_>>(), vec![1, 3, 5]);
    assert_eq!(fs::metadata(&left[2].1)?.len() as usize, offs[1]);

    s.blocking_append(ents(2, 6..=9)).await?;
    s.close().await?;
    let mut s = open(dir.path(), SMALL)?;
    let want: Vec<_> = ents(1, 1..=5).into_iter().chain(ents(2, 6..=9)).collect();
    assert_eq!(all(&mut s).await?, want);
    Ok(())
}

#[tokio::test]
async fn missing_segment_is_an_index_gap_and_is_trimmed() -> TestResult {
    let dir = write_segmented(10).await?;
    let segs = segment_files(dir.path());
    fs::remove_file(&segs[2].1)?; // entries 5 and 6

    let mut s = open(dir.path(), SMALL)?;
    assert_eq!(all(&mut s).await?, ents(1, 1..=4));
    assert_eq!(
        segment_files(dir.path())
            .iter()
            .map(|s| s.0)
            .collect::<Vec<_>>(),
        vec![1, 3]
    );
    s.blocking_append(ents(2, 5..=6)).await?;
    s.close().await?;
    let mut s = open(dir.path(), SMALL)?;
    let want: Vec<_> = ents(1, 1..=4).into_iter().chain(ents(2, 5..=6)).collect();
    assert_eq!(all(&mut s).await?, want);
    Ok(())
}

#[tokio::test]
async fn index_discontinuity_inside_a_segment_is_trimmed() -> TestResult {
    let dir = write_segmented(10).await?;
    let segs = segment_files(dir.path());
    // Glue the records of indexes 7 and 8 onto the segment holding 1 and 2.
    let first = fs::read(&segs[0].1)?;
    let mut glued = first.clone();
    glued.extend(fs::read(&segs[3].1)?);
    fs::write(&segs[0].1, &glued)?;

    let mut s = open(dir.path(), SMALL)?;
    assert_eq!(all(&mut s).await?, ents(1, 1..=2));
    let left = segment_files(dir.path());
    assert_eq!(left.len(), 1);
    assert_eq!(fs::metadata(&left[0].1)?.len() as usize, first.len());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Group commit

#[tokio::test]
async fn queued_appends_share_one_sync_and_complete_in_order() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut s = open(dir.path(), BIG)?;
    s.blocking_append([ent(1, 0)]).await?;
    let before = s.stats();

    let (tx, rx) = mpsc::channel();
    let pause = s.pause_writer().await?;
    for i in 1..=20u64 {
        let tx = tx.clone();
        s.append_with(ents(1, i * 2 - 1..=i * 2), move |r| {
            tx.send((i, r.is_ok())).unwrap()
        })
        .await?;
    }
    // Readable before they are durable, and no callback has fired yet.
    assert_eq!(all(&mut s).await?.len(), 41);
    assert_eq!(
        s.get_log_reader().await.try_get_log_entries(39..).await?,
        ents(1, 39..=40)
    );
    assert!(rx.try_recv().is_err());

    drop(pause);
    let done: Vec<_> = (0..20)
        .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
        .collect();
    assert_eq!(done, (1..=20).map(|i| (i, true)).collect::<Vec<_>>());

    let after = s.stats();
    assert_eq!(after.append_requests - before.append_requests, 20);
    assert_eq!(after.entries_written - before.entries_written, 40);
    assert_eq!(after.group_commits - before.group_commits, 1, "one group");
    assert_eq!(
        after.log_syncs - before.log_syncs,
        1,
        "one fdatasync for 20 appends"
    );
    Ok(())
}

#[tokio::test]
async fn many_unawaited_appends_all_complete_in_order() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut s = open(dir.path(), 4096)?;
    let (tx, rx) = mpsc::channel();
    let n = 500u64;
    for i in 1..=n {
        let tx = tx.clone();
        s.append_with([ent(1, i)], move |r| tx.send((i, r.is_ok())).unwrap())
            .await?;
    }
    let done: Vec<_> = (0..n)
        .map(|_| rx.recv_timeout(Duration::from_secs(30)).unwrap())
        .collect();
    assert_eq!(done, (1..=n).map(|i| (i, true)).collect::<Vec<_>>());
    let st = s.stats();
    assert_eq!(st.append_requests, n);
    assert!(st.log_syncs <= n + st.segments_created, "{st:?}");
    s.close().await?;

    let mut s = open(dir.path(), 4096)?;
    assert_eq!(all(&mut s).await?, ents(1, 1..=n));
    Ok(())
}

#[tokio::test]
async fn non_consecutive_append_is_rejected() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut s = open(dir.path(), BIG)?;
    s.blocking_append(ents(1, 1..=3)).await?;
    assert!(s.blocking_append([ent(1, 5)]).await.is_err(), "hole");
    assert!(
        s.blocking_append([ent(1, 3)]).await.is_err(),
        "overlap without truncate"
    );
    assert!(
        s.blocking_append([ent(1, 4), ent(1, 6)]).await.is_err(),
        "hole inside a batch"
    );
    assert_eq!(all(&mut s).await?, ents(1, 1..=3));
    s.blocking_append([ent(1, 4)]).await?;

    // Entries at or below the purge point are already compacted: appending them is a no-op.
    s.purge(log_id(1, 2)).await?;
    s.blocking_append([ent(1, 1), ent(1, 2)]).await?;
    assert!(
        s.blocking_append([ent(1, 2), ent(1, 4)]).await.is_err(),
        "hole after the purge point"
    );
    assert!(
        s.blocking_append([ent(1, 2), ent(1, 3)]).await.is_err(),
        "overlap after the purge point"
    );
    s.blocking_append([ent(1, 2), ent(1, 3), ent(1, 4), ent(1, 5)])
        .await
        .unwrap_err();
    s.truncate(log_id(1, 3)).await?;
    s.blocking_append([ent(1, 2), ent(2, 3)]).await?;
    assert_eq!(all(&mut s).await?, vec![ent(2, 3)]);
    s.close().await?;
    let mut s = open(dir.path(), BIG)?;
    assert_eq!(all(&mut s).await?, vec![ent(2, 3)]);
    Ok(())
}

#[tokio::test]
async fn committed_id_is_rate_limited_but_written_on_close() -> TestResult {
    let dir = tempfile::tempdir()?;
    let cfg = LogStoreConfig {
        committed_write_interval: Duration::from_secs(3600),
        ..LogStoreConfig::default()
    };
    let mut s = LogStore::<TC>::open(dir.path(), cfg.clone())?;
    for i in 1..=10 {
        s.blocking_append([ent(1, i)]).await?;
        s.save_committed(Some(log_id(1, i))).await?;
    }
    s.blocking_append([ent(1, 11)]).await?;
    // Only the first value was written; the rest waits for the interval or close.
    assert_eq!(s.stats().meta_writes, 1);
    assert_eq!(s.read_committed().await?, Some(log_id(1, 10)));
    s.close().await?;

    let mut s = LogStore::<TC>::open(dir.path(), cfg)?;
    assert_eq!(s.read_committed().await?, Some(log_id(1, 10)));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Truncate and purge across segments

#[tokio::test]
async fn truncate_and_purge_across_segments_then_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path();
    let seg_firsts = || segment_files(path).iter().map(|s| s.0).collect::<Vec<_>>();
    {
        let mut s = open(path, SMALL)?;
        for i in 1..=20 {
            s.blocking_append([ent(1, i)]).await?;
        }
        assert_eq!(seg_firsts(), (0..10).map(|k| 1 + 2 * k).collect::<Vec<_>>());

        // Inside a segment: 16 is the second record of the segment starting at 15.
        s.truncate(log_id(1, 16)).await?;
        assert_eq!(all(&mut s).await?, ents(1, 1..=15));
        assert_eq!(*seg_firsts().last().unwrap(), 15);

        // At a segment boundary: the segment starting at 13 disappears.
        s.truncate(log_id(1, 13)).await?;
        assert_eq!(all(&mut s).await?, ents(1, 1..=12));
        assert_eq!(*seg_firsts().last().unwrap(), 11);

        s.blocking_append(ents(2, 13..=18)).await?;

        // Purge in the middle of a segment keeps that segment.
        s.purge(log_id(1, 5)).await?;
        assert_eq!(seg_firsts()[0], 5);
        // Purge at the end of a segment drops it.
        s.purge(log_id(1, 8)).await?;
        assert_eq!(seg_firsts()[0], 9);
        s.close().await?;
    }
    let want: Vec<_> = ents(1, 9..=12)
        .into_iter()
        .chain(ents(2, 13..=18))
        .collect();
    {
        let mut s = open(path, SMALL)?;
        assert_eq!(all(&mut s).await?, want);
        assert_eq!(
            s.get_log_state().await?,
            LogState {
                last_purged_log_id: Some(log_id(1, 8)),
                last_log_id: Some(log_id(2, 18)),
            }
        );
        // Purge beyond the end (as after installing a snapshot): everything goes.
        s.purge(log_id(3, 40)).await?;
        assert!(all(&mut s).await?.is_empty());
        assert!(seg_firsts().is_empty());
        assert_eq!(s.get_log_state().await?.last_log_id, Some(log_id(3, 40)));
        s.blocking_append(ents(3, 41..=45)).await?;
        s.close().await?;
    }
    let mut s = open(path, SMALL)?;
    assert_eq!(all(&mut s).await?, ents(3, 41..=45));
    assert_eq!(
        s.get_log_state().await?,
        LogState {
            last_purged_log_id: Some(log_id(3, 40)),
            last_log_id: Some(log_id(3, 45)),
        }
    );
    // Truncate everything that is left; the purge point remains the last log id.
    s.truncate(log_id(3, 41)).await?;
    assert_eq!(s.get_log_state().await?.last_log_id, Some(log_id(3, 40)));
    s.close().await?;
    let mut s = open(path, SMALL)?;
    assert!(all(&mut s).await?.is_empty());
    assert_eq!(s.get_log_state().await?.last_log_id, Some(log_id(3, 40)));
    s.blocking_append([ent(4, 41)]).await?;
    Ok(())
}

#[tokio::test]
async fn interrupted_purge_is_finished_on_open() -> TestResult {
    let dir = write_segmented(10).await?;
    let copies: Vec<_> = segment_files(dir.path())
        .into_iter()
        .map(|(_, p)| (p.clone(), fs::read(&p).unwrap()))
        .collect();
    {
        let mut s = open(dir.path(), SMALL)?;
        s.purge(log_id(1, 7)).await?;
        s.close().await?;
    }
    // Pretend the segment deletions were lost in a crash.
    for (p, data) in &copies {
        fs::write(p, data)?;
    }
    let mut s = open(dir.path(), SMALL)?;
    assert_eq!(all(&mut s).await?, ents(1, 8..=10));
    assert_eq!(
        s.get_log_state().await?.last_purged_log_id,
        Some(log_id(1, 7))
    );
    assert_eq!(
        segment_files(dir.path())
            .iter()
            .map(|s| s.0)
            .collect::<Vec<_>>(),
        vec![7, 9]
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Failures

#[tokio::test]
async fn write_failure_reaches_the_callback_and_stops_the_writer() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("log");
    // Every record gets its own segment, so the second append must create a file.
    let mut s = open(&path, 1)?;
    s.blocking_append([ent(1, 1)]).await?;
    fs::remove_dir_all(&path)?;

    let (tx, rx) = mpsc::channel();
    s.append_with([ent(1, 2)], move |r| tx.send(r.is_ok()).unwrap())
        .await?;
    assert!(
        !rx.recv_timeout(Duration::from_secs(10))?,
        "failed write reported"
    );

    // Every later write fails too, as a StorageError rather than a panic.
    assert!(s.blocking_append([ent(1, 3)]).await.is_err());
    assert!(s.save_vote(&Vote::new(1, 1)).await.is_err());
    assert!(s.truncate(log_id(1, 2)).await.is_err());
    assert!(s.close().await.is_err());
    Ok(())
}

#[tokio::test]
async fn corrupt_vote_file_refuses_to_open() -> TestResult {
    let dir = tempfile::tempdir()?;
    {
        let mut s = open(dir.path(), BIG)?;
        s.save_vote(&Vote::new(5, 1)).await?;
    }
    let vote = dir.path().join("vote.meta");
    let mut data = fs::read(&vote)?;
    let last = data.len() - 1;
    data[last] ^= 0x10;
    fs::write(&vote, &data)?;
    match LogStore::<TC>::open(dir.path(), LogStoreConfig::default()) {
        Err(e) => assert!(e.to_string().contains("vote.meta"), "{e}"),
        Ok(_) => panic!("opened with a corrupt vote"),
    }
    Ok(())
}
