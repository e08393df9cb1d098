//! Commands drawn from fuzzer bytes.
//!
//! Names, ids and keys come from alphabets of two or three entries so that
//! consecutive commands keep colliding: a check lands on a service that was
//! just removed, a session on a node about to go, a put on a key a lease
//! holds. Random strings would almost never meet, and the interesting states
//! would never be reached.

use crate::catalog::{Check, CheckDefinition, CheckKind, CheckStatus, Node, Service};
use crate::command::{KvCondition, LockAction, Op};
use crate::kv::{RangeQuery, SortOrder, SortTarget};
use crate::session::{Session, SessionBehavior};
use crate::txn::{Compare, CompareResult, CompareTarget, DeleteOp, PutOp, Txn, TxnOp};

use super::ByteSource;

const NODES: &[&str] = &["n1", "n2", "n3"];
const SERVICE_IDS: &[&str] = &["web-1", "web-2", "db"];
const SERVICE_NAMES: &[&str] = &["web", "db"];
const CHECK_IDS: &[&str] = &["serfHealth", "c1", "c2"];
const SESSIONS: &[&str] = &["s1", "s2"];
const LEASES: &[i64] = &[1, 2, 3];
/// Includes a prefix of others, an empty key, and a key of the catalog view.
const KEYS: &[&[u8]] = &[b"", b"a", b"a/b", b"a/c", b"b", b"/sextant/services/x"];
const STATUSES: &[CheckStatus] = &[
    CheckStatus::Passing,
    CheckStatus::Warning,
    CheckStatus::Critical,
    CheckStatus::Maintenance,
];

fn name(source: &mut ByteSource<'_>, alphabet: &[&str]) -> String {
    (*source.pick(alphabet)).to_owned()
}

fn key(source: &mut ByteSource<'_>) -> Vec<u8> {
    source.pick(KEYS).to_vec()
}

/// Small revisions around `revision`, with the extremes now and then.
fn revision_near(source: &mut ByteSource<'_>, revision: u64) -> u64 {
    match source.below(8) {
        0 => 0,
        1 => u64::MAX,
        n => revision.saturating_sub(4).saturating_add(n as u64),
    }
}

fn condition(source: &mut ByteSource<'_>, revision: u64) -> KvCondition {
    if source.flag() {
        KvCondition::ModifyIndex(revision_near(source, revision))
    } else {
        KvCondition::None
    }
}

fn check(source: &mut ByteSource<'_>, node: String, service_id: Option<String>) -> Check {
    let kind = match source.below(3) {
        0 => CheckKind::External,
        1 => CheckKind::Ttl {
            ttl_ms: u64::from(source.byte()) * 1000,
        },
        _ => CheckKind::Tcp {
            address: "127.0.0.1:1".into(),
        },
    };
    Check {
        node,
        id: name(source, CHECK_IDS),
        name: "check".into(),
        service_id,
        status: *source.pick(STATUSES),
        output: if source.flag() {
            "out".into()
        } else {
            String::new()
        },
        definition: CheckDefinition {
            kind,
            deregister_critical_after_ms: source.flag().then_some(60_000),
            ..CheckDefinition::default()
        },
        ..Check::default()
    }
}

fn service(source: &mut ByteSource<'_>) -> Service {
    Service {
        id: name(source, SERVICE_IDS),
        name: name(source, SERVICE_NAMES),
        port: u16::from(source.byte()),
        tags: if source.flag() {
            vec!["v1".into()]
        } else {
            Vec::new()
        },
        ..Service::default()
    }
}

fn session(source: &mut ByteSource<'_>) -> Session {
    let checks = (0..source.below(3))
        .map(|_| name(source, CHECK_IDS))
        .collect();
    Session {
        id: name(source, SESSIONS),
        node: name(source, NODES),
        checks,
        lock_delay_ms: u64::from(source.byte()) * 100,
        behavior: if source.flag() {
            SessionBehavior::Delete
        } else {
            SessionBehavior::Release
        },
        ttl_ms: source.flag().then_some(10_000),
        ..Session::default()
    }
}

fn range_end(source: &mut ByteSource<'_>) -> Vec<u8> {
    match source.below(4) {
        0 => Vec::new(),
        1 => vec![0],
        _ => key(source),
    }
}

fn range_query(source: &mut ByteSource<'_>, revision: u64) -> RangeQuery {
    RangeQuery {
        key: key(source),
        range_end: range_end(source),
        limit: u64::from(source.byte() % 4),
        revision: if source.flag() {
            revision_near(source, revision)
        } else {
            0
        },
        sort_order: *source.pick(&[SortOrder::None, SortOrder::Ascend, SortOrder::Descend]),
        sort_target: *source.pick(&[
            SortTarget::Key,
            SortTarget::Version,
            SortTarget::Create,
            SortTarget::Mod,
            SortTarget::Value,
        ]),
        keys_only: source.flag(),
        count_only: source.flag(),
        min_mod_revision: revision_near(source, revision) % 3,
        ..RangeQuery::default()
    }
}

