//! What a write did to one key, in the shape etcd's watch protocol carries.
//!
//! Every write in the store emits these. The state machine uses them to keep
//! its lease and session indexes, and hands them to the server so watchers and
//! etcd's `prev_kv` answers need no second look at the store.

use serde::{Deserialize, Serialize};

use super::KeyValue;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvEventKind {
    Put,
    Delete,
}

/// One change to one key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct KvEvent {
    pub kind: KvEventKind,
    /// For a put, the new version. For a delete, only `key` and `mod_revision`
    /// (the deletion revision) are set, as etcd sends them.
    pub kv: KeyValue,
    /// The key's version just before this change, if it was live (and, when
    /// replaying history, not compacted away).
    pub prev: Option<KeyValue>,
}

impl KvEvent {
    pub(crate) fn put(kv: KeyValue, prev: Option<KeyValue>) -> Self {
        Self {
            kind: KvEventKind::Put,
            kv,
            prev,
        }
    }

    pub(crate) fn delete(key: Vec<u8>, revision: u64, prev: Option<KeyValue>) -> Self {
        Self {
            kind: KvEventKind::Delete,
            kv: KeyValue {
                key,
                mod_revision: revision,
                ..KeyValue::default()
            },
            prev,
        }
    }

    /// The revision at which the change happened.
    pub fn revision(&self) -> u64 {
        self.kv.mod_revision
    }
}
