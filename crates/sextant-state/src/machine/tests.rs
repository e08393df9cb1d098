//! The state machine end to end: commands in, state and responses out.

use super::*;
use crate::catalog::{Check, CheckStatus, Node, Service};
use crate::command::{KvCondition, LockAction};
use crate::kv::KvEventKind;
use crate::session::{Session, SessionBehavior};
use crate::ApplyError;

/// Applies commands at consecutive indexes with a clock that the test moves.
struct Harness {
    sm: StateMachine,
    index: u64,
    now_ms: u64,
}

impl Harness {
    fn new() -> Self {
        Self {
            sm: StateMachine::new(),
            index: 0,
            now_ms: 1_000_000,
        }
    }

    fn run(&mut self, op: Op) -> Response {
        self.index += 1;
        let response = self.sm.apply(self.index, &Command::new(self.now_ms, op));
        assert_eq!(self.sm.check_invariants(), Ok(()));
        response
    }

    fn run_ok(&mut self, op: Op) {
        let response = self.run(op);
        assert!(
            matches!(response, Response::Done),
            "unexpected {response:?}"
        );
    }

    fn put(&mut self, key: &str, value: &str) -> Response {
        self.run(put_op(key, value, LockAction::None))
    }

    fn lock(&mut self, key: &str, lock: LockAction) -> Response {
        self.run(put_op(key, "locked", lock))
    }

    fn node(&mut self, name: &str) {
        self.run_ok(Op::RegisterNode {
            node: Node {
                name: name.into(),
                address: "10.0.0.1".into(),
                ..Node::default()
            },
        });
    }

    fn node_check(&mut self, node: &str, id: &str, status: CheckStatus) {
        self.run_ok(Op::RegisterCheck {
            check: Check {
                node: node.into(),
                id: id.into(),
                name: id.into(),
                status,
                ..Check::default()
            },
        });
    }

    fn session(&mut self, id: &str, behavior: SessionBehavior, lock_delay_ms: u64) -> Response {
        self.run(Op::CreateSession {
            session: session(id, "n1", &["serfHealth"], behavior, lock_delay_ms),
        })
    }

    /// A node "n1" with a passing "serfHealth" check and session "s1" on it.
    fn with_session(behavior: SessionBehavior, lock_delay_ms: u64) -> Self {
        let mut h = Self::new();
        h.node("n1");
        h.node_check("n1", "serfHealth", CheckStatus::Passing);
        assert_eq!(h.session("s1", behavior, lock_delay_ms), Response::Done);
        h
    }

    fn kv(&self, key: &str) -> Option<&crate::kv::KeyValue> {
        self.sm.kv().get(key.as_bytes())
    }
}

fn put_op(key: &str, value: &str, lock: LockAction) -> Op {
    Op::KvPut {
        key: key.into(),
        value: value.into(),
        flags: 0,
        lease: None,
        condition: KvCondition::None,
        lock,
    }
}

fn session(
    id: &str,
    node: &str,
    checks: &[&str],
    behavior: SessionBehavior,
    lock_delay_ms: u64,
) -> Session {
    Session {
        id: id.into(),
        node: node.into(),
        checks: checks.iter().map(|c| (*c).to_owned()).collect(),
        behavior,
        lock_delay_ms,
        ..Session::default()
    }
}

fn service(id: &str, name: &str, port: u16) -> Service {
    Service {
        id: id.into(),
        name: name.into(),
        port,
        ..Service::default()
    }
}

fn acquire(id: &str) -> LockAction {
    LockAction::Acquire(id.into())
}

fn release(id: &str) -> LockAction {
    LockAction::Release(id.into())
}

