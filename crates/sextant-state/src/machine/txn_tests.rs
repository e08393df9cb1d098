//! Examples of etcd Txn semantics, one per rule clients rely on.

use crate::command::{Command, Op, Response};
use crate::kv::{RangeQuery, SortOrder, SortTarget};
use crate::txn::{
    Compare, CompareResult, CompareTarget, DeleteOp, PutOp, Txn, TxnInvalid, TxnOp, TxnOpResult,
    MAX_TXN_OPS,
};
use crate::{ApplyError, StateMachine};

fn put(key: &str, value: &str) -> TxnOp {
    TxnOp::Put(PutOp {
        key: key.into(),
        value: value.into(),
        prev_kv: true,
        ..PutOp::default()
    })
}

fn range(key: &str) -> TxnOp {
    TxnOp::Range(RangeQuery {
        key: key.into(),
        ..RangeQuery::default()
    })
}

fn cmp(key: &str, result: CompareResult, target: CompareTarget) -> Compare {
    Compare {
        key: key.into(),
        range_end: Vec::new(),
        result,
        target,
    }
}

struct Machine {
    sm: StateMachine,
    index: u64,
}

impl Machine {
    fn new() -> Self {
        Self {
            sm: StateMachine::new(),
            index: 1,
        }
    }

    fn apply(&mut self, op: Op) -> Response {
        self.index += 1;
        self.sm.apply(self.index, &Command::new(1, op))
    }

    fn txn(&mut self, txn: Txn) -> Response {
        self.apply(Op::Txn { txn })
    }

    fn value(&self, key: &str) -> Option<String> {
        self.sm
            .kv()
            .get(key.as_bytes())
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
    }
}

#[test]
fn compares_choose_the_branch_and_ops_see_earlier_writes() {
    let mut m = Machine::new();
    m.txn(Txn {
        success: vec![put("a", "1")],
        ..Txn::default()
    });
    let response = m.txn(Txn {
        compares: vec![cmp(
            "a",
            CompareResult::Equal,
            CompareTarget::Value("1".into()),
        )],
        success: vec![put("a", "2"), range("a")],
        failure: vec![put("a", "3")],
    });
    let Response::Txn(result) = response else {
        panic!("not a txn response: {response:?}");
    };
    assert!(result.succeeded);
    match &result.responses[..] {
        [TxnOpResult::Put { prev: Some(prev) }, TxnOpResult::Range(r)] => {
            assert_eq!(prev.value, b"1");
            assert_eq!(r.kvs[0].value, b"2");
            assert_eq!(r.kvs[0].version, 2);
        }
        other => panic!("unexpected responses {other:?}"),
    }
}

#[test]
fn a_missing_key_fails_value_compares_and_counts_as_zero_otherwise() {
    let m = Machine::new();
    let kv = m.sm.kv();
    assert!(!cmp(
        "x",
        CompareResult::NotEqual,
        CompareTarget::Value("v".into())
    )
    .holds(kv));
    assert!(cmp("x", CompareResult::Equal, CompareTarget::Create(0)).holds(kv));
    assert!(cmp("x", CompareResult::Less, CompareTarget::Version(1)).holds(kv));
    assert!(cmp("x", CompareResult::Equal, CompareTarget::Lease(0)).holds(kv));
}

#[test]
fn a_range_compare_needs_every_key_to_hold() {
    let mut m = Machine::new();
    m.txn(Txn {
        success: vec![put("p/a", "1"), put("p/b", "2")],
        ..Txn::default()
    });
    let mut all_set = cmp("p/", CompareResult::Greater, CompareTarget::Version(0));
    all_set.range_end = b"p0".to_vec();
    assert!(all_set.holds(m.sm.kv()));
    let mut all_one = cmp("p/", CompareResult::Equal, CompareTarget::Value("1".into()));
    all_one.range_end = b"p0".to_vec();
    assert!(!all_one.holds(m.sm.kv()));
}

#[test]
fn a_txn_failing_half_way_changes_nothing() {
    let mut m = Machine::new();
    m.txn(Txn {
        success: vec![put("a", "1")],
        ..Txn::default()
    });
    let before = m.sm.kv().clone();
    let response = m.txn(Txn {
        success: vec![
            put("a", "2"),
            TxnOp::Delete(DeleteOp {
                key: "a".into(),
                range_end: "b".into(),
                prev_kv: false,
            }),
            TxnOp::Put(PutOp {
                key: "c".into(),
                lease: 42,
                ..PutOp::default()
            }),
        ],
        ..Txn::default()
    });
    assert_eq!(
        response,
        Response::Rejected(ApplyError::UnknownLease { id: 42 })
    );
    assert_eq!(m.value("a").as_deref(), Some("1"));
    let mut after = m.sm.kv().clone();
    // Only the revision moved: the entry was consumed.
    assert_eq!(after.last_change_revision(), before.last_change_revision());
    after.set_revision(before.revision());
    assert_eq!(after, before);
}

