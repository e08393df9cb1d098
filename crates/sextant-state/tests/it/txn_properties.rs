//! Properties of etcd Txns over random sequences: a Txn is all or nothing,
//! all of its changes share one revision, and the key space agrees with a
//! plain map model that applies the same ops.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::select;

use sextant_state::kv::RangeQuery;
use sextant_state::txn::{
    in_range, Compare, CompareResult, CompareTarget, DeleteOp, PutOp, Txn, TxnOp, MAX_TXN_OPS,
};
use sextant_state::{Command, Op, Response, StateMachine};

const KEYS: &[&str] = &["a", "a/1", "a/2", "b", "c"];
/// Lease 1 exists (granted first); lease 9 never does, so puts with it fail.
const LEASES: &[i64] = &[0, 0, 1, 9];

fn key() -> impl Strategy<Value = Vec<u8>> {
    select(KEYS).prop_map(|k| k.as_bytes().to_vec())
}

fn range_end() -> impl Strategy<Value = Vec<u8>> {
    select(&["", "", "a0", "\0", "c"][..]).prop_map(|k| k.as_bytes().to_vec())
}

fn compare() -> impl Strategy<Value = Compare> {
    let result = select(
        &[
            CompareResult::Equal,
            CompareResult::Greater,
            CompareResult::Less,
            CompareResult::NotEqual,
        ][..],
    );
    let target = prop_oneof![
        (0i64..3).prop_map(CompareTarget::Version),
        (0i64..20).prop_map(CompareTarget::Create),
        (0i64..20).prop_map(CompareTarget::Mod),
        select(&["", "1", "2"][..]).prop_map(|v| CompareTarget::Value(v.as_bytes().to_vec())),
        select(LEASES).prop_map(CompareTarget::Lease),
    ];
    (key(), range_end(), result, target).prop_map(|(key, range_end, result, target)| Compare {
        key,
        range_end,
        result,
        target,
    })
}

fn leaf_op() -> impl Strategy<Value = TxnOp> {
    prop_oneof![
        3 => (key(), select(&["1", "2"][..]), select(LEASES), any::<bool>(), any::<bool>())
            .prop_map(|(key, value, lease, prev_kv, ignore_value)| TxnOp::Put(PutOp {
                key,
                value: if ignore_value { Vec::new() } else { value.as_bytes().to_vec() },
                lease,
                prev_kv,
                ignore_value,
                ignore_lease: false,
            })),
        1 => (key(), range_end(), any::<bool>())
            .prop_map(|(key, range_end, prev_kv)| TxnOp::Delete(DeleteOp { key, range_end, prev_kv })),
        1 => (key(), range_end(), 0u64..25).prop_map(|(key, range_end, revision)| {
            TxnOp::Range(RangeQuery { key, range_end, revision, ..RangeQuery::default() })
        }),
    ]
}

fn txn() -> impl Strategy<Value = Txn> {
    let ops = || proptest::collection::vec(leaf_op(), 0..4);
    let flat = (proptest::collection::vec(compare(), 0..3), ops(), ops()).prop_map(
        |(compares, success, failure)| Txn {
            compares,
            success,
            failure,
        },
    );
    flat.prop_recursive(2, 16, 3, |inner| {
        (
            proptest::collection::vec(compare(), 0..2),
            proptest::collection::vec(
                prop_oneof![3 => leaf_op(), 1 => inner.prop_map(TxnOp::Txn)],
                0..3,
            ),
        )
            .prop_map(|(compares, success)| Txn {
                compares,
                success,
                failure: Vec::new(),
            })
    })
}

/// What the model keeps of a live key.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ModelKv {
    value: Vec<u8>,
    lease: Option<i64>,
    create: u64,
    modified: u64,
    version: u64,
}

type Model = BTreeMap<Vec<u8>, ModelKv>;

/// The machine's live keys in the model's shape.
fn snapshot(sm: &StateMachine) -> Model {
    sm.kv()
        .list_prefix(b"")
        .into_iter()
        .map(|kv| {
            let m = ModelKv {
                value: kv.value.clone(),
                lease: kv.lease,
                create: kv.create_revision,
                modified: kv.mod_revision,
                version: kv.version,
            };
            (kv.key.clone(), m)
        })
        .collect()
}

