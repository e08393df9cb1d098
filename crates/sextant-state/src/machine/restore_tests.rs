//! Restoring a snapshot through `Op::RestoreSnapshot`.

use super::*;
use crate::catalog::{CheckStatus, Node, Service};
use crate::command::{KvCondition, LockAction};
use crate::kv::KvEventKind;
use crate::session::Session;
use crate::ApplyError;

fn put(key: &str, value: &str, lease: Option<i64>) -> Op {
    Op::KvPut {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        flags: 0,
        lease,
        condition: KvCondition::None,
        lock: LockAction::None,
    }
}

fn register(node: &str, id: &str, name: &str, port: u16) -> Op {
    Op::RegisterService {
        node: node.into(),
        service: Service {
            id: id.into(),
            name: name.into(),
            port,
            ..Service::default()
        },
        checks: Vec::new(),
        replace_checks: false,
    }
}

/// Applies `ops` at consecutive indexes from `first`, checking invariants.
fn run(sm: &mut StateMachine, first: u64, ops: Vec<Op>) -> Vec<ApplyOutcome> {
    ops.into_iter()
        .enumerate()
        .map(|(n, op)| {
            let outcome = sm.apply_with_events(first + n as u64, &Command::new(5_000, op));
            assert_eq!(sm.check_invariants(), Ok(()));
            outcome
        })
        .collect()
}

fn restore(sm: &mut StateMachine, index: u64, snapshot: Vec<u8>) -> ApplyOutcome {
    let outcome = sm.apply_with_events(
        index,
        &Command::new(9_000, Op::RestoreSnapshot { snapshot }),
    );
    assert_eq!(sm.check_invariants(), Ok(()));
    outcome
}

fn value(sm: &StateMachine, key: &str) -> Option<String> {
    sm.kv()
        .get(key.as_bytes())
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
}

/// A saved state, then changed further after the save.
fn saved_then_changed() -> (StateMachine, Vec<u8>) {
    let mut sm = StateMachine::new();
    run(
        &mut sm,
        1,
        vec![
            put("same", "1", None),
            put("changed", "old", None),
            put("removed-later", "x", None),
            register("n1", "web-1", "web", 80),
            Op::LeaseGrant {
                id: 7,
                ttl_secs: 30,
            },
            put("leased", "l", Some(7)),
        ],
    );
    let saved = sm.encode_snapshot().expect("encodes");
    run(
        &mut sm,
        7,
        vec![
            put("changed", "new", None),
            Op::KvDelete {
                key: b"removed-later".to_vec(),
                prefix: false,
                condition: KvCondition::None,
            },
            put("added-later", "y", None),
            register("n1", "db-1", "db", 5432),
            Op::DeregisterService {
                node: "n1".into(),
                service_id: "web-1".into(),
            },
            Op::LeaseRevoke { id: 7 },
        ],
    );
    (sm, saved)
}

#[test]
fn a_restore_brings_back_the_saved_state_at_a_new_revision() {
    let (mut sm, saved) = saved_then_changed();
    let before = sm.revision();
    let outcome = restore(&mut sm, before + 1, saved.clone());
    assert_eq!(outcome.response, Response::Done);
    assert_eq!(sm.revision(), before + 1);

    let original = StateMachine::decode_snapshot(&saved).expect("decodes");
    let live = |m: &StateMachine| -> Vec<(Vec<u8>, Vec<u8>, Option<i64>)> {
        m.kv()
            .list_prefix(b"")
            .into_iter()
            .map(|kv| (kv.key.clone(), kv.value.clone(), kv.lease))
            .collect()
    };
    assert_eq!(live(&sm), live(&original));
    assert_eq!(value(&sm, "changed").as_deref(), Some("old"));
    assert_eq!(value(&sm, "added-later"), None);
    assert_eq!(sm.leases().get(7).map(|l| l.keys.len()), Some(1));
    let names: Vec<String> = sm
        .catalog()
        .service_names()
        .into_keys()
        .map(str::to_owned)
        .collect();
    assert_eq!(names, vec!["web".to_string()]);
    assert!(sm.catalog().service("n1", "db-1").is_none());
}

