//! This server's view of Raft as frontends see it: who leads, which term,
//! how far the log and the applied state have come, and who is a member.
//! A copy of openraft's metrics in Sextant's own types, so that no frontend
//! depends on openraft.

use std::collections::{BTreeMap, BTreeSet};

use openraft::ServerState;

use crate::node::{NodeId, ServerNode};
use crate::raft::RaftMetrics;

/// The part this server plays in Raft right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RaftRole {
    Leader,
    Follower,
    Candidate,
    Learner,
    Shutdown,
}

impl RaftRole {
    /// The name operators know it by (Consul's `Stats.raft.state`).
    pub fn as_str(self) -> &'static str {
        match self {
            RaftRole::Leader => "Leader",
            RaftRole::Follower => "Follower",
            RaftRole::Candidate => "Candidate",
            RaftRole::Learner => "Learner",
            RaftRole::Shutdown => "Shutdown",
        }
    }
}

impl From<ServerState> for RaftRole {
    fn from(state: ServerState) -> Self {
        match state {
            ServerState::Leader => RaftRole::Leader,
            ServerState::Follower => RaftRole::Follower,
            ServerState::Candidate => RaftRole::Candidate,
            ServerState::Learner => RaftRole::Learner,
            ServerState::Shutdown => RaftRole::Shutdown,
        }
    }
}

/// The servers of the Raft configuration this server has applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    nodes: BTreeMap<NodeId, ServerNode>,
    voters: BTreeSet<NodeId>,
    /// The log index of the entry that made this configuration.
    log_index: Option<u64>,
}

impl Membership {
    /// Every member, voter or learner, by id.
    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, &ServerNode)> {
        self.nodes.iter().map(|(id, node)| (*id, node))
    }

    pub fn node(&self, id: NodeId) -> Option<&ServerNode> {
        self.nodes.get(&id)
    }

    pub fn voter_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().copied()
    }

    pub fn learner_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.nodes
            .keys()
            .copied()
            .filter(|id| !self.voters.contains(id))
    }

    /// The log index of the entry that made this configuration (`None` for
    /// one that no entry made yet).
    pub fn log_index(&self) -> Option<u64> {
        self.log_index
    }

    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }

    /// The voters with their addresses.
    pub fn voters(&self) -> BTreeMap<NodeId, ServerNode> {
        self.nodes
            .iter()
            .filter(|(id, _)| self.voters.contains(id))
            .map(|(id, node)| (*id, node.clone()))
            .collect()
    }
}

/// A snapshot of this server's Raft state.
#[derive(Clone, Debug)]
pub struct RaftStatus {
    pub role: RaftRole,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub last_log_index: Option<u64>,
    pub last_applied_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub purged_index: Option<u64>,
    pub membership: Membership,
}

impl From<&RaftMetrics> for RaftStatus {
    fn from(metrics: &RaftMetrics) -> Self {
        let stored = &metrics.membership_config;
        let membership = stored.membership();
        RaftStatus {
            role: metrics.state.into(),
            term: metrics.current_term,
            leader: metrics.current_leader,
            last_log_index: metrics.last_log_index,
            last_applied_index: metrics.last_applied.map(|id| id.index),
            snapshot_index: metrics.snapshot.map(|id| id.index),
            purged_index: metrics.purged.map(|id| id.index),
            membership: Membership {
                nodes: membership
                    .nodes()
                    .map(|(id, node)| (*id, node.clone()))
                    .collect(),
                voters: membership.voter_ids().collect(),
                log_index: stored.log_id().map(|id| id.index),
            },
        }
    }
}