#[test]
fn acquire_and_release_follow_consul() {
    let mut h = Harness::with_session(SessionBehavior::Release, 0);
    assert_eq!(h.session("s2", SessionBehavior::Release, 0), Response::Done);

    assert_eq!(h.lock("k", acquire("s1")), Response::Applied(true));
    let kv = h.kv("k").expect("written");
    assert_eq!((kv.lock_index, kv.session.as_deref()), (1, Some("s1")));

    assert_eq!(h.lock("k", acquire("s2")), Response::Applied(false));
    assert_eq!(
        h.lock("k", acquire("s1")),
        Response::Applied(true),
        "the holder may acquire again"
    );
    assert_eq!(
        h.kv("k").expect("written").lock_index,
        1,
        "not a new acquisition"
    );

    assert_eq!(h.put("k", "plain"), Response::Done);
    let kv = h.kv("k").expect("written");
    assert_eq!(
        (kv.value.as_slice(), kv.session.as_deref()),
        (b"plain".as_slice(), Some("s1")),
        "a plain write keeps the lock"
    );

    assert_eq!(h.lock("k", release("s2")), Response::Applied(false));
    assert_eq!(h.lock("k", release("s1")), Response::Applied(true));
    let kv = h.kv("k").expect("written");
    assert_eq!((kv.lock_index, kv.session.as_deref()), (1, None));
    assert_eq!(h.sm.sessions().held_keys("s1").count(), 0);

    assert_eq!(h.lock("k", acquire("s2")), Response::Applied(true));
    assert_eq!(h.kv("k").expect("written").lock_index, 2);
    assert_eq!(h.lock("missing", release("s2")), Response::Applied(false));
}

#[test]
fn acquiring_with_an_unknown_session_is_rejected_but_consumes_the_index() {
    let mut h = Harness::new();
    assert_eq!(
        h.lock("k", acquire("nope")),
        Response::Rejected(ApplyError::UnknownSession { id: "nope".into() })
    );
    assert_eq!(h.sm.revision(), 1);
    assert!(h.kv("k").is_none());
    assert_eq!(h.sm.kv().last_change_revision(), 0);
}

#[test]
fn cas_put_and_delete_answer_applied() {
    let mut h = Harness::new();
    let create_only = |value: &str| Op::KvPut {
        key: "k".into(),
        value: value.into(),
        flags: 7,
        lease: None,
        condition: KvCondition::ModifyIndex(0),
        lock: LockAction::None,
    };
    assert_eq!(h.run(create_only("1")), Response::Applied(true));
    assert_eq!(h.run(create_only("2")), Response::Applied(false));
    assert_eq!(h.kv("k").map(|kv| kv.flags), Some(7));
    let delete_if = |index| Op::KvDelete {
        key: "k".into(),
        prefix: true,
        condition: KvCondition::ModifyIndex(index),
    };
    assert_eq!(h.run(delete_if(99)), Response::Applied(false));
    assert_eq!(h.run(delete_if(1)), Response::Applied(true));
    assert!(h.kv("k").is_none());
}

#[test]
fn prefix_delete_counts_and_moves_the_index() {
    let mut h = Harness::new();
    h.put("app/a", "1");
    h.put("app/b", "1");
    h.put("apple", "1");
    let response = h.run(Op::KvDelete {
        key: "app/".into(),
        prefix: true,
        condition: KvCondition::None,
    });
    assert_eq!(response, Response::Deleted(2));
    assert_eq!(h.sm.kv().index_of(b"app/", true), h.index);
    assert!(h.kv("apple").is_some());
}

#[test]
fn destroying_a_session_releases_its_locks_with_a_lock_delay() {
    let mut h = Harness::with_session(SessionBehavior::Release, 15_000);
    assert_eq!(h.session("s2", SessionBehavior::Release, 0), Response::Done);
    h.lock("a", acquire("s1"));
    h.lock("b", acquire("s1"));
    h.put("c", "untouched");

    h.now_ms += 1;
    let outcome = h.sm.apply_with_events(
        h.index + 1,
        &Command::new(h.now_ms, Op::DestroySession { id: "s1".into() }),
    );
    h.index += 1;
    assert_eq!(outcome.response, Response::Done);
    assert_eq!(outcome.kv_events.len(), 2);
    assert!(h.sm.sessions().get("s1").is_none());
    for key in ["a", "b"] {
        let kv = h.kv(key).expect("kept");
        assert_eq!(
            (kv.session.as_deref(), kv.mod_revision, kv.lock_index),
            (None, h.index, 1)
        );
        assert_eq!(
            h.sm.kv().lock_delay_until_ms(key.as_bytes()),
            Some(h.now_ms + 15_000)
        );
    }
    assert_eq!(h.lock("a", acquire("s2")), Response::Applied(false));
    h.now_ms += 15_000;
    assert_eq!(h.lock("a", acquire("s2")), Response::Applied(true));
    assert_eq!(h.kv("a").expect("kept").lock_index, 2);
}

