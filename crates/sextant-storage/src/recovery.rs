//! Opening a log directory: read the meta files, scan the segments, trim damage.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use openraft::LogId;
use openraft::RaftLogId;
use openraft::RaftTypeConfig;
use openraft::Vote;
use serde::de::DeserializeOwned;

use super::error::OpenError;
use super::mem_log::StoredEntry;
use super::meta_file;
use super::segment;
use super::segment::Segment;
use super::segment::Visit;

/// The durable state found in a log directory.
pub struct Recovered<C: RaftTypeConfig> {
    pub segments: Vec<Segment>,
    /// Entries above the purge point.
    pub entries: BTreeMap<u64, StoredEntry<C>>,
    pub last_purged: Option<LogId<C::NodeId>>,
    pub vote: Option<Vote<C::NodeId>>,
    pub committed: Option<LogId<C::NodeId>>,
}

fn read_meta<T: DeserializeOwned>(dir: &Path, name: &str) -> Result<Option<T>, OpenError> {
    let path = dir.join(name);
    match meta_file::read(dir, name) {
        Ok(None) => Ok(None),
        Ok(Some(bytes)) => {
            bincode::deserialize(&bytes)
                .map(Some)
                .map_err(|e| OpenError::CorruptMeta {
                    path,
                    reason: e.to_string(),
                })
        }
        Err(meta_file::ReadError::Io(source)) => Err(OpenError::Io { path, source }),
        Err(meta_file::ReadError::Corrupt(reason)) => Err(OpenError::CorruptMeta { path, reason }),
    }
}

/// Creates `dir` if needed and makes its creation durable.
fn ensure_dir(dir: &Path) -> Result<(), OpenError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(OpenError::io(dir))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        meta_file::sync_dir(parent).map_err(OpenError::io(parent))?;
    }
    Ok(())
}

pub fn recover<C>(dir: &Path) -> Result<Recovered<C>, OpenError>
where
    C: RaftTypeConfig,
    C::Entry: DeserializeOwned,
{
    ensure_dir(dir)?;
    for tmp in meta_file::remove_temp_files(dir).map_err(OpenError::io(dir))? {
        tracing::info!(file = %tmp.display(), "removed leftover temporary meta file");
    }

    let vote: Option<Vote<C::NodeId>> = read_meta(dir, meta_file::VOTE)?;
    let last_purged: Option<LogId<C::NodeId>> = read_meta(dir, meta_file::PURGED)?;
    // The committed id is advisory (openraft re-learns it); a damaged file is not fatal.
    let committed: Option<LogId<C::NodeId>> =
        match read_meta::<Option<LogId<C::NodeId>>>(dir, meta_file::COMMITTED) {
            Ok(c) => c.flatten(),
            Err(e) => {
                tracing::warn!(error = %e, "ignoring unreadable committed log id");
                None
            }
        };

    // First index that is kept in memory (everything below is purged).
    let keep_from = last_purged
        .as_ref()
        .map_or(0, |p| p.index.saturating_add(1));

    let files = segment::list(dir).map_err(OpenError::io(dir))?;
    let mut dir_changed = false;

    // Segments whose successor starts at or below `keep_from` hold only purged entries: an
    // interrupted purge. Delete them without scanning.
    let mut start = 0;
    if last_purged.is_some() {
        while start + 1 < files.len() && files[start + 1].0 <= keep_from {
            segment::remove_file(&files[start].1).map_err(OpenError::io(&files[start].1))?;
            dir_changed = true;
            start += 1;
        }
    }

    let mut segments: Vec<Segment> = Vec::new();
    let mut entries = BTreeMap::new();
    // Index the next record must have; `None` before the first record.
    let mut expected: Option<u64> = None;
    let mut drop_from: Option<usize> = None;

    for (k, (first, path)) in files.iter().enumerate().skip(start) {
        let first = *first;
        // A segment must continue the previous one, except that a gap is allowed while both
        // sides are at or below the first kept index (only purged entries are missing).
        let name_ok = match expected {
            Some(e) => first == e || (e <= keep_from && first <= keep_from),
            None => last_purged.is_none() || first <= keep_from,
        };
        if !name_ok {
            tracing::warn!(
                file = %path.display(),
                offset = 0u64,
                index = first,
                expected = ?expected,
                "log segment does not continue the log; dropping it and every later segment"
            );
            drop_from = Some(k);
            break;
        }

        let mut next = first;
        let outcome = segment::scan(path, |offset, payload| {
            let entry: C::Entry = bincode::deserialize(payload).map_err(|e| OpenError::Decode {
                path: path.clone(),
                offset,
                reason: e.to_string(),
            })?;
            let index = entry.get_log_id().index;
            if index != next {
                return Ok(Visit::Reject(format!(
                    "index discontinuity: expected {next}, found {index}"
                )));
            }
            next += 1;
            if index >= keep_from {
                let log_id = entry.get_log_id().clone();
                let payload = payload.into();
                entries.insert(index, StoredEntry { log_id, payload });
            }
            Ok(Visit::Accept)
        })?;

        match outcome.stop {
            None => {
                segments.push(Segment::recovered(
                    path.clone(),
                    first,
                    outcome.offsets,
                    outcome.valid_len,
                ));
                expected = Some(next);
            }
            Some(stop) => {
                tracing::warn!(
                    file = %path.display(),
                    offset = stop.offset,
                    index = next,
                    file_len = outcome.file_len,
                    reason = %stop.reason,
                    "torn or corrupt log record; truncating the log at the last intact entry"
                );
                if outcome.offsets.is_empty() {
                    segment::remove_file(path).map_err(OpenError::io(path))?;
                } else {
                    segment::trim_file(path, outcome.valid_len).map_err(OpenError::io(path))?;
                    segments.push(Segment::recovered(
                        path.clone(),
                        first,
                        outcome.offsets,
                        outcome.valid_len,
                    ));
                }
                dir_changed = true;
                drop_from = Some(k + 1);
                break;
            }
        }
    }

    if let Some(from) = drop_from {
        for (_, path) in files.iter().skip(from) {
            tracing::warn!(file = %path.display(), "removing log segment after the recovered end of the log");
            segment::remove_file(path).map_err(OpenError::io(path))?;
            dir_changed = true;
        }
    }

    // A segment holding nothing above the purge point is not needed any more.
    if last_purged.is_some() {
        while let Some(seg) = segments.first() {
            let wholly_purged = match seg.last_index() {
                Some(last) => last < keep_from,
                None => seg.first_index() < keep_from,
            };
            if !wholly_purged {
                break;
            }
            let seg = segments.remove(0);
            segment::remove_file(seg.path()).map_err(OpenError::io(seg.path()))?;
            dir_changed = true;
        }
    }

    if dir_changed {
        meta_file::sync_dir(dir).map_err(OpenError::io(dir))?;
    }

    Ok(Recovered {
        segments,
        entries,
        last_purged,
        vote,
        committed,
    })
}
