//! Writes to the key space. Each appends a version at the given revision and
//! reports what it did as `KvEvent`s; none of them can fail half-way.

use super::{KeyValue, KvEvent, KvStore, Version};
use super::{KvCondition, LockAction};
use crate::lease::LeaseId;
use crate::ApplyError;

/// A Consul or etcd put, with the conditions it carries.
pub(crate) struct PutRequest<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub flags: u64,
    pub lease: Option<LeaseId>,
    pub condition: KvCondition,
    pub lock: &'a LockAction,
    /// The proposer's clock, against which lock-delays are judged.
    pub now_ms: u64,
}

impl KvStore {
    pub(crate) fn set_revision(&mut self, revision: u64) {
        self.revision = revision;
    }

    /// Whether the key's current state satisfies a Consul `?cas=`.
    fn condition_holds(&self, key: &[u8], condition: KvCondition) -> bool {
        match condition {
            KvCondition::None => true,
            KvCondition::ModifyIndex(0) => self.get(key).is_none(),
            KvCondition::ModifyIndex(index) => {
                self.get(key).is_some_and(|kv| kv.mod_revision == index)
            }
        }
    }

    fn lock_delayed(&self, key: &[u8], now_ms: u64) -> bool {
        self.lock_delays
            .get(key)
            .is_some_and(|until| now_ms < *until)
    }

    /// Writes a key if its condition and lock action allow; `false` (and no
    /// change) otherwise. The caller has checked that the lease and the
    /// acquiring session exist.
    ///
    /// A plain write keeps the key's lock as it is (Consul does the same). An
    /// acquisition succeeds if the lock is free or already held by the same
    /// session, and only a new acquisition counts in `lock_index`. A release
    /// succeeds only for the holder and keeps `lock_index`.
    pub(crate) fn put(
        &mut self,
        req: &PutRequest<'_>,
        revision: u64,
        events: &mut Vec<KvEvent>,
    ) -> bool {
        if !self.condition_holds(req.key, req.condition) {
            return false;
        }
        let prev = self.get(req.key).cloned();
        let held_by = prev.as_ref().and_then(|p| p.session.as_ref());
        let lock_index = prev.as_ref().map_or(0, |p| p.lock_index);
        let (session, lock_index) = match req.lock {
            LockAction::None => (held_by.cloned(), lock_index),
            LockAction::Acquire(session) => match held_by {
                Some(holder) if holder == session => (Some(session.clone()), lock_index),
                Some(_) => return false,
                None if self.lock_delayed(req.key, req.now_ms) => return false,
                None => (Some(session.clone()), lock_index.saturating_add(1)),
            },
            LockAction::Release(session) => match held_by {
                Some(holder) if holder == session => (None, lock_index),
                _ => return false,
            },
        };
        let kv = KeyValue {
            key: req.key.to_vec(),
            value: req.value.to_vec(),
            create_revision: prev.as_ref().map_or(revision, |p| p.create_revision),
            mod_revision: revision,
            version: prev.as_ref().map_or(1, |p| p.version.saturating_add(1)),
            lease: req.lease,
            flags: req.flags,
            lock_index,
            session,
        };
        self.append_live(kv, prev, events);
        true
    }

    /// Clears the lock `holder` has on a key because the session ended, as a
    /// new version (Consul bumps the key's ModifyIndex so that lock waiters
    /// wake). Keeps `lock_index`, like a release.
    pub(crate) fn clear_session(
        &mut self,
        key: &[u8],
        holder: &str,
        revision: u64,
        events: &mut Vec<KvEvent>,
    ) {
        let Some(prev) = self.get(key).cloned() else {
            return;
        };
        if prev.session.as_deref() != Some(holder) {
            return;
        }
        let kv = KeyValue {
            mod_revision: revision,
            version: prev.version.saturating_add(1),
            session: None,
            ..prev.clone()
        };
        self.append_live(kv, Some(prev), events);
    }

    pub(super) fn append_live(
        &mut self,
        kv: KeyValue,
        prev: Option<KeyValue>,
        events: &mut Vec<KvEvent>,
    ) {
        self.last_change_revision = kv.mod_revision;
        self.history
            .entry(kv.key.clone())
            .or_default()
            .push(Version::Live(kv.clone()));
        events.push(KvEvent::put(kv, prev));
    }

