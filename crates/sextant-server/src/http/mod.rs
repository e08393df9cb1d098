//! The HTTP frontend: Consul's `/v1/*` API and Sextant's native endpoints.
//!
//! Every handler parses and validates its input, then goes through the
//! [`Registry`] facade. Errors become HTTP statuses in one place
//! ([`error::HttpError`]).

mod agent;
mod blocking;
mod error;
pub mod go_duration;
mod kv;
mod operator;
mod params;
mod raft_state;
mod status;

use std::sync::Arc;

use axum::routing::{delete, get};
use axum::Router;

use crate::cluster::discovery::Discovery;
use crate::raft::network::PeerClients;
use crate::registry::Registry;

/// What every HTTP handler can reach.
#[derive(Clone)]
pub struct HttpState {
    pub registry: Arc<Registry>,
    pub discovery: Arc<Discovery>,
    pub peers: PeerClients,
    /// Largest KV value accepted (Consul: 512 KiB).
    pub max_value_bytes: usize,
}

pub fn router(state: HttpState) -> Router {
    // Bodies are buffered in memory: refuse anything larger than the largest
    // value before reading it (413), instead of after.
    let body_limit = axum::extract::DefaultBodyLimit::max(state.max_value_bytes);
    Router::new()
        .route(
            "/v1/kv/",
            get(kv::get_root).put(kv::put_root).delete(kv::delete_root),
        )
        .route(
            "/v1/kv/{*key}",
            get(kv::get).put(kv::put).delete(kv::delete),
        )
        .route("/v1/status/leader", get(status::leader))
        .route("/v1/status/peers", get(status::peers))
        .route(
            "/v1/operator/raft/configuration",
            get(operator::configuration),
        )
        .route("/v1/operator/raft/peer", delete(operator::remove_peer))
        .route("/v1/agent/self", get(agent::agent_self))
        .route("/v1/agent/members", get(agent::members))
        .route("/v1/sextant/raft", get(raft_state::raft_state))
        .layer(body_limit)
        // A bug in one handler answers 500 to that request instead of
        // dropping the connection; the server itself keeps running.
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .with_state(state)
}