fn txn_op(source: &mut ByteSource<'_>, revision: u64, depth: u8) -> TxnOp {
    match source.below(if depth == 0 { 3 } else { 4 }) {
        0 => TxnOp::Range(range_query(source, revision)),
        1 => TxnOp::Put(PutOp {
            key: key(source),
            value: source.bytes(4).to_vec(),
            lease: if source.flag() {
                *source.pick(LEASES)
            } else {
                0
            },
            prev_kv: source.flag(),
            ignore_value: source.below(4) == 0,
            ignore_lease: source.below(4) == 0,
        }),
        2 => TxnOp::Delete(DeleteOp {
            key: key(source),
            range_end: range_end(source),
            prev_kv: source.flag(),
        }),
        _ => TxnOp::Txn(txn(source, revision, depth - 1)),
    }
}

fn compare(source: &mut ByteSource<'_>, revision: u64) -> Compare {
    let operand = i64::from(source.byte() % 8) - 1;
    Compare {
        key: key(source),
        range_end: range_end(source),
        result: *source.pick(&[
            CompareResult::Equal,
            CompareResult::Greater,
            CompareResult::Less,
            CompareResult::NotEqual,
        ]),
        target: match source.below(5) {
            0 => CompareTarget::Version(operand),
            1 => CompareTarget::Create(operand),
            2 => CompareTarget::Mod(i64::try_from(revision_near(source, revision)).unwrap_or(-1)),
            3 => CompareTarget::Value(source.bytes(2).to_vec()),
            _ => CompareTarget::Lease(*source.pick(LEASES)),
        },
    }
}

/// A Txn nested at most `depth` levels further.
pub fn txn(source: &mut ByteSource<'_>, revision: u64, depth: u8) -> Txn {
    Txn {
        compares: (0..source.below(3))
            .map(|_| compare(source, revision))
            .collect(),
        success: (0..source.below(3))
            .map(|_| txn_op(source, revision, depth))
            .collect(),
        failure: (0..source.below(3))
            .map(|_| txn_op(source, revision, depth))
            .collect(),
    }
}

/// One command other than a snapshot restore, which the driver builds from
/// states it has seen. `revision` is the machine's, so that conditions and
/// compactions aim near it.
pub fn op(source: &mut ByteSource<'_>, revision: u64) -> Op {
    match source.below(15) {
        0 => Op::KvPut {
            key: key(source),
            value: source.bytes(4).to_vec(),
            flags: u64::from(source.byte()),
            lease: source.flag().then(|| *source.pick(LEASES)),
            condition: condition(source, revision),
            lock: match source.below(3) {
                0 => LockAction::None,
                1 => LockAction::Acquire(name(source, SESSIONS)),
                _ => LockAction::Release(name(source, SESSIONS)),
            },
        },
        1 => Op::KvDelete {
            key: key(source),
            prefix: source.flag(),
            condition: condition(source, revision),
        },
        2 => Op::KvCompact {
            revision: revision_near(source, revision),
        },
        3 => Op::RegisterNode {
            node: Node {
                name: name(source, NODES),
                address: format!("10.0.0.{}", source.byte()),
                ..Node::default()
            },
        },
        4 => Op::DeregisterNode {
            node: name(source, NODES),
        },
        5 => {
            let node = name(source, NODES);
            let service = service(source);
            let checks = (0..source.below(3))
                .map(|_| {
                    let owner = if source.below(4) == 0 {
                        name(source, SERVICE_IDS)
                    } else {
                        service.id.clone()
                    };
                    check(source, node.clone(), Some(owner))
                })
                .collect();
            Op::RegisterService {
                node,
                service,
                checks,
                replace_checks: source.flag(),
            }
        }
        6 => Op::DeregisterService {
            node: name(source, NODES),
            service_id: name(source, SERVICE_IDS),
        },
        7 => {
            let node = name(source, NODES);
            let owner = source.flag().then(|| name(source, SERVICE_IDS));
            Op::RegisterCheck {
                check: check(source, node, owner),
            }
        }
        8 => Op::DeregisterCheck {
            node: name(source, NODES),
            check_id: name(source, CHECK_IDS),
        },
        9 => Op::UpdateCheck {
            node: name(source, NODES),
            check_id: name(source, CHECK_IDS),
            status: *source.pick(STATUSES),
            output: String::new(),
        },
        10 => Op::CreateSession {
            session: session(source),
        },
        11 => Op::DestroySession {
            id: name(source, SESSIONS),
        },
        12 => Op::LeaseGrant {
            id: *source.pick(LEASES),
            ttl_secs: i64::from(source.byte()) - 1,
        },
        13 => Op::LeaseRevoke {
            id: *source.pick(LEASES),
        },
        _ => Op::Txn {
            txn: txn(source, revision, 1),
        },
    }
}
