//! What a Consul KV write may require of a key, and do to its lock.

use serde::{Deserialize, Serialize};

use crate::session::SessionId;

/// What a Consul KV write may require of the key's current state.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KvCondition {
    /// Write unconditionally.
    #[default]
    None,
    /// Consul's `?cas=N`: 0 means "only if the key does not exist", otherwise
    /// "only if the key's ModifyIndex is N".
    ModifyIndex(u64),
}

/// What a Consul KV write does to the key's lock.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub enum LockAction {
    #[default]
    None,
    /// `?acquire=SESSION`: take the lock if it is free or already held by SESSION.
    Acquire(SessionId),
    /// `?release=SESSION`: give the lock up if SESSION holds it.
    Release(SessionId),
}
