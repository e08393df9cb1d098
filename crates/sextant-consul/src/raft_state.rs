//! `GET /v1/sextant/raft`: this server's view of Raft, for operators and tests.

use axum::extract::State;
use axum::Json;
use openraft::ServerState;
use serde::Serialize;

use super::HttpState;
use crate::raft::NodeId;

#[derive(Serialize)]
pub struct RaftState {
    node_id: NodeId,
    name: String,
    state: &'static str,
    term: u64,
    leader_id: Option<NodeId>,
    last_log_index: Option<u64>,
    last_applied: Option<u64>,
    snapshot_index: Option<u64>,
    purged_index: Option<u64>,
    voters: Vec<NodeId>,
    learners: Vec<NodeId>,
}

pub async fn raft_state(State(http): State<HttpState>) -> Json<RaftState> {
    let metrics = http.registry.metrics();
    let membership = metrics.membership_config.membership();
    let state = match metrics.state {
        ServerState::Leader => "Leader",
        ServerState::Follower => "Follower",
        ServerState::Candidate => "Candidate",
        ServerState::Learner => "Learner",
        ServerState::Shutdown => "Shutdown",
    };
    Json(RaftState {
        node_id: http.registry.id(),
        name: http.registry.node().name.clone(),
        state,
        term: metrics.current_term,
        leader_id: metrics.current_leader,
        last_log_index: metrics.last_log_index,
        last_applied: metrics.last_applied.map(|l| l.index),
        snapshot_index: metrics.snapshot.map(|l| l.index),
        purged_index: metrics.purged.map(|l| l.index),
        voters: membership.voter_ids().collect(),
        learners: membership.learner_ids().collect(),
    })
}
