//! The in-memory copy of the live log, shared by the store and its readers.
//!
//! Entries are kept as the bincode payloads of their records, not as
//! decoded entries: the live log holds up to two snapshot thresholds of
//! entries, each a batch of commands, and a decoded registration (strings,
//! vectors, enum slack) takes about three times its encoding. Measured with
//! heaptrack at 100,000 Nacos registrations, the decoded log was 104 MiB of
//! a 355 MiB heap. A read decodes instead of cloning, which costs about the
//! same: both allocate every string of the entry.

// `StorageError` is openraft's (large) error type; the store's trait methods return it.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::io;
use std::ops::Bound;
use std::ops::RangeBounds;
use std::sync::Arc;
use std::sync::RwLock;
use std::sync::RwLockReadGuard;
use std::sync::RwLockWriteGuard;

use openraft::ErrorSubject;
use openraft::ErrorVerb;
use openraft::LogId;
use openraft::RaftTypeConfig;
use openraft::StorageError;
use serde::de::DeserializeOwned;

/// One entry of the live log: its id, and its encoding as written to disk.
pub struct StoredEntry<C: RaftTypeConfig> {
    pub log_id: LogId<C::NodeId>,
    pub payload: Box<[u8]>,
}

pub struct MemLog<C: RaftTypeConfig> {
    pub entries: BTreeMap<u64, StoredEntry<C>>,
    pub last_purged: Option<LogId<C::NodeId>>,
}

impl<C: RaftTypeConfig> MemLog<C> {
    pub fn last_log_id(&self) -> Option<LogId<C::NodeId>> {
        match self.entries.last_key_value() {
            Some((_, e)) => Some(e.log_id.clone()),
            None => self.last_purged.clone(),
        }
    }
}

pub type Shared<C> = Arc<RwLock<MemLog<C>>>;

pub fn read_mem<C: RaftTypeConfig>(
    mem: &Shared<C>,
) -> Result<RwLockReadGuard<'_, MemLog<C>>, StorageError<C::NodeId>> {
    mem.read().map_err(|_| poisoned::<C>(ErrorVerb::Read))
}

pub fn write_mem<C: RaftTypeConfig>(
    mem: &Shared<C>,
) -> Result<RwLockWriteGuard<'_, MemLog<C>>, StorageError<C::NodeId>> {
    mem.write().map_err(|_| poisoned::<C>(ErrorVerb::Write))
}

fn poisoned<C: RaftTypeConfig>(verb: ErrorVerb) -> StorageError<C::NodeId> {
    StorageError::from_io_error(
        ErrorSubject::Logs,
        verb,
        io::Error::other("log memory lock poisoned"),
    )
}

/// `[start, end)` of a range of indexes; `end == None` means unbounded.
fn index_range<RB: RangeBounds<u64>>(range: &RB) -> Option<(u64, Option<u64>)> {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => e.checked_add(1),
        Bound::Excluded(e) => Some(*e),
        Bound::Unbounded => None,
    };
    match end {
        Some(end) if start >= end => None,
        _ => Some((start, end)),
    }
}

/// The entries in `range`, decoded. A payload that does not decode (it was
/// encoded by this process, so only a bug or memory corruption could cause
/// it) is a read error of that entry.
pub fn get_entries<C, RB>(
    mem: &Shared<C>,
    range: RB,
) -> Result<Vec<C::Entry>, StorageError<C::NodeId>>
where
    C: RaftTypeConfig,
    C::Entry: DeserializeOwned,
    RB: RangeBounds<u64>,
{
    let Some((start, end)) = index_range(&range) else {
        return Ok(Vec::new());
    };
    let mem = read_mem(mem)?;
    let end = end.map_or(Bound::Unbounded, Bound::Excluded);
    mem.entries
        .range((Bound::Included(start), end))
        .map(|(_, e)| {
            bincode::deserialize(&e.payload).map_err(|err| {
                StorageError::from_io_error(
                    ErrorSubject::Log(e.log_id.clone()),
                    ErrorVerb::Read,
                    io::Error::new(io::ErrorKind::InvalidData, err.to_string()),
                )
            })
        })
        .collect()
}
