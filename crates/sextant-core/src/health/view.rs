//! Which voters answer: every server greets every voter of the Raft
//! configuration once per `peer_probe_interval`, and counts a voter dead
//! after `peer_dead_after` greetings in a row went unanswered.
//!
//! The view feeds check ownership (on every server) and the node-level
//! `serfHealth` checks (on the leader). It starts optimistic — every voter
//! alive — so that a server that just started neither grabs every check nor
//! marks its peers critical before it has heard from them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::sync::watch;

use super::ownership::Ownership;
use super::HealthConfig;
use crate::cluster::discovery::Discovery;
use crate::node::{NodeId, ServerNode};
use crate::peer::Hello;
use crate::peer::{Method, PeerClients};
use crate::registry::Registry;

/// How soon the view is looked at again while there is no configuration yet.
const UNFORMED_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

/// One server's picture of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterView {
    pub me: NodeId,
    /// The voters of the Raft configuration (this server among them once it
    /// is in one).
    pub voters: BTreeMap<NodeId, ServerNode>,
    /// The voters that answered lately, this server always included.
    pub alive: BTreeSet<NodeId>,
}

impl ClusterView {
    pub fn new(me: NodeId) -> Self {
        Self {
            me,
            voters: BTreeMap::new(),
            alive: BTreeSet::from([me]),
        }
    }

    pub fn ownership(&self) -> Ownership {
        Ownership::new(
            self.me,
            self.alive
                .iter()
                .copied()
                .filter(|id| self.voters.contains_key(id)),
        )
    }

    pub fn node(&self, id: NodeId) -> Option<&ServerNode> {
        self.voters.get(&id)
    }
}

/// Greets the voters forever, publishing the view whenever it changes.
pub async fn run(
    registry: Arc<Registry>,
    discovery: Arc<Discovery>,
    peers: PeerClients,
    config: HealthConfig,
    view_tx: watch::Sender<ClusterView>,
) {
    let me = registry.id();
    let mut misses: BTreeMap<NodeId, u32> = BTreeMap::new();
    let mut first = true;
    loop {
        if !first {
            // Until this server is in a configuration, look again soon: the
            // node checks and ownership wait for the first real view.
            let known = !view_tx.borrow().voters.is_empty();
            tokio::time::sleep(if known {
                config.peer_probe_interval
            } else {
                UNFORMED_RETRY
            })
            .await;
        }
        first = false;
        let voters: BTreeMap<NodeId, ServerNode> = {
            let metrics = registry.metrics();
            let membership = metrics.membership_config.membership();
            let voter_ids: BTreeSet<NodeId> = membership.voter_ids().collect();
            membership
                .nodes()
                .filter(|(id, _)| voter_ids.contains(id))
                .map(|(id, node)| (*id, node.clone()))
                .collect()
        };
        let hello = discovery.introduce().await;
        let greetings = voters
            .iter()
            .filter(|(id, _)| **id != me)
            .map(|(id, node)| {
                let peers = peers.clone();
                let hello = hello.clone();
                let timeout = config.peer_probe_timeout;
                async move {
                    let answered = peers
                        .call::<Hello, Hello>(&node.raft_addr, Method::Hello, &hello, timeout)
                        .await
                        .is_ok();
                    (*id, answered)
                }
            });
        for (id, answered) in futures::future::join_all(greetings).await {
            let count = misses.entry(id).or_insert(0);
            *count = if answered { 0 } else { count.saturating_add(1) };
        }
        misses.retain(|id, _| voters.contains_key(id));
        let alive: BTreeSet<NodeId> = voters
            .keys()
            .copied()
            .filter(|id| *id == me || misses.get(id).copied().unwrap_or(0) < config.peer_dead_after)
            .chain([me])
            .collect();
        let view = ClusterView { me, voters, alive };
        view_tx.send_if_modified(|current| {
            if *current == view {
                return false;
            }
            let gone: Vec<&NodeId> = current.alive.difference(&view.alive).collect();
            let back: Vec<&NodeId> = view.alive.difference(&current.alive).collect();
            if !gone.is_empty() || !back.is_empty() {
                tracing::info!(?gone, ?back, "servers answering greetings changed");
            }
            *current = view;
            true
        });
    }
}
