//! etcd's transactions: compares, then one branch of reads and writes, all
//! applied atomically at one revision as a single Raft command.
//!
//! etcd's plain Put and DeleteRange are proposed as a Txn without compares, so
//! that every etcd write shares one apply path and one response shape.

use serde::{Deserialize, Serialize};

use crate::kv::{KeyValue, KvStore, RangeQuery, RangeResult};
use crate::lease::LeaseId;

/// etcd's `--max-txn-ops` default: the most compares, or ops in one branch.
pub const MAX_TXN_OPS: usize = 128;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareResult {
    Equal,
    Greater,
    Less,
    NotEqual,
}

/// What a compare looks at, with the operand it is compared against.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum CompareTarget {
    Version(i64),
    Create(i64),
    Mod(i64),
    Value(Vec<u8>),
    /// The key's lease id, 0 for none.
    Lease(i64),
}

/// One condition of a Txn, over one key or (with `range_end`) every key of a range.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    pub result: CompareResult,
    pub target: CompareTarget,
}

/// etcd's PutRequest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct PutOp {
    #[serde(with = "crate::byte_buf")]
    pub key: Vec<u8>,
    #[serde(with = "crate::byte_buf")]
    pub value: Vec<u8>,
    /// 0 for none.
    pub lease: LeaseId,
    pub prev_kv: bool,
    /// Keep the key's current value (the key must exist).
    pub ignore_value: bool,
    /// Keep the key's current lease.
    pub ignore_lease: bool,
}

/// etcd's DeleteRangeRequest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct DeleteOp {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    pub prev_kv: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum TxnOp {
    Range(RangeQuery),
    Put(PutOp),
    Delete(DeleteOp),
    Txn(Txn),
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub success: Vec<TxnOp>,
    pub failure: Vec<TxnOp>,
}

/// What one op of the taken branch yielded.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum TxnOpResult {
    Range(RangeResult),
    Put {
        /// The key before the put, when asked for and it existed.
        prev: Option<KeyValue>,
    },
    Delete {
        deleted: u64,
        /// The deleted keys, when asked for.
        prev_kvs: Vec<KeyValue>,
    },
    Txn(TxnResult),
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct TxnResult {
    /// Whether every compare held (and so the success branch ran).
    pub succeeded: bool,
    pub responses: Vec<TxnOpResult>,
}

/// Why a Txn is refused before it is proposed, with etcd's reasons.
#[derive(thiserror::Error, Clone, Debug, PartialEq, Eq)]
pub enum TxnInvalid {
    #[error("too many operations in txn request")]
    TooManyOps,
    #[error("duplicate key given in txn request")]
    DuplicateKey,
}

/// The keys one branch writes: single keys put, and ranges deleted.
#[derive(Default)]
struct Writes {
    puts: Vec<Vec<u8>>,
    deletes: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Whether `key` falls in the etcd range `[start, end)` (conventions as in `KvStore::range`).
pub fn in_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
    match end {
        [] => key == start,
        [0] => key >= start,
        _ => key >= start && key < end,
    }
}

impl Txn {
    /// Checks what etcd checks before proposing: at most `max_ops` compares
    /// and ops per branch (nested Txns too), and no key written twice in a
    /// branch, counting nested Txns' writes as their parent's.
    pub fn validate(&self, max_ops: usize) -> Result<(), TxnInvalid> {
        self.writes(max_ops).map(|_| ())
    }

    /// Every write either branch of this Txn may make (nested Txns included),
    /// after checking each branch on its own.
    fn writes(&self, max_ops: usize) -> Result<Writes, TxnInvalid> {
        if self.compares.len() > max_ops
            || self.success.len() > max_ops
            || self.failure.len() > max_ops
        {
            return Err(TxnInvalid::TooManyOps);
        }
        let mut all = Writes::default();
        for branch in [&self.success, &self.failure] {
            let writes = branch_writes(branch, max_ops)?;
            all.puts.extend(writes.puts);
            all.deletes.extend(writes.deletes);
        }
        Ok(all)
    }
}

fn branch_writes(ops: &[TxnOp], max_ops: usize) -> Result<Writes, TxnInvalid> {
    let mut writes = Writes::default();
    for op in ops {
        match op {
            TxnOp::Range(_) => {}
            TxnOp::Put(put) => {
                if writes.puts.contains(&put.key) {
                    return Err(TxnInvalid::DuplicateKey);
                }
                writes.puts.push(put.key.clone());
            }
            TxnOp::Delete(delete) => {
                writes
                    .deletes
                    .push((delete.key.clone(), delete.range_end.clone()));
            }
            TxnOp::Txn(nested) => {
                let inner = nested.writes(max_ops)?;
                let mut seen = std::collections::BTreeSet::new();
                for key in inner.puts {
                    // The same key in both nested branches is fine: only one runs.
                    if seen.insert(key.clone()) {
                        if writes.puts.contains(&key) {
                            return Err(TxnInvalid::DuplicateKey);
                        }
                        writes.puts.push(key);
                    }
                }
                writes.deletes.extend(inner.deletes);
            }
        }
    }
    let overlaps = writes.puts.iter().any(|key| {
        writes
            .deletes
            .iter()
            .any(|(start, end)| in_range(key, start, end))
    });
    if overlaps {
        return Err(TxnInvalid::DuplicateKey);
    }
    Ok(writes)
}

impl Compare {
    /// Whether the compare holds for one key's state (`None`: absent).
    fn holds_for(&self, kv: Option<&KeyValue>) -> bool {
        let ordering = match (&self.target, kv) {
            // A missing key has no value to compare: etcd fails such a compare.
            (CompareTarget::Value(_), None) => return false,
            (CompareTarget::Value(want), Some(kv)) => kv.value.as_slice().cmp(want.as_slice()),
            (CompareTarget::Version(want), kv) => (kv.map_or(0, |kv| kv.version) as i64).cmp(want),
            (CompareTarget::Create(want), kv) => {
                (kv.map_or(0, |kv| kv.create_revision) as i64).cmp(want)
            }
            (CompareTarget::Mod(want), kv) => (kv.map_or(0, |kv| kv.mod_revision) as i64).cmp(want),
            (CompareTarget::Lease(want), kv) => kv.and_then(|kv| kv.lease).unwrap_or(0).cmp(want),
        };
        match self.result {
            CompareResult::Equal => ordering.is_eq(),
            CompareResult::NotEqual => ordering.is_ne(),
            CompareResult::Greater => ordering.is_gt(),
            CompareResult::Less => ordering.is_lt(),
        }
    }

    /// Whether the compare holds in `store`'s current state: for a range,
    /// every live key must satisfy it; an empty range is judged like one
    /// absent key.
    pub fn holds(&self, store: &KvStore) -> bool {
        let kvs = store
            .range(&self.key, &self.range_end, None)
            .unwrap_or_default();
        if kvs.is_empty() {
            return self.holds_for(None);
        }
        kvs.into_iter().all(|kv| self.holds_for(Some(kv)))
    }
}
