//! Who a server is: its Raft node id and the addresses of its listeners.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A server's Raft identity: random at first start, then kept in the data directory.
pub type NodeId = u64;

/// What every server knows about another: enough to reach each of its listeners.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerNode {
    pub name: String,
    pub raft_addr: String,
    pub http_addr: String,
    pub grpc_addr: String,
}

impl fmt::Display for ServerNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.raft_addr)
    }
}
