//! A service instance as registered on one node.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Stamped;

/// How much traffic an instance should get by health, for DNS SRV answers and
/// balancing clients.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Weights {
    pub passing: u32,
    pub warning: u32,
}

impl Default for Weights {
    /// Consul's default: every instance weighs the same whatever its health.
    fn default() -> Self {
        Self {
            passing: 1,
            warning: 1,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Service {
    /// Unique on its node; Consul defaults it to the name.
    pub id: String,
    pub name: String,
    /// Empty means "the node's address".
    pub address: String,
    pub port: u16,
    pub tags: Vec<String>,
    pub meta: BTreeMap<String, String>,
    pub weights: Weights,
    pub enable_tag_override: bool,
    /// Set by the state machine; whatever a command carries here is ignored.
    pub create_index: u64,
    /// Set by the state machine; moves only when the instance actually changes.
    pub modify_index: u64,
}

impl Stamped for Service {
    fn stamps(&self) -> (u64, u64) {
        (self.create_index, self.modify_index)
    }

    fn set_stamps(&mut self, create_index: u64, modify_index: u64) {
        self.create_index = create_index;
        self.modify_index = modify_index;
    }
}
