//! The servers this server has heard of, learnt through `Hello` exchanges.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::node::{NodeId, ServerNode};
use crate::peer::{Hello, Method};
use crate::registry::Registry;

pub struct Discovery {
    registry: Arc<Registry>,
    known: Mutex<BTreeMap<NodeId, ServerNode>>,
}

impl Discovery {
    pub fn new(registry: Arc<Registry>) -> Self {
        let mut known = BTreeMap::new();
        known.insert(registry.id(), registry.node().clone());
        Self {
            registry,
            known: Mutex::new(known),
        }
    }

    /// Every server heard of so far, this one included.
    pub fn known(&self) -> BTreeMap<NodeId, ServerNode> {
        self.known.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records the servers another one told us of.
    pub fn learn(&self, servers: &BTreeMap<NodeId, ServerNode>) {
        let own_id = self.registry.id();
        let own_addr = &self.registry.node().raft_addr;
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        for (id, node) in servers {
            // An old identity of this very server, still remembered elsewhere.
            if *id != own_id && node.raft_addr == *own_addr {
                continue;
            }
            // A server whose data was wiped comes back with a new id at the
            // same address: its old id must not count towards bootstrap_expect.
            known.retain(|other, n| other == id || n.raft_addr != node.raft_addr);
            known.insert(*id, node.clone());
        }
    }

    /// This server's own `Hello`.
    pub async fn introduce(&self) -> Hello {
        let initialized = self.registry.raft().is_initialized().await.unwrap_or(false);
        Hello {
            id: self.registry.id(),
            node: self.registry.node().clone(),
            known: self.known(),
            initialized,
            leader: self.registry.leader().map(|(id, _)| id),
        }
    }

    /// Whether the server at `node` answers a `Hello` within `timeout`.
    pub async fn answers(&self, node: &ServerNode, timeout: Duration) -> bool {
        let hello = self.introduce().await;
        self.registry
            .peers()
            .call::<Hello, Hello>(&node.raft_addr, Method::Hello, &hello, timeout)
            .await
            .is_ok()
    }

    /// Answers another server's `Hello` with ours, after learning what it knows.
    pub async fn greet(&self, hello: Hello) -> Hello {
        self.learn(&hello.known);
        self.learn(&BTreeMap::from([(hello.id, hello.node)]));
        self.introduce().await
    }
}
