//! Properties of the state machine over random command sequences.
//!
//! The alphabets are tiny (a handful of keys, nodes, sessions, checks,
//! leases) so that commands collide: locks contend, sessions die holding
//! keys, leases are revoked under live keys, checks fail under sessions.

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::sample::select;

use sextant_state::catalog::{Check, CheckStatus, Node, Service};
use sextant_state::machine::SNAPSHOT_FORMAT_VERSION;
use sextant_state::session::{Session, SessionBehavior};
use sextant_state::txn::{Compare, CompareResult, CompareTarget, DeleteOp, PutOp, Txn, TxnOp};
use sextant_state::{Command, KvCondition, LockAction, Op, StateMachine};

/// One Raft entry: how far its index is past the previous one (0 repeats
/// the previous index, which must be ignored), how far the clock moved, and
/// its command (`None` for a blank or membership entry).
#[derive(Clone, Debug)]
struct Entry {
    index_gap: u64,
    clock_step_ms: u64,
    op: Option<Op>,
}

const KEYS: &[&str] = &["", "a", "a/b", "a/c", "b", "b/x"];
const SESSIONS: &[&str] = &["s1", "s2", "s3"];
const NODES: &[&str] = &["n1", "n2"];
const SERVICE_IDS: &[&str] = &["w1", "w2", "d1"];
const SERVICE_NAMES: &[&str] = &["web", "db"];
const CHECKS: &[&str] = &["serfHealth", "c1", "c2"];
const LEASES: &[i64] = &[0, 1, 2, 3];
const STATUSES: &[CheckStatus] = &[
    CheckStatus::Passing,
    CheckStatus::Warning,
    CheckStatus::Critical,
    CheckStatus::Maintenance,
];

fn name(choices: &'static [&'static str]) -> impl Strategy<Value = String> {
    select(choices).prop_map(str::to_owned)
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    select(KEYS).prop_map(|k| k.as_bytes().to_vec())
}

fn condition() -> impl Strategy<Value = KvCondition> {
    prop_oneof![
        5 => Just(KvCondition::None),
        1 => Just(KvCondition::ModifyIndex(0)),
        2 => (1u64..40).prop_map(KvCondition::ModifyIndex),
    ]
}

fn lock() -> impl Strategy<Value = LockAction> {
    prop_oneof![
        2 => Just(LockAction::None),
        2 => name(SESSIONS).prop_map(LockAction::Acquire),
        1 => name(SESSIONS).prop_map(LockAction::Release),
    ]
}

/// Mostly no lease, so that lease-less keys exist beside leased ones.
fn lease() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![1 => Just(None), 2 => select(LEASES).prop_map(Some)]
}

fn status() -> impl Strategy<Value = CheckStatus> {
    select(STATUSES)
}

fn check(node: impl Strategy<Value = String>) -> impl Strategy<Value = Check> {
    (
        node,
        name(CHECKS),
        proptest::option::of(name(SERVICE_IDS)),
        status(),
        select(&["", "ok", "down"][..]),
    )
        .prop_map(|(node, id, service_id, status, output)| Check {
            node,
            name: id.clone(),
            id,
            service_id,
            status,
            output: output.into(),
            ..Check::default()
        })
}

fn service() -> impl Strategy<Value = Service> {
    (
        name(SERVICE_IDS),
        name(SERVICE_NAMES),
        select(&[80u16, 81][..]),
        proptest::collection::vec(name(&["v1", "v2"]), 0..2),
    )
        .prop_map(|(id, name, port, tags)| Service {
            id,
            name,
            port,
            tags,
            ..Service::default()
        })
}

fn session() -> impl Strategy<Value = Session> {
    (
        name(SESSIONS),
        name(NODES),
        prop_oneof![
            2 => Just(vec![]),
            2 => Just(vec!["serfHealth".to_owned()]),
            1 => proptest::collection::vec(name(CHECKS), 1..3),
        ],
        prop_oneof![
            Just(SessionBehavior::Release),
            Just(SessionBehavior::Delete)
        ],
        select(&[0u64, 5, 50][..]),
    )
        .prop_map(|(id, node, checks, behavior, lock_delay_ms)| Session {
            id,
            node,
            checks,
            behavior,
            lock_delay_ms,
            ..Session::default()
        })
}

