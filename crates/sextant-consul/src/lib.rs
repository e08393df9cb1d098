//! The HTTP frontend: Consul's `/v1/*` API and Sextant's native endpoints.
//!
//! Every handler parses and validates its input, then goes through the
//! [`Registry`] facade. Errors become HTTP statuses in one place
//! ([`error::HttpError`]).

mod agent;
mod agent_check;
mod agent_service;
mod apply;
mod blocking;
mod catalog;
pub mod consul_json;
mod error;
pub mod filter;
/// Fuzz target bodies, shared by `fuzz/` and the seeded tests; not API.
#[doc(hidden)]
pub mod fuzzing;
pub mod go_duration;
mod health;
mod kv;
mod lookup;
pub(crate) mod metrics;
mod operator;
mod owners;
mod params;
mod raft_state;
pub mod registration;
mod render;
mod service_query;
// Reached by the fuzz facade (`crate::fuzzing`) for its body decoder.
pub(crate) mod session;
pub mod snapshot;
mod status;
mod ui;

use std::sync::Arc;

use axum::routing::{delete, get, put};
use axum::Router;

use sextant_core::cluster::discovery::Discovery;
use sextant_core::registry::Registry;

/// What every HTTP handler can reach.
#[derive(Clone)]
pub struct HttpState {
    pub registry: Arc<Registry>,
    pub discovery: Arc<Discovery>,
    /// Largest KV value accepted (Consul: 512 KiB).
    pub max_value_bytes: usize,
    /// Check ownership, TTL updates and session renewals.
    pub health: Arc<sextant_core::health::Health>,
    /// Rendered answers shared by identical service queries.
    pub shared: Arc<service_query::SharedEvaluations>,
}

/// Consul's registration, health, catalog and session endpoints.
fn registry_routes() -> Router<HttpState> {
    Router::new()
        .route("/v1/agent/service/register", put(agent_service::register))
        .route(
            "/v1/agent/service/deregister/{id}",
            put(agent_service::deregister),
        )
        .route("/v1/agent/services", get(agent_service::list))
        .route("/v1/agent/service/{id}", get(agent_service::get))
        .route(
            "/v1/agent/health/service/name/{name}",
            get(agent_service::health_by_name),
        )
        .route(
            "/v1/agent/health/service/id/{id}",
            get(agent_service::health_by_id),
        )
        .route("/v1/agent/check/register", put(agent_check::register))
        .route(
            "/v1/agent/check/deregister/{id}",
            put(agent_check::deregister),
        )
        .route("/v1/agent/checks", get(agent_check::list))
        .route("/v1/agent/check/pass/{id}", put(agent_check::pass))
        .route("/v1/agent/check/warn/{id}", put(agent_check::warn))
        .route("/v1/agent/check/fail/{id}", put(agent_check::fail))
        .route("/v1/agent/check/update/{id}", put(agent_check::update))
        .route("/v1/catalog/services", get(catalog::services))
        .route("/v1/catalog/service/{name}", get(catalog::service))
        .route("/v1/catalog/nodes", get(catalog::nodes))
        .route("/v1/catalog/node/{node}", get(catalog::node))
        .route("/v1/catalog/datacenters", get(catalog::datacenters))
        .route("/v1/catalog/register", put(catalog::register))
        .route("/v1/catalog/deregister", put(catalog::deregister))
        .route("/v1/health/service/{name}", get(health::service))
        .route("/v1/health/checks/{name}", get(health::checks))
        .route("/v1/health/state/{state}", get(health::state))
        .route("/v1/health/node/{node}", get(health::node))
        .route("/v1/session/create", put(session::create))
        .route("/v1/session/destroy/{id}", put(session::destroy))
        .route("/v1/session/renew/{id}", put(session::renew))
        .route("/v1/session/info/{id}", get(session::info))
        .route("/v1/session/list", get(session::list))
        .route("/v1/session/node/{node}", get(session::node))
        .route("/v1/sextant/health/owners", get(owners::owners))
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
        .route("/metrics", get(metrics::metrics))
        .merge(registry_routes())
        .merge(snapshot::routes())
        .merge(ui::routes())
        .layer(body_limit)
        // Counts every request by its route template (MatchedPath is set by
        // the time a `layer` runs).
        .layer(axum::middleware::from_fn(sextant_core::http_metrics::track))
        // A bug in one handler answers 500 to that request instead of
        // dropping the connection; the server itself keeps running.
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .with_state(state)
}