#[test]
fn destroying_a_delete_session_deletes_its_keys() {
    let mut h = Harness::with_session(SessionBehavior::Delete, 0);
    h.lock("a", acquire("s1"));
    h.put("b", "not locked");
    h.run_ok(Op::DestroySession { id: "s1".into() });
    assert!(h.kv("a").is_none());
    assert!(h.kv("b").is_some());
    h.run_ok(Op::DestroySession { id: "s1".into() });
}

#[test]
fn a_failing_check_ends_its_sessions() {
    let mut h = Harness::with_session(SessionBehavior::Release, 0);
    h.lock("a", acquire("s1"));
    h.run_ok(Op::UpdateCheck {
        node: "n1".into(),
        check_id: "serfHealth".into(),
        status: CheckStatus::Warning,
        output: "slow".into(),
    });
    assert!(
        h.sm.sessions().get("s1").is_some(),
        "warning is not failing"
    );
    h.run_ok(Op::UpdateCheck {
        node: "n1".into(),
        check_id: "serfHealth".into(),
        status: CheckStatus::Critical,
        output: "dead".into(),
    });
    assert!(h.sm.sessions().get("s1").is_none());
    assert_eq!(h.kv("a").and_then(|kv| kv.session.clone()), None);
}

#[test]
fn deregistering_the_node_ends_its_sessions() {
    let mut h = Harness::with_session(SessionBehavior::Delete, 0);
    h.run_ok(Op::CreateSession {
        session: session("bare", "n1", &[], SessionBehavior::Release, 0),
    });
    h.lock("a", acquire("s1"));
    h.lock("b", acquire("bare"));
    h.run_ok(Op::DeregisterNode { node: "n1".into() });
    assert!(h.sm.sessions().is_empty());
    assert!(h.kv("a").is_none());
    assert_eq!(h.kv("b").and_then(|kv| kv.session.clone()), None);
    assert!(h.sm.catalog().node("n1").is_none());
}

#[test]
fn deregistering_a_check_ends_its_sessions() {
    let mut h = Harness::with_session(SessionBehavior::Release, 0);
    h.run_ok(Op::DeregisterCheck {
        node: "n1".into(),
        check_id: "serfHealth".into(),
    });
    assert!(h.sm.sessions().is_empty());
}

#[test]
fn session_creation_is_validated() {
    let mut h = Harness::new();
    assert_eq!(
        h.session("s1", SessionBehavior::Release, 0),
        Response::Rejected(ApplyError::UnknownNode { node: "n1".into() })
    );
    h.node("n1");
    assert_eq!(
        h.session("s1", SessionBehavior::Release, 0),
        Response::Rejected(ApplyError::UnknownCheck {
            node: "n1".into(),
            check_id: "serfHealth".into()
        })
    );
    h.node_check("n1", "serfHealth", CheckStatus::Critical);
    assert_eq!(
        h.session("s1", SessionBehavior::Release, 0),
        Response::Rejected(ApplyError::CheckFailing {
            node: "n1".into(),
            check_id: "serfHealth".into(),
            status: CheckStatus::Critical
        })
    );
    h.node_check("n1", "serfHealth", CheckStatus::Passing);
    assert_eq!(h.session("s1", SessionBehavior::Release, 0), Response::Done);
    let created = h.sm.sessions().get("s1").expect("created");
    assert_eq!(
        (created.create_index, created.modify_index),
        (h.index, h.index)
    );
    assert_eq!(
        h.session("s1", SessionBehavior::Release, 0),
        Response::Rejected(ApplyError::SessionExists { id: "s1".into() })
    );
}