fn plain_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        // etcd-style: maybe a lease, never a lock.
        4 => (key(), select(&["1", "2"][..]), lease()).prop_map(|(key, value, lease)| Op::KvPut {
            key,
            value: value.as_bytes().to_vec(),
            flags: 0,
            lease,
            condition: KvCondition::None,
            lock: LockAction::None,
        }),
        // Consul-style: flags, cas, acquire/release, never a lease.
        6 => (key(), select(&["1", "2"][..]), 0u64..2, condition(), lock())
            .prop_map(|(key, value, flags, condition, lock)| Op::KvPut {
                key,
                value: value.as_bytes().to_vec(),
                flags,
                lease: None,
                condition,
                lock,
            }),
        2 => (key(), any::<bool>(), condition())
            .prop_map(|(key, prefix, condition)| Op::KvDelete { key, prefix, condition }),
        1 => (0u64..60).prop_map(|revision| Op::KvCompact { revision }),
        2 => (name(NODES), select(&["10.0.0.1", "10.0.0.2"][..])).prop_map(|(name, address)| {
            Op::RegisterNode { node: Node { name, address: address.into(), ..Node::default() } }
        }),
        1 => name(NODES).prop_map(|node| Op::DeregisterNode { node }),
        3 => (name(NODES), service(), proptest::collection::vec(check(Just(String::new())), 0..3), any::<bool>())
            .prop_map(|(node, service, checks, replace_checks)| Op::RegisterService {
                node,
                service,
                checks,
                replace_checks,
            }),
        1 => (name(NODES), name(SERVICE_IDS))
            .prop_map(|(node, service_id)| Op::DeregisterService { node, service_id }),
        4 => check(name(NODES)).prop_map(|check| Op::RegisterCheck { check }),
        1 => (name(NODES), name(CHECKS))
            .prop_map(|(node, check_id)| Op::DeregisterCheck { node, check_id }),
        4 => (name(NODES), name(CHECKS), status(), select(&["", "ok", "down"][..]))
            .prop_map(|(node, check_id, status, output)| Op::UpdateCheck {
                node,
                check_id,
                status,
                output: output.into(),
            }),
        4 => session().prop_map(|session| Op::CreateSession { session }),
        1 => name(SESSIONS).prop_map(|id| Op::DestroySession { id }),
        3 => (select(LEASES), 1i64..10).prop_map(|(id, ttl_secs)| Op::LeaseGrant { id, ttl_secs }),
        1 => select(LEASES).prop_map(|id| Op::LeaseRevoke { id }),
        // etcd Txn: a version compare, a leased put or a range delete.
        2 => (key(), select(&["1", "2"][..]), lease(), 0i64..3, key()).prop_map(
            |(key, value, lease, version, other)| Op::Txn {
                txn: Txn {
                    compares: vec![Compare {
                        key: key.clone(),
                        range_end: Vec::new(),
                        result: CompareResult::Equal,
                        target: CompareTarget::Version(version),
                    }],
                    success: vec![TxnOp::Put(PutOp {
                        key,
                        value: value.as_bytes().to_vec(),
                        lease: lease.unwrap_or(0),
                        ..PutOp::default()
                    })],
                    failure: vec![TxnOp::Delete(DeleteOp {
                        key: other,
                        range_end: b"\0".to_vec(),
                        prev_kv: true,
                    })],
                },
            }
        ),
    ]
}

