//! The key space on its own: versions, conditions, ranges, indexes, compaction.
//! Locks and leases are tested through the state machine, which owns them.

use super::*;
use super::{KvCondition, LockAction};
use crate::ApplyError;

/// A store driven one revision at a time, as the state machine drives it.
struct Store {
    kv: KvStore,
    events: Vec<KvEvent>,
}

impl Store {
    fn new() -> Self {
        Self {
            kv: KvStore::new(),
            events: Vec::new(),
        }
    }

    fn next(&mut self) -> u64 {
        let revision = self.kv.revision() + 1;
        self.kv.set_revision(revision);
        revision
    }

    fn put_if(&mut self, key: &str, value: &str, condition: KvCondition) -> bool {
        let revision = self.next();
        let request = PutRequest {
            key: key.as_bytes(),
            value: value.as_bytes(),
            flags: 0,
            lease: None,
            condition,
            lock: &LockAction::None,
            now_ms: 0,
        };
        self.kv.put(&request, revision, &mut self.events)
    }

    fn put(&mut self, key: &str, value: &str) -> u64 {
        assert!(self.put_if(key, value, KvCondition::None));
        self.kv.revision()
    }

    fn delete(&mut self, key: &str) -> bool {
        let revision = self.next();
        self.kv.delete(key.as_bytes(), revision, &mut self.events)
    }

    fn delete_prefix(&mut self, prefix: &str) -> u64 {
        let revision = self.next();
        self.kv
            .delete_prefix(prefix.as_bytes(), revision, &mut self.events)
    }

    fn keys_in(&self, start: &[u8], end: &[u8], revision: Option<u64>) -> Vec<String> {
        self.kv
            .range(start, end, revision)
            .expect("readable revision")
            .into_iter()
            .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
            .collect()
    }
}

#[test]
fn versions_count_writes_and_restart_after_delete() {
    let mut s = Store::new();
    let r1 = s.put("a", "1");
    let r2 = s.put("a", "2");
    let kv = s.kv.get(b"a").expect("live");
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (r1, r2, 2)
    );
    assert!(s.delete("a"));
    assert!(s.kv.get(b"a").is_none());
    assert!(!s.delete("a"), "deleting an absent key deletes nothing");
    let r4 = s.put("a", "3");
    let kv = s.kv.get(b"a").expect("live");
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (r4, r4, 1)
    );
}

#[test]
fn cas_zero_creates_only_and_cas_n_needs_that_modify_index() {
    let mut s = Store::new();
    assert!(s.put_if("k", "1", KvCondition::ModifyIndex(0)));
    assert!(!s.put_if("k", "2", KvCondition::ModifyIndex(0)));
    let current = s.kv.get(b"k").expect("live").mod_revision;
    assert!(!s.put_if("k", "2", KvCondition::ModifyIndex(current + 1)));
    assert!(s.put_if("k", "2", KvCondition::ModifyIndex(current)));
    assert_eq!(s.kv.get(b"k").expect("live").value, b"2");
    assert!(
        !s.put_if("missing", "x", KvCondition::ModifyIndex(current)),
        "cas on a missing key fails"
    );
}

#[test]
fn etcd_ranges() {
    let mut s = Store::new();
    for key in ["a", "b", "c", "d"] {
        s.put(key, "v");
    }
    assert_eq!(s.keys_in(b"b", b"", None), ["b"]);
    assert_eq!(s.keys_in(b"b", b"d", None), ["b", "c"]);
    assert_eq!(s.keys_in(b"c", b"\0", None), ["c", "d"]);
    assert_eq!(s.keys_in(b"\0", b"\0", None), ["a", "b", "c", "d"]);
    assert!(s.keys_in(b"c", b"b", None).is_empty());
    assert!(s.keys_in(b"c", b"c", None).is_empty());
}

#[test]
fn reads_at_past_revisions() {
    let mut s = Store::new();
    let r1 = s.put("a", "1");
    s.put("a", "2");
    s.delete("a");
    let at = |rev| {
        s.kv.get_at(b"a", rev)
            .expect("readable")
            .map(|kv| kv.value.clone())
    };
    assert_eq!(at(r1), Some(b"1".to_vec()));
    assert_eq!(at(r1 + 1), Some(b"2".to_vec()));
    assert_eq!(at(r1 + 2), None);
    assert_eq!(at(0), None);
    assert_eq!(
        s.kv.get_at(b"a", 99),
        Err(ApplyError::FutureRevision {
            revision: 99,
            current: 3
        })
    );
}

#[test]
fn prefix_index_moves_forward_on_delete() {
    let mut s = Store::new();
    assert_eq!(s.kv.index_of(b"", true), 1, "never below 1");
    s.put("app/a", "1");
    let r2 = s.put("app/b", "1");
    s.put("other", "1");
    assert_eq!(s.kv.index_of(b"app/", true), r2);
    assert_eq!(s.delete_prefix("app/"), 2);
    let deleted_at = s.kv.revision();
    assert_eq!(s.kv.index_of(b"app/", true), deleted_at, "tombstones count");
    assert_eq!(s.kv.index_of(b"app/a", false), deleted_at);
    let last = s.put("other", "2");
    assert_eq!(
        s.kv.index_of(b"nothing/", true),
        last,
        "no match: last change"
    );
    assert_eq!(s.kv.index_of(b"app/", true), deleted_at);
}