#[test]
fn ignore_value_and_ignore_lease_keep_the_current_ones() {
    let mut m = Machine::new();
    m.apply(Op::LeaseGrant {
        id: 7,
        ttl_secs: 10,
    });
    m.txn(Txn {
        success: vec![TxnOp::Put(PutOp {
            key: "k".into(),
            value: "v".into(),
            lease: 7,
            ..PutOp::default()
        })],
        ..Txn::default()
    });
    m.txn(Txn {
        success: vec![TxnOp::Put(PutOp {
            key: "k".into(),
            ignore_value: true,
            ignore_lease: true,
            ..PutOp::default()
        })],
        ..Txn::default()
    });
    let kv = m.sm.kv().get(b"k").cloned().unwrap_or_default();
    assert_eq!(
        (kv.value.as_slice(), kv.lease, kv.version),
        (&b"v"[..], Some(7), 2)
    );
    let missing = m.txn(Txn {
        success: vec![TxnOp::Put(PutOp {
            key: "nope".into(),
            ignore_value: true,
            ..PutOp::default()
        })],
        ..Txn::default()
    });
    assert_eq!(
        missing,
        Response::Rejected(ApplyError::KeyNotFound {
            key: b"nope".to_vec()
        })
    );
}

#[test]
fn nested_txns_run_their_own_compares() {
    let mut m = Machine::new();
    let response = m.txn(Txn {
        success: vec![
            put("a", "1"),
            TxnOp::Txn(Txn {
                compares: vec![cmp(
                    "a",
                    CompareResult::Equal,
                    CompareTarget::Value("1".into()),
                )],
                success: vec![put("b", "yes")],
                failure: vec![put("b", "no")],
            }),
        ],
        ..Txn::default()
    });
    assert!(matches!(response, Response::Txn(ref r) if r.succeeded));
    assert_eq!(m.value("b").as_deref(), Some("yes"));
}

#[test]
fn validation_refuses_duplicate_keys_and_too_many_ops() {
    let twice = Txn {
        success: vec![put("a", "1"), put("a", "2")],
        ..Txn::default()
    };
    assert_eq!(twice.validate(MAX_TXN_OPS), Err(TxnInvalid::DuplicateKey));
    let put_in_deleted_range = Txn {
        failure: vec![
            put("a/1", "1"),
            TxnOp::Delete(DeleteOp {
                key: "a/".into(),
                range_end: "a0".into(),
                prev_kv: false,
            }),
        ],
        ..Txn::default()
    };
    assert_eq!(
        put_in_deleted_range.validate(MAX_TXN_OPS),
        Err(TxnInvalid::DuplicateKey)
    );
    let nested_twice = Txn {
        success: vec![
            put("a", "1"),
            TxnOp::Txn(Txn {
                success: vec![put("a", "2")],
                ..Txn::default()
            }),
        ],
        ..Txn::default()
    };
    assert_eq!(
        nested_twice.validate(MAX_TXN_OPS),
        Err(TxnInvalid::DuplicateKey)
    );
    let both_branches = Txn {
        success: vec![put("a", "1")],
        failure: vec![put("a", "2")],
        ..Txn::default()
    };
    assert_eq!(both_branches.validate(MAX_TXN_OPS), Ok(()));
    let many = Txn {
        success: (0..=MAX_TXN_OPS)
            .map(|i| put(&i.to_string(), "v"))
            .collect(),
        ..Txn::default()
    };
    assert_eq!(many.validate(MAX_TXN_OPS), Err(TxnInvalid::TooManyOps));
}

#[test]
fn range_sorts_limits_filters_and_counts() {
    let mut m = Machine::new();
    for (key, value) in [("r/a", "3"), ("r/b", "1"), ("r/c", "2")] {
        m.txn(Txn {
            success: vec![put(key, value)],
            ..Txn::default()
        });
    }
    let query = RangeQuery {
        key: b"r/".to_vec(),
        range_end: b"r0".to_vec(),
        limit: 2,
        sort_order: SortOrder::Descend,
        sort_target: SortTarget::Value,
        ..RangeQuery::default()
    };
    let result = m.sm.kv().query(&query).unwrap_or_default();
    let keys: Vec<&[u8]> = result.kvs.iter().map(|kv| kv.key.as_slice()).collect();
    assert_eq!(keys, vec![&b"r/a"[..], b"r/c"]);
    assert!(result.more);
    assert_eq!(result.count, 3);

    let newest = RangeQuery {
        key: b"r/".to_vec(),
        range_end: b"r0".to_vec(),
        min_mod_revision: m.index,
        keys_only: true,
        ..RangeQuery::default()
    };
    let result = m.sm.kv().query(&newest).unwrap_or_default();
    assert_eq!(result.kvs.len(), 1);
    assert_eq!(result.kvs[0].key, b"r/c");
    assert!(result.kvs[0].value.is_empty());
    assert_eq!(result.count, 3);

    let counted = RangeQuery {
        count_only: true,
        ..newest
    };
    let result = m.sm.kv().query(&counted).unwrap_or_default();
    assert!(result.kvs.is_empty());
    assert_eq!(result.count, 3);
}

#[test]
fn the_cluster_id_is_adopted_once() {
    let mut sm = StateMachine::new();
    assert_eq!(sm.cluster_id(), 0);
    sm.adopt_cluster_id(5);
    sm.adopt_cluster_id(9);
    assert_eq!(sm.cluster_id(), 5);
}