/// Mostly plain commands; now and then a restore: of a snapshot of another
/// small random world (with the prologue's names, so it collides with this
/// one), or of bytes that are no snapshot and must be refused.
fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        40 => plain_op(),
        1 => (any::<bool>(), proptest::collection::vec(entry_of(plain_op()), 0..12))
            .prop_map(|(populated, tail)| {
                let mut world = if populated { prologue() } else { Vec::new() };
                world.extend(tail);
                let mut sm = StateMachine::new();
                let mut replayer = Replayer::new();
                for entry in &world {
                    replayer.apply(&mut sm, entry);
                }
                let snapshot = sm.encode_snapshot().unwrap_or_default();
                Op::RestoreSnapshot { snapshot }
            }),
        1 => proptest::collection::vec(any::<u8>(), 0..16)
            .prop_map(|snapshot| Op::RestoreSnapshot { snapshot }),
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    entry_of(op())
}

fn entry_of(op: impl Strategy<Value = Op>) -> impl Strategy<Value = Entry> {
    (
        prop_oneof![1 => Just(0u64), 8 => Just(1u64), 1 => 2u64..4],
        0u64..30,
        prop_oneof![1 => Just(None), 12 => op.prop_map(Some)],
    )
        .prop_map(|(index_gap, clock_step_ms, op)| Entry {
            index_gap,
            clock_step_ms,
            op,
        })
}

/// A populated world to start from: both nodes with a passing serfHealth,
/// a session of each behavior, two leases. Without it, random sequences
/// seldom get as far as a session dying while it holds locks.
fn prologue() -> Vec<Entry> {
    let mut ops = Vec::new();
    for node in NODES {
        ops.push(Op::RegisterNode {
            node: Node {
                name: (*node).to_owned(),
                address: "10.0.0.1".into(),
                ..Node::default()
            },
        });
        ops.push(Op::RegisterCheck {
            check: Check {
                node: (*node).to_owned(),
                id: "serfHealth".into(),
                status: CheckStatus::Passing,
                ..Check::default()
            },
        });
    }
    let sessions = [
        ("s1", "n1", SessionBehavior::Release, 5),
        ("s2", "n2", SessionBehavior::Delete, 0),
    ];
    for (id, node, behavior, lock_delay_ms) in sessions {
        ops.push(Op::CreateSession {
            session: Session {
                id: id.into(),
                node: node.into(),
                checks: vec!["serfHealth".into()],
                behavior,
                lock_delay_ms,
                ..Session::default()
            },
        });
    }
    for id in [1, 2] {
        ops.push(Op::LeaseGrant { id, ttl_secs: 5 });
    }
    ops.into_iter()
        .map(|op| Entry {
            index_gap: 1,
            clock_step_ms: 1,
            op: Some(op),
        })
        .collect()
}

/// A random sequence of entries, half of them after the prologue.
fn entries(max: usize) -> impl Strategy<Value = Vec<Entry>> {
    (any::<bool>(), proptest::collection::vec(entry(), 1..max)).prop_map(|(populated, tail)| {
        let mut entries = if populated { prologue() } else { Vec::new() };
        entries.extend(tail);
        entries
    })
}

/// Feeds entries to a state machine the way the Raft apply loop does.
struct Replayer {
    index: u64,
    now_ms: u64,
}

impl Replayer {
    fn new() -> Self {
        Self {
            index: 0,
            now_ms: 1_000,
        }
    }

    fn apply(&mut self, sm: &mut StateMachine, entry: &Entry) {
        self.index += entry.index_gap;
        self.now_ms += entry.clock_step_ms;
        match &entry.op {
            Some(op) => {
                sm.apply(self.index, &Command::new(self.now_ms, op.clone()));
            }
            None => sm.advance(self.index),
        }
    }
}