#[test]
fn revoking_a_lease_deletes_its_keys() {
    let mut h = Harness::new();
    h.run_ok(Op::LeaseGrant {
        id: 7,
        ttl_secs: 10,
    });
    assert_eq!(
        h.run(Op::LeaseGrant {
            id: 7,
            ttl_secs: 10
        }),
        Response::Rejected(ApplyError::LeaseExists { id: 7 })
    );
    let with_lease = |key: &str, lease| Op::KvPut {
        key: key.into(),
        value: b"v".to_vec(),
        flags: 0,
        lease,
        condition: KvCondition::None,
        lock: LockAction::None,
    };
    assert_eq!(
        h.run(with_lease("x", Some(8))),
        Response::Rejected(ApplyError::UnknownLease { id: 8 })
    );
    h.run_ok(with_lease("a", Some(7)));
    h.run_ok(with_lease("b", Some(7)));
    h.run_ok(with_lease("c", Some(7)));
    h.run_ok(with_lease("c", None));
    assert_eq!(h.sm.leases().get(7).map(|l| l.keys.len()), Some(2));

    let outcome = h.sm.apply_with_events(
        h.index + 1,
        &Command::new(h.now_ms, Op::LeaseRevoke { id: 7 }),
    );
    h.index += 1;
    assert_eq!(outcome.response, Response::Done);
    assert!(outcome
        .kv_events
        .iter()
        .all(|e| e.kind == KvEventKind::Delete && e.revision() == h.index));
    assert_eq!(outcome.kv_events.len(), 2);
    assert!(h.kv("a").is_none() && h.kv("b").is_none());
    assert!(h.kv("c").is_some(), "detached before the revoke");
    assert!(h.sm.leases().is_empty());
    assert_eq!(
        h.run(Op::LeaseRevoke { id: 7 }),
        Response::Rejected(ApplyError::UnknownLease { id: 7 })
    );
    assert_eq!(
        h.run(Op::LeaseGrant {
            id: 0,
            ttl_secs: 10
        }),
        Response::Rejected(ApplyError::UnknownLease { id: 0 })
    );
}

#[test]
fn registering_a_service_creates_its_node() {
    let mut h = Harness::new();
    let mut web = service("web-1", "web", 80);
    web.address = "10.0.0.9".into();
    h.run_ok(Op::RegisterService {
        node: "n1".into(),
        service: web,
        checks: vec![],
        replace_checks: false,
    });
    let node = h.sm.catalog().node("n1").expect("created");
    assert_eq!(node.address, "10.0.0.9");
    assert_eq!(h.sm.catalog().instances("web").len(), 1);
}

#[test]
fn an_unchanged_re_registration_moves_no_index() {
    let mut h = Harness::new();
    h.node("n1");
    let check = Check {
        id: "web-http".into(),
        status: CheckStatus::Passing,
        ..Check::default()
    };
    let register = |port| Op::RegisterService {
        node: "n1".into(),
        service: service("web-1", "web", port),
        checks: vec![check.clone()],
        replace_checks: false,
    };
    h.run_ok(register(80));
    let created_at = h.index;
    let catalog_before = h.sm.catalog().clone();

    let outcome =
        h.sm.apply_with_events(h.index + 1, &Command::new(h.now_ms, register(80)));
    h.index += 1;
    assert!(outcome.service_names.is_empty());
    assert_eq!(
        *h.sm.catalog(),
        catalog_before,
        "nothing changed, not even an index"
    );

    h.run_ok(register(81));
    let catalog = h.sm.catalog();
    let web = catalog.service("n1", "web-1").expect("registered");
    assert_eq!((web.create_index, web.modify_index), (created_at, h.index));
    assert_eq!(catalog.service_index("web"), h.index);
    assert_eq!(
        catalog.check("n1", "web-http").map(|c| c.modify_index),
        Some(created_at),
        "the unchanged check keeps its index"
    );
}

#[test]
fn an_unchanged_check_result_moves_no_index() {
    let mut h = Harness::new();
    h.node("n1");
    h.node_check("n1", "c", CheckStatus::Passing);
    let update = |status, output: &str| Op::UpdateCheck {
        node: "n1".into(),
        check_id: "c".into(),
        status,
        output: output.into(),
    };
    h.run_ok(update(CheckStatus::Passing, "ok"));
    let changed_at = h.index;
    h.run_ok(update(CheckStatus::Passing, "ok"));
    assert_eq!(h.sm.catalog().checks_index(), changed_at);
    assert_eq!(
        h.sm.catalog().check("n1", "c").map(|c| c.modify_index),
        Some(changed_at)
    );
    assert_eq!(
        h.run(Op::UpdateCheck {
            node: "n1".into(),
            check_id: "nope".into(),
            status: CheckStatus::Passing,
            output: String::new(),
        }),
        Response::Rejected(ApplyError::UnknownCheck {
            node: "n1".into(),
            check_id: "nope".into()
        })
    );
}

