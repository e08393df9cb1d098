//! The messages of the internal API beyond Raft's own, and their framing.
//!
//! Every message travels as bincode inside a protobuf `Frame` (see
//! `sextant-proto/proto/raft.proto` for why).

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sextant_proto::internal::Frame;
use sextant_state::catalog::CheckStatus;
use sextant_state::{Command, Op, Response};

use crate::node::{NodeId, ServerNode};

pub fn encode<T: Serialize>(value: &T) -> Result<Frame, tonic::Status> {
    bincode::serialize(value)
        .map(|data| Frame { data })
        .map_err(|e| tonic::Status::internal(format!("cannot encode message: {e}")))
}

pub fn decode<T: DeserializeOwned>(frame: &Frame) -> Result<T, tonic::Status> {
    bincode::deserialize(&frame.data)
        .map_err(|e| tonic::Status::invalid_argument(format!("cannot decode message: {e}")))
}

/// Servers introduce themselves to the addresses given with `--join`, and pass
/// on every server they have heard of, so each learns of all the others.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Hello {
    pub id: NodeId,
    pub node: ServerNode,
    /// Every server this one knows of, itself included.
    pub known: BTreeMap<NodeId, ServerNode>,
    /// Whether this server is already part of a formed cluster.
    pub initialized: bool,
    /// The leader this server follows, if it knows one.
    pub leader: Option<NodeId>,
}

/// A server asks to be added to the cluster (as a learner, then a voter).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct JoinRequest {
    pub id: NodeId,
    pub node: ServerNode,
}

/// A server asks to be removed from the cluster.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct LeaveRequest {
    pub id: NodeId,
}

/// A write forwarded from a follower to the leader.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ForwardRequest {
    pub command: Command,
}

/// Where a write landed and what applying it yielded.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct WriteOutcome {
    /// The revision the write was applied at. An entry may carry several
    /// writes, each at its own revision, so this is not the entry's log index.
    pub revision: u64,
    pub response: Response,
}

/// How strongly the leader must confirm its read index.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadIndexRequest {
    /// Confirm leadership with a quorum first (linearizable).
    Quorum,
    /// The leader's applied index as it stands (Consul's default consistency).
    Leader,
}

/// Why the leader could not serve a forwarded request; carried back to the follower.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        leader: Option<(NodeId, ServerNode)>,
    },
    #[error("membership change failed: {0}")]
    Membership(String),
    /// A membership change is still being committed; retry after it.
    #[error("busy: {0}")]
    Busy(String),
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The write was handed to Raft, but its outcome is not known.
    #[error("the outcome of the write is unknown: {0}")]
    Unknown(String),
}

/// A TTL check's update, for the server that runs the check.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct TtlUpdateRequest {
    pub node: String,
    pub check_id: String,
    pub status: CheckStatus,
    pub output: String,
    /// The revision the passing server had applied. The owner waits until it
    /// has applied that much too, so a check registered through one server
    /// can be updated through it at once even when another server owns the
    /// check (and has not applied it yet).
    pub seen_revision: u64,
}

/// The owner's verdict on a TTL update.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum TtlUpdateAnswer {
    /// Taken; `Some(revision)` when the status changed at that revision.
    Taken {
        revision: Option<u64>,
    },
    UnknownCheck,
    NotTtl,
    /// Not taken, for the reason given (no leader, no quorum, shutting down).
    Refused {
        reason: String,
    },
}

/// A write the health scheduler of server `from` proposes about the check
/// `check_id` on `node`, for the leader to propose if `from` runs that
/// check in the leader's view.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct HealthWriteRequest {
    pub from: NodeId,
    pub node: String,
    pub check_id: String,
    pub op: Op,
}

/// Proposed and applied, or why not.
pub type HealthWriteResponse = Result<(), String>;

/// A session's renewal, for the leader.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct RenewSessionRequest {
    pub id: String,
    pub ttl_ms: u64,
}

/// Whether the receiver took the renewal (it does only while it leads).
pub type RenewSessionResponse = bool;

pub type ForwardResponse = Result<WriteOutcome, RemoteError>;
pub type ReadIndexResponse = Result<u64, RemoteError>;
pub type MembershipResponse = Result<(), RemoteError>;
