//! `/v1/operator/raft/*`: the Raft configuration, and removing a server from it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use super::error::HttpError;
use super::params::Params;
use super::HttpState;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RaftServer {
    #[serde(rename = "ID")]
    id: String,
    node: String,
    address: String,
    leader: bool,
    voter: bool,
    protocol_version: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RaftConfiguration {
    servers: Vec<RaftServer>,
    index: u64,
}

pub async fn configuration(State(http): State<HttpState>) -> Json<RaftConfiguration> {
    let status = http.registry.status();
    let membership = &status.membership;
    let servers = membership
        .nodes()
        .map(|(id, node)| RaftServer {
            id: id.to_string(),
            node: node.name.clone(),
            address: node.raft_addr.clone(),
            leader: status.leader == Some(id),
            voter: membership.is_voter(id),
            protocol_version: "3".into(),
        })
        .collect();
    Json(RaftConfiguration {
        servers,
        // Consul's indexes are never 0; the bootstrap configuration sits at 0.
        index: membership.log_index().unwrap_or(0).max(1),
    })
}

/// `DELETE /v1/operator/raft/peer?id=ID` or `?address=RAFT_ADDR`.
pub async fn remove_peer(
    State(http): State<HttpState>,
    params: Params,
) -> Result<StatusCode, HttpError> {
    let membership = http.registry.status().membership;
    let id = match (params.text("id"), params.text("address")) {
        (Some(id), _) => id
            .parse()
            .map_err(|_| HttpError::bad_request(format!("Invalid server id {id:?}")))?,
        (None, Some(address)) => membership
            .nodes()
            .find(|(_, node)| node.raft_addr == address)
            .map(|(id, _)| id)
            .ok_or_else(|| HttpError::NotFound(format!("address {address:?} was not found in the Raft configuration")))?,
        (None, None) => return Err(HttpError::bad_request("Must specify either ?id with the server's ID or ?address with IP:port of peer to remove")),
    };
    if membership.node(id).is_none() {
        return Err(HttpError::NotFound(format!(
            "id {id:?} was not found in the Raft configuration"
        )));
    }
    http.registry.remove_server(id).await?;
    Ok(StatusCode::OK)
}
