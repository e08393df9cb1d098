//! `/v1/status/leader` and `/v1/status/peers`: who leads, and who votes.

use axum::extract::State;
use axum::Json;

use super::HttpState;

/// The leader's raft address as a JSON string; `""` while there is none.
pub async fn leader(State(http): State<HttpState>) -> Json<String> {
    Json(
        http.registry
            .leader()
            .map(|(_, node)| node.raft_addr)
            .unwrap_or_default(),
    )
}

/// The raft addresses of the voting servers.
pub async fn peers(State(http): State<HttpState>) -> Json<Vec<String>> {
    let metrics = http.registry.metrics();
    let membership = metrics.membership_config.membership();
    let voters = membership
        .voter_ids()
        .filter_map(|id| membership.get_node(&id))
        .map(|node| node.raft_addr.clone())
        .collect();
    Json(voters)
}
