//! `GET /v1/sextant/raft`: this server's view of Raft, for operators and tests.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::HttpState;
use sextant_core::NodeId;

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
    let status = http.registry.status();
    let membership = &status.membership;
    Json(RaftState {
        node_id: http.registry.id(),
        name: http.registry.node().name.clone(),
        state: status.role.as_str(),
        term: status.term,
        leader_id: status.leader,
        last_log_index: status.last_log_index,
        last_applied: status.last_applied_index,
        snapshot_index: status.snapshot_index,
        purged_index: status.purged_index,
        voters: membership.voter_ids().collect(),
        learners: membership.learner_ids().collect(),
    })
}