#[test]
fn checks_are_validated_against_node_and_service() {
    let mut h = Harness::new();
    let check = Check {
        node: "n1".into(),
        id: "c".into(),
        service_id: Some("web-1".into()),
        ..Check::default()
    };
    assert_eq!(
        h.run(Op::RegisterCheck {
            check: check.clone()
        }),
        Response::Rejected(ApplyError::UnknownNode { node: "n1".into() })
    );
    h.node("n1");
    assert_eq!(
        h.run(Op::RegisterCheck { check }),
        Response::Rejected(ApplyError::UnknownService {
            node: "n1".into(),
            service_id: "web-1".into()
        })
    );
}

#[test]
fn instances_show_node_and_service_checks_and_health() {
    let mut h = Harness::new();
    h.node("n1");
    h.node_check("n1", "serfHealth", CheckStatus::Passing);
    for (id, port) in [("web-1", 80), ("web-2", 81)] {
        h.run_ok(Op::RegisterService {
            node: "n1".into(),
            service: service(id, "web", port),
            checks: vec![Check {
                id: format!("{id}-check"),
                status: CheckStatus::Passing,
                ..Check::default()
            }],
            replace_checks: false,
        });
    }
    h.run_ok(Op::UpdateCheck {
        node: "n1".into(),
        check_id: "web-2-check".into(),
        status: CheckStatus::Warning,
        output: String::new(),
    });
    let catalog = h.sm.catalog();
    let instances = catalog.instances("web");
    let summary: Vec<(&str, Vec<&str>, CheckStatus)> = instances
        .iter()
        .map(|i| {
            (
                i.service.id.as_str(),
                i.checks.iter().map(|c| c.id.as_str()).collect(),
                i.status(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "web-1",
                vec!["serfHealth", "web-1-check"],
                CheckStatus::Passing
            ),
            (
                "web-2",
                vec!["serfHealth", "web-2-check"],
                CheckStatus::Warning
            ),
        ]
    );
    assert_eq!(catalog.checks_of_service("web").len(), 2);
    assert_eq!(catalog.checks_in_state(Some(CheckStatus::Warning)).len(), 1);
    assert_eq!(catalog.checks_in_state(None).len(), 3);
    assert_eq!(catalog.checks_of_node("n1").count(), 3);
    let names = catalog.service_names();
    assert_eq!(names.keys().copied().collect::<Vec<_>>(), ["web"]);
}

#[test]
fn a_node_check_change_wakes_every_service_on_the_node() {
    let mut h = Harness::new();
    h.node("n1");
    h.node_check("n1", "serfHealth", CheckStatus::Passing);
    h.run_ok(Op::RegisterService {
        node: "n1".into(),
        service: service("db-1", "db", 5432),
        checks: vec![],
        replace_checks: false,
    });
    let outcome = h.sm.apply_with_events(
        h.index + 1,
        &Command::new(
            h.now_ms,
            Op::UpdateCheck {
                node: "n1".into(),
                check_id: "serfHealth".into(),
                status: CheckStatus::Critical,
                output: String::new(),
            },
        ),
    );
    h.index += 1;
    assert_eq!(
        outcome.service_names.into_iter().collect::<Vec<_>>(),
        ["db"]
    );
    assert_eq!(h.sm.catalog().service_index("db"), h.index);
}

#[test]
fn replace_checks_drops_unlisted_checks() {
    let mut h = Harness::new();
    let check = |id: &str| Check {
        id: id.into(),
        ..Check::default()
    };
    let register = |checks: Vec<Check>, replace_checks| Op::RegisterService {
        node: "n1".into(),
        service: service("web-1", "web", 80),
        checks,
        replace_checks,
    };
    h.run_ok(register(vec![check("a"), check("b")], false));
    h.run_ok(register(vec![check("c")], false));
    assert_eq!(h.sm.catalog().checks_of_instance("n1", "web-1").len(), 3);
    h.run_ok(register(vec![check("c")], true));
    let ids: Vec<&str> =
        h.sm.catalog()
            .checks_of_instance("n1", "web-1")
            .into_iter()
            .map(|c| c.id.as_str())
            .collect();
    assert_eq!(ids, ["c"]);
}

#[test]
fn a_service_index_never_goes_backwards_when_its_last_instance_goes() {
    let mut h = Harness::new();
    h.run_ok(Op::RegisterService {
        node: "n1".into(),
        service: service("web-1", "web", 80),
        checks: vec![],
        replace_checks: false,
    });
    let before = h.sm.catalog().service_index("web");
    h.run_ok(Op::DeregisterService {
        node: "n1".into(),
        service_id: "web-1".into(),
    });
    assert!(h.sm.catalog().instances("web").is_empty());
    assert_eq!(h.sm.catalog().service_index("web"), h.index);
    assert!(h.sm.catalog().service_index("web") > before);
    h.run_ok(Op::DeregisterService {
        node: "n1".into(),
        service_id: "web-1".into(),
    });
}

#[test]
fn renaming_a_service_moves_it_between_names() {
    let mut h = Harness::new();
    let register = |name| Op::RegisterService {
        node: "n1".into(),
        service: service("x-1", name, 80),
        checks: vec![],
        replace_checks: false,
    };
    h.run_ok(register("old"));
    h.run_ok(register("new"));
    assert!(h.sm.catalog().instances("old").is_empty());
    assert_eq!(h.sm.catalog().instances("new").len(), 1);
}

#[test]
fn stale_and_blank_entries() {
    let mut h = Harness::new();
    h.put("a", "1");
    let before = h.sm.clone();
    assert_eq!(
        h.sm.apply(1, &Command::new(0, put_op("a", "again", LockAction::None))),
        Response::Done
    );
    assert_eq!(h.sm, before, "a stale entry changes nothing");
    h.sm.advance(5);
    assert_eq!(h.sm.revision(), 5);
    assert_eq!(h.sm.kv().revision(), 5);
    h.sm.advance(3);
    assert_eq!(h.sm.revision(), 5);
    assert_eq!(h.sm.check_invariants(), Ok(()));
}

#[test]
fn compaction_through_commands() {
    let mut h = Harness::new();
    h.put("a", "1");
    h.put("a", "2");
    h.run_ok(Op::KvCompact { revision: 2 });
    assert!(matches!(
        h.run(Op::KvCompact { revision: 2 }),
        Response::Rejected(ApplyError::Compacted { .. })
    ));
    assert!(matches!(
        h.run(Op::KvCompact { revision: 100 }),
        Response::Rejected(ApplyError::FutureRevision { .. })
    ));
}

#[test]
fn snapshots_round_trip_and_refuse_garbage() {
    let mut h = Harness::with_session(SessionBehavior::Release, 0);
    h.lock("a", acquire("s1"));
    h.run_ok(Op::LeaseGrant { id: 3, ttl_secs: 5 });
    let bytes = h.sm.encode_snapshot().expect("encodable");
    assert_eq!(bytes.first(), Some(&SNAPSHOT_FORMAT_VERSION));
    let decoded = StateMachine::decode_snapshot(&bytes).expect("decodable");
    assert_eq!(decoded, h.sm);
    assert_eq!(decoded.encode_snapshot().expect("encodable"), bytes);

    assert!(matches!(
        StateMachine::decode_snapshot(&[]),
        Err(SnapshotError::Empty)
    ));
    let mut other_version = bytes.clone();
    other_version[0] = 99;
    assert!(matches!(
        StateMachine::decode_snapshot(&other_version),
        Err(SnapshotError::UnsupportedVersion { found: 99, .. })
    ));
    assert!(matches!(
        StateMachine::decode_snapshot(&bytes[..bytes.len() - 1]),
        Err(SnapshotError::Corrupt(_))
    ));
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(StateMachine::decode_snapshot(&trailing).is_err());
}