#[test]
fn keys_roll_up_at_the_separator() {
    let mut s = Store::new();
    for key in ["a", "a/b/c", "a/b/d", "a/e", "a/f/", "b/x"] {
        s.put(key, "v");
    }
    s.put("a/gone", "v");
    s.delete("a/gone");
    let keys = |prefix: &str, sep: Option<&str>| -> Vec<String> {
        s.kv.keys(prefix.as_bytes(), sep.map(str::as_bytes))
            .into_iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect()
    };
    assert_eq!(keys("a/", Some("/")), ["a/b/", "a/e", "a/f/"]);
    assert_eq!(keys("", Some("/")), ["a", "a/", "b/"]);
    assert_eq!(keys("a/", None), ["a/b/c", "a/b/d", "a/e", "a/f/"]);
    assert_eq!(keys("a/", Some("")), ["a/b/c", "a/b/d", "a/e", "a/f/"]);
    assert_eq!(keys("a/b", Some("/")), ["a/b/"]);
}

#[test]
fn compaction_keeps_the_newest_version_at_or_before_it() {
    let mut s = Store::new();
    let r1 = s.put("a", "1");
    let r2 = s.put("a", "2");
    s.put("gone", "1");
    s.delete("gone");
    let at_compaction = s.put("other", "1");
    let r6 = s.put("a", "3");
    s.put("late", "1");
    s.kv.compact(at_compaction).expect("compactable");

    assert_eq!(s.kv.compacted_revision(), at_compaction);
    assert!(matches!(
        s.kv.get_at(b"a", r1),
        Err(ApplyError::Compacted { .. })
    ));
    assert_eq!(
        s.kv.get_at(b"a", at_compaction)
            .expect("readable")
            .map(|kv| kv.mod_revision),
        Some(r2)
    );
    assert_eq!(s.kv.get(b"a").map(|kv| kv.mod_revision), Some(r6));
    assert!(
        !s.kv.history.contains_key(b"gone".as_slice()),
        "a tombstone before the compaction revision goes"
    );
    assert_eq!(
        s.kv.history.get(b"a".as_slice()).map(Vec::len),
        Some(2),
        "versions superseded before it go"
    );
    assert_eq!(
        s.kv.compact(at_compaction),
        Err(ApplyError::Compacted {
            revision: at_compaction,
            compacted: at_compaction
        })
    );
    assert!(matches!(
        s.kv.compact(99),
        Err(ApplyError::FutureRevision { .. })
    ));
}

#[test]
fn compaction_never_moves_a_prefix_index_backwards() {
    let mut s = Store::new();
    s.put("p/live", "1");
    s.put("p/dead", "1");
    s.delete("p/dead");
    let deleted_at = s.kv.revision();
    s.put("q", "1");
    let before = s.kv.index_of(b"p/", true);
    assert_eq!(before, deleted_at);
    s.kv.compact(s.kv.revision()).expect("compactable");
    assert!(s.kv.index_of(b"p/", true) >= before);
}

#[test]
fn a_tombstone_at_the_compaction_revision_stays_for_watchers() {
    let mut s = Store::new();
    s.put("a", "1");
    s.delete("a");
    let deleted_at = s.kv.revision();
    s.kv.compact(deleted_at).expect("compactable");
    let events =
        s.kv.events_since(b"a", b"", deleted_at)
            .expect("not compacted");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, KvEventKind::Delete);
    assert!(matches!(
        s.kv.events_since(b"a", b"", deleted_at - 1),
        Err(ApplyError::Compacted { .. })
    ));
}

#[test]
fn history_replays_as_events_with_previous_versions() {
    let mut s = Store::new();
    let r1 = s.put("a", "1");
    let r2 = s.put("b", "1");
    let r3 = s.put("a", "2");
    s.delete("a");
    let events = s.kv.events_since(b"a", b"\0", r2).expect("kept");
    let summary: Vec<(u64, &[u8], KvEventKind, Option<u64>)> = events
        .iter()
        .map(|e| {
            (
                e.revision(),
                e.kv.key.as_slice(),
                e.kind,
                e.prev.as_ref().map(|p| p.mod_revision),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (r2, b"b".as_slice(), KvEventKind::Put, None),
            (r3, b"a".as_slice(), KvEventKind::Put, Some(r1)),
            (r3 + 1, b"a".as_slice(), KvEventKind::Delete, Some(r3)),
        ]
    );
    assert_eq!(s.events.len(), 4, "every write emitted its event");
}

#[test]
fn delete_if_follows_consul() {
    let mut s = Store::new();
    let r1 = s.put("k", "1");
    let rev = s.next();
    assert!(!s.kv.delete_if(b"k", r1 + 1, rev, &mut s.events));
    assert!(!s.kv.delete_if(b"k", 0, rev, &mut s.events));
    assert!(s.kv.delete_if(b"k", r1, rev, &mut s.events));
    assert!(s.kv.get(b"k").is_none());
    assert!(
        s.kv.delete_if(b"k", 5, rev, &mut s.events),
        "a missing key counts as deleted"
    );
}
