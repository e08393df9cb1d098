//! Reads of the key space: at the latest revision (Consul) or at any revision
//! still kept (etcd), by key, by etcd range, by Consul prefix.

use std::collections::BTreeSet;
use std::ops::Bound;

use super::{KeyValue, KvEvent, KvStore, Version};
use crate::ApplyError;

type Bounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// The bounds of an etcd range `[start, end)`: an empty `end` names `start`
/// alone, `end == "\0"` every key from `start` on, and `start == end == "\0"`
/// every key. `None` when the range is empty (an `end` at or before `start`),
/// which `BTreeMap::range` would otherwise reject with a panic.
fn etcd_bounds<'a>(start: &'a [u8], end: &'a [u8]) -> Option<Bounds<'a>> {
    match end {
        [] => Some((Bound::Included(start), Bound::Included(start))),
        [0] if start == [0] => Some((Bound::Unbounded, Bound::Unbounded)),
        [0] => Some((Bound::Included(start), Bound::Unbounded)),
        _ if end <= start => None,
        _ => Some((Bound::Included(start), Bound::Excluded(end))),
    }
}

/// Where `needle` first occurs in `haystack`; `needle` must not be empty.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The key's current version, if it is live.
fn current(history: &[Version]) -> Option<&KeyValue> {
    history.last().and_then(Version::live)
}

/// The key's version as of `revision`, if it was live then.
fn as_of(history: &[Version], revision: u64) -> Option<&KeyValue> {
    history
        .iter()
        .rev()
        .find(|v| v.revision() <= revision)
        .and_then(Version::live)
}

impl KvStore {
    /// The state machine's revision: the last applied log index.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Reads and watches below this revision are refused.
    pub fn compacted_revision(&self) -> u64 {
        self.compacted_revision
    }

    /// The revision of the last write that changed any key (0 if none yet).
    pub fn last_change_revision(&self) -> u64 {
        self.last_change_revision
    }

    /// Refuses a revision whose versions may be compacted away, or that has
    /// not been applied yet.
    pub fn check_revision(&self, revision: u64) -> Result<(), ApplyError> {
        if revision < self.compacted_revision {
            return Err(ApplyError::Compacted {
                revision,
                compacted: self.compacted_revision,
            });
        }
        if revision > self.revision {
            return Err(ApplyError::FutureRevision {
                revision,
                current: self.revision,
            });
        }
        Ok(())
    }

    /// The key's current value, if it exists.
    pub fn get(&self, key: &[u8]) -> Option<&KeyValue> {
        self.history.get(key).and_then(|h| current(h))
    }

    /// The key as it was at `revision`.
    pub fn get_at(&self, key: &[u8], revision: u64) -> Result<Option<&KeyValue>, ApplyError> {
        self.check_revision(revision)?;
        Ok(self.history.get(key).and_then(|h| as_of(h, revision)))
    }

    /// The live keys of the etcd range `[start, end)` at `revision` (the
    /// latest when `None`), sorted by key.
    pub fn range(
        &self,
        start: &[u8],
        end: &[u8],
        revision: Option<u64>,
    ) -> Result<Vec<&KeyValue>, ApplyError> {
        let revision = revision.unwrap_or(self.revision);
        self.check_revision(revision)?;
        let Some(bounds) = etcd_bounds(start, end) else {
            return Ok(Vec::new());
        };
        Ok(self
            .history
            .range::<[u8], _>(bounds)
            .filter_map(|(_, h)| as_of(h, revision))
            .collect())
    }

    /// Every key's history under `prefix`, in key order.
    fn under<'s, 'p>(
        &'s self,
        prefix: &'p [u8],
    ) -> impl Iterator<Item = (&'s Vec<u8>, &'s Vec<Version>)> + use<'s, 'p> {
        self.history
            .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
    }

    /// The live keys starting with `prefix`, sorted (Consul's `?recurse`).
    pub fn list_prefix(&self, prefix: &[u8]) -> Vec<&KeyValue> {
        self.under(prefix).filter_map(|(_, h)| current(h)).collect()
    }

    /// Consul's `?keys&separator=`: the live keys under `prefix`, each cut
    /// just after the first `separator` that follows the prefix, without
    /// duplicates, sorted. An empty separator cuts nothing, as in Consul.
    pub fn keys(&self, prefix: &[u8], separator: Option<&[u8]>) -> Vec<&[u8]> {
        let separator = separator.filter(|s| !s.is_empty());
        let mut keys = BTreeSet::new();
        for (key, history) in self.under(prefix) {
            if current(history).is_none() {
                continue;
            }
            let key = key.as_slice();
            let cut = separator.and_then(|sep| {
                let rest = key.get(prefix.len()..)?;
                let at = find(rest, sep)?;
                key.get(..prefix.len() + at + sep.len())
            });
            keys.insert(cut.unwrap_or(key));
        }
        keys.into_iter().collect()
    }

    /// The index a Consul blocking query on `key` (or on every key under it,
    /// with `is_prefix`) reports: the newest revision among the versions it
    /// matches, tombstones included, so that a delete moves it forward. With
    /// nothing matching it is the key space's last change. Never below 1:
    /// clients treat 0 as "no index".
    pub fn index_of(&self, key: &[u8], is_prefix: bool) -> u64 {
        let newest = if is_prefix {
            self.under(key)
                .filter_map(|(_, h)| h.last().map(Version::revision))
                .max()
                // A compaction may have dropped a newer tombstone under the prefix.
                .map(|r| r.max(self.reaped_tombstone_revision))
        } else {
            // A single key's newest entry is only dropped with the whole key,
            // and the fallback below is never older than it.
            self.history
                .get(key)
                .and_then(|h| h.last())
                .map(Version::revision)
        };
        newest.unwrap_or(self.last_change_revision).max(1)
    }

    /// Every change to keys of the etcd range `[start, end)` at
    /// `from_revision` or later, ordered by revision then key: the history an
    /// etcd watcher replays. Starting at the compacted revision itself is
    /// allowed (clients resume there after a compaction error); the `prev` of
    /// a change whose previous version was compacted is `None`.
    pub fn events_since(
        &self,
        start: &[u8],
        end: &[u8],
        from_revision: u64,
    ) -> Result<Vec<KvEvent>, ApplyError> {
        if from_revision < self.compacted_revision {
            return Err(ApplyError::Compacted {
                revision: from_revision,
                compacted: self.compacted_revision,
            });
        }
        let Some(bounds) = etcd_bounds(start, end) else {
            return Ok(Vec::new());
        };
        let mut events = Vec::new();
        for (key, history) in self.history.range::<[u8], _>(bounds) {
            let mut prev: Option<&KeyValue> = None;
            for version in history {
                if version.revision() >= from_revision {
                    events.push(match version {
                        Version::Live(kv) => KvEvent::put(kv.clone(), prev.cloned()),
                        Version::Deleted { revision } => {
                            KvEvent::delete(key.clone(), *revision, prev.cloned())
                        }
                    });
                }
                prev = version.live();
            }
        }
        // Stable: the changes of one key at one revision keep their order.
        events.sort_by(|a, b| (a.revision(), &a.kv.key).cmp(&(b.revision(), &b.kv.key)));
        Ok(events)
    }

    /// Until when (ms since the epoch) the key's lock may not be acquired.
    /// The time may already have passed: expired delays are forgotten lazily.
    pub fn lock_delay_until_ms(&self, key: &[u8]) -> Option<u64> {
        self.lock_delays.get(key).copied()
    }
}
