//! The agent's check endpoints: register, deregister, list, and the TTL
//! updates (`pass`, `warn`, `fail`, `update`).
//!
//! A TTL update must reach the server that owns the check, where the TTL
//! clock lives; any other server passes it on (once) and relays the answer.
//! If the owner cannot be reached, the answer is 503: try again.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use sextant_state::catalog::CheckStatus;
use sextant_state::Op;

use super::agent_service::{carry_over, parse_filter};
use super::consul_json::{parse_object, Fields};
use super::error::HttpError;
use super::params::Params;
use super::registration::{self};
use super::{apply, lookup, render, HttpState};
use sextant_core::health::node_health::SERF_CHECK_ID;
use sextant_core::health::TtlUpdateError;

pub async fn register(State(http): State<HttpState>, body: Bytes) -> Result<Response, HttpError> {
    let registration = registration::agent_check(&body).map_err(|e| HttpError::bad_request(e.0))?;
    let node = http.registry.node().name.clone();
    let mut checks = carry_over(&http, &node, vec![registration]);
    let Some(check) = checks.pop() else {
        return Err(HttpError::Internal("no check decoded".into()));
    };
    apply::write(&http, Op::RegisterCheck { check }).await?;
    Ok(StatusCode::OK.into_response())
}

pub async fn deregister(
    State(http): State<HttpState>,
    Path(check_id): Path<String>,
) -> Result<Response, HttpError> {
    let node = {
        let state = http.registry.view();
        lookup::check_node(&state, &http.registry.node().name, &check_id)
    };
    if let Some(node) = node {
        apply::write(&http, Op::DeregisterCheck { node, check_id }).await?;
    }
    Ok(StatusCode::OK.into_response())
}

/// This agent's checks, by id; the servers' own `serfHealth` is catalog-only.
pub async fn list(
    State(http): State<HttpState>,
    params: Params,
) -> Result<Json<BTreeMap<String, Value>>, HttpError> {
    let filter = parse_filter(&params)?;
    let state = http.registry.view();
    let catalog = state.catalog();
    let checks = catalog
        .checks_of_node(&http.registry.node().name)
        .filter(|c| c.id != SERF_CHECK_ID)
        .map(|c| (c.id.clone(), render::check(catalog, c)))
        .filter(|(_, v)| filter.as_ref().is_none_or(|f| f.matches(v)))
        .collect();
    Ok(Json(checks))
}

/// The `?note=` of a `pass`, `warn` or `fail`: the check's new output.
fn note(params: &Params) -> String {
    params.text("note").unwrap_or("").to_owned()
}

pub async fn pass(
    state: State<HttpState>,
    id: Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    ttl_update(state, id, CheckStatus::Passing, note(&params)).await
}

pub async fn warn(
    state: State<HttpState>,
    id: Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    ttl_update(state, id, CheckStatus::Warning, note(&params)).await
}

pub async fn fail(
    state: State<HttpState>,
    id: Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    ttl_update(state, id, CheckStatus::Critical, note(&params)).await
}

/// `PUT /v1/agent/check/update/:id` with `{"Status": …, "Output": …}`.
pub async fn update(
    state: State<HttpState>,
    id: Path<String>,
    body: Bytes,
) -> Result<Response, HttpError> {
    let value = parse_object(&body).map_err(|e| HttpError::bad_request(e.0))?;
    let fields = Fields::of(&value, "").map_err(|e| HttpError::bad_request(e.0))?;
    let status_text = fields
        .non_empty("Status")
        .map_err(|e| HttpError::bad_request(e.0))?
        .unwrap_or_default();
    let status = match status_text.parse::<CheckStatus>() {
        Ok(CheckStatus::Maintenance) | Err(_) => {
            return Err(HttpError::bad_request(format!(
                "Invalid check status: {status_text:?}"
            )))
        }
        Ok(status) => status,
    };
    let output = fields
        .string("Output")
        .map_err(|e| HttpError::bad_request(e.0))?
        .unwrap_or_default();
    ttl_update(state, id, status, output).await
}

async fn ttl_update(
    State(http): State<HttpState>,
    Path(check_id): Path<String>,
    status: CheckStatus,
    output: String,
) -> Result<Response, HttpError> {
    let node = {
        let state = http.registry.view();
        lookup::check_node(&state, &http.registry.node().name, &check_id)
    };
    let Some(node) = node else {
        return Err(HttpError::NotFound(
            TtlUpdateError::UnknownCheck(check_id).to_string(),
        ));
    };
    let updated = http
        .health
        .ttl_update_routed(&node, &check_id, status, &output)
        .await;
    match updated {
        Ok(Some(revision)) => {
            http.registry.applied_here(revision).await;
            Ok(([("X-Consul-Index", revision.to_string())], StatusCode::OK).into_response())
        }
        Ok(None) => Ok(StatusCode::OK.into_response()),
        Err(TtlUpdateError::Registry(e)) => Err(e.into()),
        Err(e @ TtlUpdateError::UnknownCheck(_)) => Err(HttpError::NotFound(e.to_string())),
        Err(e @ TtlUpdateError::NotTtl(_)) => Err(HttpError::bad_request(e.to_string())),
        Err(
            e @ (TtlUpdateError::LeaderUnreachable { .. } | TtlUpdateError::LeaderRefused { .. }),
        ) => Ok((StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()),
    }
}