/// etcd's compare rule, written again independently of the machine's.
fn model_holds(model: &Model, c: &Compare) -> bool {
    let keys: Vec<&ModelKv> = model
        .iter()
        .filter(|(k, _)| in_range(k, &c.key, &c.range_end))
        .map(|(_, v)| v)
        .collect();
    let one = |kv: Option<&ModelKv>| {
        let ordering = match (&c.target, kv) {
            (CompareTarget::Value(_), None) => return false,
            (CompareTarget::Value(want), Some(kv)) => kv.value.cmp(want),
            (CompareTarget::Version(want), kv) => (kv.map_or(0, |k| k.version) as i64).cmp(want),
            (CompareTarget::Create(want), kv) => (kv.map_or(0, |k| k.create) as i64).cmp(want),
            (CompareTarget::Mod(want), kv) => (kv.map_or(0, |k| k.modified) as i64).cmp(want),
            (CompareTarget::Lease(want), kv) => kv.and_then(|k| k.lease).unwrap_or(0).cmp(want),
        };
        match c.result {
            CompareResult::Equal => ordering.is_eq(),
            CompareResult::NotEqual => ordering.is_ne(),
            CompareResult::Greater => ordering.is_gt(),
            CompareResult::Less => ordering.is_lt(),
        }
    };
    if keys.is_empty() {
        one(None)
    } else {
        keys.into_iter().all(|kv| one(Some(kv)))
    }
}

/// Applies the taken branch of `txn` to the model at `revision`; `None`
/// where the machine must reject the whole Txn.
fn replay(model: &mut Model, revision: u64, compacted: u64, txn: &Txn) -> Option<()> {
    let succeeded = txn.compares.iter().all(|c| model_holds(model, c));
    let branch = if succeeded {
        &txn.success
    } else {
        &txn.failure
    };
    for op in branch {
        match op {
            TxnOp::Range(q) => {
                let at = if q.revision == 0 {
                    revision
                } else {
                    q.revision
                };
                if at < compacted || at > revision {
                    return None;
                }
            }
            TxnOp::Put(p) => {
                if p.lease == 9 {
                    return None;
                }
                let prev = model.get(&p.key).cloned();
                let value = if p.ignore_value {
                    prev.as_ref()?.value.clone()
                } else {
                    p.value.clone()
                };
                let kv = ModelKv {
                    value,
                    lease: (p.lease != 0).then_some(p.lease),
                    create: prev.as_ref().map_or(revision, |p| p.create),
                    modified: revision,
                    version: prev.as_ref().map_or(1, |p| p.version + 1),
                };
                model.insert(p.key.clone(), kv);
            }
            TxnOp::Delete(d) => model.retain(|k, _| !in_range(k, &d.key, &d.range_end)),
            TxnOp::Txn(nested) => replay(model, revision, compacted, nested)?,
        }
    }
    Some(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn txns_are_atomic_and_agree_with_a_map_model(txns in proptest::collection::vec(txn(), 1..25)) {
        let mut sm = StateMachine::new();
        let mut index = 1;
        sm.apply(index, &Command::new(0, Op::LeaseGrant { id: 1, ttl_secs: 5 }));
        for txn in txns {
            if txn.validate(MAX_TXN_OPS).is_err() {
                continue;
            }
            index += 1;
            let before = snapshot(&sm);
            let mut expected = before.clone();
            let model_says = replay(&mut expected, index, sm.kv().compacted_revision(), &txn);
            let outcome = sm.apply_with_events(index, &Command::new(0, Op::Txn { txn: txn.clone() }));
            prop_assert_eq!(sm.revision(), index);
            for event in &outcome.kv_events {
                prop_assert_eq!(event.revision(), index, "an event left the Txn's revision");
            }
            if let Err(broken) = sm.check_invariants() {
                return Err(TestCaseError::fail(broken));
            }
            match outcome.response {
                Response::Rejected(_) => {
                    prop_assert!(model_says.is_none(), "the machine rejected a Txn the model applies");
                    prop_assert!(outcome.kv_events.is_empty());
                    prop_assert_eq!(snapshot(&sm), before, "a rejected Txn changed keys");
                }
                Response::Txn(_) => {
                    prop_assert!(model_says.is_some(), "the machine applied a Txn the model rejects");
                    prop_assert_eq!(snapshot(&sm), expected);
                }
                other => prop_assert!(false, "unexpected response {:?}", other),
            }
        }
    }
}
