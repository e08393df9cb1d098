//! Bringing the key space to a restored snapshot's keys, as writes at the
//! restore's revision.
//!
//! The history already served to etcd watchers stays as it is; the restore
//! appends to it. Each key whose live version differs from the snapshot's is
//! written (or deleted) at the restore revision and emits its event like any
//! write, so watchers see exactly what changed and no revision goes
//! backwards. Keys the snapshot holds unchanged keep their versions.

use super::{KeyValue, KvEvent, KvStore};

/// Whether two versions of a key hold the same thing, stamps aside.
fn same_content(a: &KeyValue, b: &KeyValue) -> bool {
    a.value == b.value
        && a.flags == b.flags
        && a.lease == b.lease
        && a.session == b.session
        && a.lock_index == b.lock_index
}

impl KvStore {
    /// Makes the live keys equal to `saved`'s live keys (value, flags, lease,
    /// lock holder and lock index), writing the differences at `revision`.
    /// The caller replaces the lease and session stores with the snapshot's,
    /// whose indexes match `saved`, so the events are not tracked again.
    pub(crate) fn restore_from(
        &mut self,
        saved: &KvStore,
        revision: u64,
        events: &mut Vec<KvEvent>,
    ) {
        let gone: Vec<Vec<u8>> = self
            .list_prefix(b"")
            .into_iter()
            .filter(|kv| saved.get(&kv.key).is_none())
            .map(|kv| kv.key.clone())
            .collect();
        for key in gone {
            self.delete(&key, revision, events);
        }
        for wanted in saved.list_prefix(b"") {
            let prev = self.get(&wanted.key).cloned();
            if prev.as_ref().is_some_and(|p| same_content(p, wanted)) {
                continue;
            }
            let kv = KeyValue {
                key: wanted.key.clone(),
                value: wanted.value.clone(),
                create_revision: prev.as_ref().map_or(revision, |p| p.create_revision),
                mod_revision: revision,
                version: prev.as_ref().map_or(1, |p| p.version.saturating_add(1)),
                lease: wanted.lease,
                flags: wanted.flags,
                lock_index: wanted.lock_index,
                session: wanted.session.clone(),
            };
            self.append_live(kv, prev, events);
        }
        // Lock-delays are wall-clock deadlines: keep the later of each.
        for (key, until) in &saved.lock_delays {
            let entry = self.lock_delays.entry(key.clone()).or_insert(*until);
            *entry = (*entry).max(*until);
        }
    }
}
