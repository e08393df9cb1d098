//! Sextant's Raft: the type configuration, the state machine adapter, the
//! Raft network between servers.

pub mod batcher;
pub mod config;
pub mod network;
pub mod observer;
pub mod quorum_ack;
pub mod read_rounds;
pub mod snapshot_file;
pub mod state_machine;

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::node::{NodeId, ServerNode};
use crate::peer::RemoteError;

/// What one Raft entry carries: the commands of every write proposed while
/// the entry before it was in flight, applied in order.
///
/// openraft 0.9 appends one entry and waits for its fsync before it takes the
/// next client write, so a leader writes one entry per fsync; putting all the
/// commands that queued up meanwhile into one entry is what lets concurrent
/// writes share a sync. Each command still gets its own revision.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Proposal {
    pub commands: Vec<sextant_state::Command>,
}

/// What applying a [`Proposal`] yielded: per command, in order, the revision
/// it was applied at and its response. Empty for blank and membership entries.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Answers {
    pub commands: Vec<(u64, sextant_state::Response)>,
}

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Proposal,
        R = Answers,
        NodeId = NodeId,
        Node = ServerNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<NodeId, ServerNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, ServerNode>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type RaftMetrics = openraft::RaftMetrics<NodeId, ServerNode>;

/// The server `raft` believes leads, with its addresses.
pub fn leader_of(raft: &Raft) -> Option<(NodeId, ServerNode)> {
    let metrics = raft.metrics();
    let metrics = metrics.borrow();
    let id = metrics.current_leader?;
    let node = metrics
        .membership_config
        .membership()
        .get_node(&id)?
        .clone();
    Some((id, node))
}

impl From<openraft::error::ForwardToLeader<NodeId, ServerNode>> for RemoteError {
    fn from(forward: openraft::error::ForwardToLeader<NodeId, ServerNode>) -> Self {
        RemoteError::NotLeader {
            leader: forward.leader_id.zip(forward.leader_node),
        }
    }
}
