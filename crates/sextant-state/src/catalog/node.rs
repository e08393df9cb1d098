//! A node: a machine that hosts service instances and node-level checks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Stamped;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Node {
    pub name: String,
    pub address: String,
    pub meta: BTreeMap<String, String>,
    /// Set by the state machine; whatever a command carries here is ignored.
    pub create_index: u64,
    /// Set by the state machine; moves only when the node actually changes.
    pub modify_index: u64,
}

impl Stamped for Node {
    fn stamps(&self) -> (u64, u64) {
        (self.create_index, self.modify_index)
    }

    fn set_stamps(&mut self, create_index: u64, modify_index: u64) {
        self.create_index = create_index;
        self.modify_index = modify_index;
    }
}