#[test]
fn a_restore_emits_an_event_for_each_difference_and_none_for_the_rest() {
    let (mut sm, saved) = saved_then_changed();
    let same_before = sm.kv().get(b"same").cloned().expect("same exists");
    let revision = sm.revision() + 1;
    let outcome = restore(&mut sm, revision, saved);

    let mut changes: Vec<(String, KvEventKind)> = outcome
        .kv_events
        .iter()
        .map(|e| (String::from_utf8_lossy(&e.kv.key).into_owned(), e.kind))
        .collect();
    changes.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        changes,
        vec![
            ("added-later".to_string(), KvEventKind::Delete),
            ("changed".to_string(), KvEventKind::Put),
            ("leased".to_string(), KvEventKind::Put),
            ("removed-later".to_string(), KvEventKind::Put),
        ]
    );
    assert!(outcome.kv_events.iter().all(|e| e.revision() == revision));
    // Unchanged keys keep their versions; etcd's history only grows.
    assert_eq!(sm.kv().get(b"same"), Some(&same_before));
    let history = sm
        .kv()
        .events_since(b"changed", b"", 1)
        .expect("history kept");
    let revisions: Vec<u64> = history.iter().map(|e| e.revision()).collect();
    assert_eq!(revisions, vec![2, 7, revision]);
    // Every service name before or after may have changed: all must wake.
    assert!(outcome.service_names.contains("web"));
    assert!(outcome.service_names.contains("db"));
    assert_eq!(sm.catalog().service_index("web"), revision);
    assert_eq!(sm.catalog().service_index("db"), revision);
}

#[test]
fn a_corrupt_snapshot_is_rejected_and_changes_nothing_but_the_revision() {
    let (mut sm, saved) = saved_then_changed();
    let before = sm.encode_snapshot().expect("encodes");
    let mut corrupt = saved.clone();
    corrupt.truncate(saved.len() / 2);
    for bad in [Vec::new(), vec![99u8, 1, 2, 3], corrupt] {
        let revision = sm.revision() + 1;
        let outcome = restore(&mut sm, revision, bad);
        assert!(
            matches!(
                outcome.response,
                Response::Rejected(ApplyError::InvalidSnapshot { .. })
            ),
            "{:?}",
            outcome.response
        );
        assert!(outcome.kv_events.is_empty());
        let mut unchanged = StateMachine::decode_snapshot(&before).expect("decodes");
        unchanged.advance(revision);
        assert_eq!(sm, unchanged);
    }
}

#[test]
fn a_snapshot_from_further_along_is_stamped_at_the_restore_revision() {
    let mut ahead = StateMachine::new();
    run(
        &mut ahead,
        1_000,
        vec![
            Op::RegisterNode {
                node: Node {
                    name: "n1".into(),
                    address: "10.0.0.9".into(),
                    ..Node::default()
                },
            },
            Op::RegisterCheck {
                check: crate::catalog::Check {
                    node: "n1".into(),
                    id: "serfHealth".into(),
                    status: CheckStatus::Passing,
                    ..crate::catalog::Check::default()
                },
            },
            Op::CreateSession {
                session: Session {
                    id: "s1".into(),
                    node: "n1".into(),
                    checks: vec!["serfHealth".into()],
                    ..Session::default()
                },
            },
            Op::KvPut {
                key: b"lock".to_vec(),
                value: b"held".to_vec(),
                flags: 3,
                lease: None,
                condition: KvCondition::None,
                lock: LockAction::Acquire("s1".into()),
            },
            Op::LeaseGrant { id: 1, ttl_secs: 5 },
        ],
    );
    let saved = ahead.encode_snapshot().expect("encodes");

    let mut sm = StateMachine::new();
    run(&mut sm, 1, vec![put("lock", "other", None)]);
    restore(&mut sm, 2, saved);
    assert_eq!(sm.revision(), 2);
    let lock = sm.kv().get(b"lock").expect("restored");
    assert_eq!(lock.session.as_deref(), Some("s1"));
    assert_eq!((lock.flags, lock.lock_index), (3, 1));
    assert_eq!(
        (lock.create_revision, lock.mod_revision, lock.version),
        (1, 2, 2)
    );
    assert!(sm.sessions().get("s1").is_some_and(|s| s.modify_index <= 2));
    assert!(sm.leases().get(1).is_some_and(|l| l.granted_revision <= 2));
    assert!(sm.catalog().node("n1").is_some_and(|n| n.modify_index == 2));
    // The cluster keeps its own identity.
    assert_eq!(sm.cluster_id(), 0);
}

#[test]
fn replicas_applying_the_same_restore_agree_to_the_byte() {
    let (a, saved) = saved_then_changed();
    let mut a = a;
    let mut b =
        StateMachine::decode_snapshot(&a.encode_snapshot().expect("encodes")).expect("decodes");
    let revision = a.revision() + 1;
    restore(&mut a, revision, saved.clone());
    restore(&mut b, revision, saved);
    assert_eq!(a.encode_snapshot().ok(), b.encode_snapshot().ok());
}
