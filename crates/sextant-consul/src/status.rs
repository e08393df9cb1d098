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
    let voters = http
        .registry
        .status()
        .membership
        .voters()
        .into_values()
        .map(|node| node.raft_addr)
        .collect();
    Json(voters)
}
