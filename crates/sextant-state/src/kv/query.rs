//! etcd's Range: one read of a key range at one revision, with every option
//! etcd clients use (limit, sort, keys/count only, revision bounds).
//!
//! It lives in the store, not in the gRPC adapter, because a Txn evaluates
//! the very same read inside the state machine, at the Txn's revision.

use serde::{Deserialize, Serialize};

use super::{KeyValue, KvStore};
use crate::ApplyError;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SortOrder {
    /// Key order, unless a sort target other than the key is named (then ascending by it).
    #[default]
    None,
    Ascend,
    Descend,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SortTarget {
    #[default]
    Key,
    Version,
    Create,
    Mod,
    Value,
}

/// An etcd RangeRequest, without the consistency flag (which decides where
/// the read runs, not what it returns). Zero means "no bound" for every
/// numeric field, as on the wire.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct RangeQuery {
    pub key: Vec<u8>,
    /// See `KvStore::range` for the conventions of an empty, `"\0"` end.
    pub range_end: Vec<u8>,
    pub limit: u64,
    /// The revision to read at; 0 for the latest.
    pub revision: u64,
    pub sort_order: SortOrder,
    pub sort_target: SortTarget,
    pub keys_only: bool,
    pub count_only: bool,
    pub min_mod_revision: u64,
    pub max_mod_revision: u64,
    pub min_create_revision: u64,
    pub max_create_revision: u64,
}

/// What a Range found.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct RangeResult {
    /// Empty with `count_only`; values empty with `keys_only`.
    pub kvs: Vec<KeyValue>,
    /// More keys matched than `limit` let through.
    pub more: bool,
    /// Every live key in the range at the revision, before limit and filters.
    pub count: u64,
}

impl RangeQuery {
    fn admits(&self, kv: &KeyValue) -> bool {
        let above = |value: u64, min: u64| min == 0 || value >= min;
        let below = |value: u64, max: u64| max == 0 || value <= max;
        above(kv.mod_revision, self.min_mod_revision)
            && below(kv.mod_revision, self.max_mod_revision)
            && above(kv.create_revision, self.min_create_revision)
            && below(kv.create_revision, self.max_create_revision)
    }

    fn sort(&self, kvs: &mut [&KeyValue]) {
        let descend = self.sort_order == SortOrder::Descend;
        if self.sort_target == SortTarget::Key {
            // The store yields key order already.
            if descend {
                kvs.reverse();
            }
            return;
        }
        // Stable, so keys with equal targets stay in key order.
        kvs.sort_by(|a, b| {
            let ordering = match self.sort_target {
                SortTarget::Key => a.key.cmp(&b.key),
                SortTarget::Version => a.version.cmp(&b.version),
                SortTarget::Create => a.create_revision.cmp(&b.create_revision),
                SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
                SortTarget::Value => a.value.cmp(&b.value),
            };
            if descend {
                ordering.reverse()
            } else {
                ordering
            }
        });
    }
}

impl KvStore {
    /// Runs an etcd Range. Fails only for a compacted or future revision.
    pub fn query(&self, query: &RangeQuery) -> Result<RangeResult, ApplyError> {
        let revision = (query.revision > 0).then_some(query.revision);
        let all = self.range(&query.key, &query.range_end, revision)?;
        let count = all.len() as u64;
        if query.count_only {
            return Ok(RangeResult {
                kvs: Vec::new(),
                more: false,
                count,
            });
        }
        let mut kvs: Vec<&KeyValue> = all.into_iter().filter(|kv| query.admits(kv)).collect();
        query.sort(&mut kvs);
        let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
        let more = query.limit > 0 && kvs.len() > limit;
        if more {
            kvs.truncate(limit);
        }
        let kvs = kvs
            .into_iter()
            .map(|kv| {
                let mut kv = kv.clone();
                if query.keys_only {
                    kv.value.clear();
                }
                kv
            })
            .collect();
        Ok(RangeResult { kvs, more, count })
    }
}