    /// Deletes one key; `false` if it did not exist.
    pub(crate) fn delete(&mut self, key: &[u8], revision: u64, events: &mut Vec<KvEvent>) -> bool {
        let Some(prev) = self.get(key).cloned() else {
            return false;
        };
        self.last_change_revision = revision;
        self.history
            .entry(key.to_vec())
            .or_default()
            .push(Version::Deleted { revision });
        events.push(KvEvent::delete(key.to_vec(), revision, Some(prev)));
        true
    }

    /// Deletes every live key starting with `prefix`; returns how many.
    pub(crate) fn delete_prefix(
        &mut self,
        prefix: &[u8],
        revision: u64,
        events: &mut Vec<KvEvent>,
    ) -> u64 {
        let keys: Vec<Vec<u8>> = self
            .list_prefix(prefix)
            .into_iter()
            .map(|kv| kv.key.clone())
            .collect();
        let mut deleted = 0u64;
        for key in keys {
            if self.delete(&key, revision, events) {
                deleted = deleted.saturating_add(1);
            }
        }
        deleted
    }

    /// Deletes every live key of the etcd range `[start, end)`; returns the
    /// deleted versions, in key order.
    pub(crate) fn delete_range(
        &mut self,
        start: &[u8],
        end: &[u8],
        revision: u64,
        events: &mut Vec<KvEvent>,
    ) -> Vec<KeyValue> {
        let doomed: Vec<KeyValue> = self
            .range(start, end, None)
            .map(|kvs| kvs.into_iter().cloned().collect())
            .unwrap_or_default();
        for kv in &doomed {
            self.delete(&kv.key, revision, events);
        }
        doomed
    }

    /// Undoes the writes that emitted `events` (in reverse), for a Txn that
    /// failed half-way: every write appended exactly one version and emitted
    /// exactly one event, so popping one version per event restores the
    /// store. `last_change_revision` is the value from before those writes.
    pub(crate) fn undo(&mut self, events: &[KvEvent], last_change_revision: u64) {
        for event in events.iter().rev() {
            let emptied = match self.history.get_mut(&event.kv.key) {
                Some(history) => {
                    history.pop();
                    history.is_empty()
                }
                None => false,
            };
            if emptied {
                self.history.remove(&event.kv.key);
            }
        }
        self.last_change_revision = last_change_revision;
    }

    /// Consul's `DELETE ?cas=N`: deletes the key only if its ModifyIndex is N.
    /// A key that does not exist counts as success, as in Consul.
    pub(crate) fn delete_if(
        &mut self,
        key: &[u8],
        modify_index: u64,
        revision: u64,
        events: &mut Vec<KvEvent>,
    ) -> bool {
        match self.get(key) {
            None => true,
            Some(kv) if kv.mod_revision == modify_index => self.delete(key, revision, events),
            Some(_) => false,
        }
    }

    /// Forgets every version superseded at or before `revision`: each key
    /// keeps its newest version at or before it, unless that is a tombstone
    /// older than `revision`. A tombstone exactly at `revision` stays until
    /// the next compaction so that a watcher resuming at the compacted
    /// revision still sees that delete.
    ///
    /// This visits every key; compaction is rare and etcd's does the same.
    pub(crate) fn compact(&mut self, revision: u64) -> Result<(), ApplyError> {
        if revision <= self.compacted_revision {
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
        let mut reaped = self.reaped_tombstone_revision;
        for history in self.history.values_mut() {
            let Some(newest_kept) = history.iter().rposition(|v| v.revision() <= revision) else {
                continue;
            };
            history.drain(..newest_kept);
            if let Some(Version::Deleted { revision: deleted }) = history.first() {
                if *deleted < revision {
                    reaped = reaped.max(*deleted);
                    history.remove(0);
                }
            }
        }
        self.history.retain(|_, history| !history.is_empty());
        self.reaped_tombstone_revision = reaped;
        self.compacted_revision = revision;
        Ok(())
    }

    /// Starts Consul's lock-delay on `keys`: nobody may acquire them before
    /// `now_ms + delay_ms`. Expired delays are forgotten here, so the table
    /// only holds keys released within the longest delay.
    pub(crate) fn delay_locks(&mut self, keys: &[Vec<u8>], now_ms: u64, delay_ms: u64) {
        self.lock_delays.retain(|_, until| *until > now_ms);
        if delay_ms == 0 {
            return;
        }
        let until = now_ms.saturating_add(delay_ms);
        for key in keys {
            let entry = self.lock_delays.entry(key.clone()).or_insert(until);
            *entry = (*entry).max(until);
        }
    }
}