/// The state machine's invariants, through the public API only; the machine's
/// own `check_invariants` covers its internal indexes on top of these.
fn check_public_invariants(sm: &StateMachine) -> Result<(), TestCaseError> {
    let kv = sm.kv();
    for entry in kv.list_prefix(b"") {
        prop_assert!(entry.mod_revision <= sm.revision());
        prop_assert!(entry.create_revision <= entry.mod_revision);
        prop_assert!(entry.version >= 1);
        if let Some(lease) = entry.lease {
            let lease = sm.leases().get(lease);
            prop_assert!(lease.is_some_and(|l| l.keys.contains(&entry.key)));
        }
        if let Some(session) = &entry.session {
            prop_assert!(sm.sessions().get(session).is_some());
        }
    }
    for lease in sm.leases().iter() {
        for key in &lease.keys {
            prop_assert_eq!(kv.get(key).and_then(|e| e.lease), Some(lease.id));
        }
    }
    let catalog = sm.catalog();
    for check in catalog.checks() {
        prop_assert!(catalog.node(&check.node).is_some());
    }
    for (node, _) in catalog.services() {
        prop_assert!(catalog.node(node).is_some());
    }
    for session in sm.sessions().iter() {
        prop_assert!(catalog.node(&session.node).is_some());
    }
    let names: BTreeSet<&str> = catalog.service_names().into_keys().collect();
    for name in names {
        prop_assert!(!catalog.instances(name).is_empty());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any command sequence applies without a panic and every invariant holds
    /// after every step.
    #[test]
    fn invariants_hold_after_every_step(entries in entries(100)) {
        let mut sm = StateMachine::new();
        let mut replayer = Replayer::new();
        for entry in &entries {
            replayer.apply(&mut sm, entry);
            prop_assert_eq!(sm.revision(), replayer.index);
            if let Err(broken) = sm.check_invariants() {
                return Err(TestCaseError::fail(format!("after {entry:?}: {broken}")));
            }
            check_public_invariants(&sm)?;
        }
    }

    /// Restoring a snapshot mid-way and applying the rest gives the same
    /// state, down to the snapshot bytes, as applying everything.
    #[test]
    fn snapshot_restore_then_replay_equals_full_replay(
        entries in entries(100),
        split in any::<prop::sample::Index>(),
    ) {
        let split = split.index(entries.len() + 1);
        let (head, tail) = entries.split_at(split);

        let mut full = StateMachine::new();
        let mut full_replayer = Replayer::new();
        for entry in &entries {
            full_replayer.apply(&mut full, entry);
        }

        let mut first = StateMachine::new();
        let mut replayer = Replayer::new();
        for entry in head {
            replayer.apply(&mut first, entry);
        }
        let bytes = first.encode_snapshot().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut restored = StateMachine::decode_snapshot(&bytes)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&restored, &first);
        for entry in tail {
            replayer.apply(&mut restored, entry);
        }

        prop_assert_eq!(&restored, &full);
        let restored_bytes = restored.encode_snapshot().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let full_bytes = full.encode_snapshot().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(restored_bytes, full_bytes);
    }

    /// Arbitrary bytes decode to an error or a consistent state, never a panic.
    #[test]
    fn decoding_arbitrary_bytes_never_panics(
        version in prop_oneof![Just(SNAPSHOT_FORMAT_VERSION), any::<u8>()],
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut bytes = vec![version];
        bytes.extend(body);
        if let Ok(sm) = StateMachine::decode_snapshot(&bytes) {
            prop_assert_eq!(sm.check_invariants(), Ok(()));
        }
    }

    /// A real snapshot with bytes flipped or cut off decodes to an error or a
    /// consistent state, never a panic.
    #[test]
    fn decoding_damaged_snapshots_never_panics(
        entries in entries(40),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut sm = StateMachine::new();
        let mut replayer = Replayer::new();
        for entry in &entries {
            replayer.apply(&mut sm, entry);
        }
        let mut bytes = sm.encode_snapshot().map_err(|e| TestCaseError::fail(e.to_string()))?;
        for (at, value) in flips {
            let at = at.index(bytes.len());
            if let Some(byte) = bytes.get_mut(at) {
                *byte ^= value;
            }
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        if let Ok(decoded) = StateMachine::decode_snapshot(&bytes) {
            prop_assert_eq!(decoded.check_invariants(), Ok(()));
        }
    }
}
