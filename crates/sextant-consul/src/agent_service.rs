//! The agent's service endpoints: register, deregister, list, read, and the
//! aggregated health of a service on this agent.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use sextant_state::catalog::CheckStatus;
use sextant_state::Op;

use super::error::HttpError;
use super::filter::Filter;
use super::params::Params;
use super::registration::{self, CheckRegistration};
use super::{apply, lookup, render, HttpState};

pub async fn register(
    State(http): State<HttpState>,
    params: Params,
    body: Bytes,
) -> Result<Response, HttpError> {
    let registration =
        registration::agent_service(&body).map_err(|e| HttpError::bad_request(e.0))?;
    let node = http.registry.node().name.clone();
    let checks = carry_over(&http, &node, registration.checks);
    let replace_checks = params
        .text("replace-existing-checks")
        .is_some_and(|v| v != "false" && v != "0");
    let op = Op::RegisterService {
        node,
        service: registration.service,
        checks,
        replace_checks,
    };
    apply::write(&http, op).await?;
    Ok(StatusCode::OK.into_response())
}

/// A check registered again without a `Status` keeps the status and output
/// it has: agents re-register on every restart, and that must not flap the
/// service to critical until the next probe.
pub fn carry_over(
    http: &HttpState,
    node: &str,
    checks: Vec<CheckRegistration>,
) -> Vec<sextant_state::catalog::Check> {
    let state = http.registry.view();
    let catalog = state.catalog();
    checks
        .into_iter()
        .map(|registration| {
            let mut check = registration.check;
            check.node = node.to_owned();
            if !registration.status_given {
                if let Some(existing) = catalog.check(node, &check.id) {
                    check.status = existing.status;
                    check.output = existing.output.clone();
                }
            }
            check
        })
        .collect()
}

pub async fn deregister(
    State(http): State<HttpState>,
    Path(service_id): Path<String>,
) -> Result<Response, HttpError> {
    let node = {
        let state = http.registry.view();
        lookup::service_node(&state, &http.registry.node().name, &service_id)
    };
    if let Some(node) = node {
        apply::write(&http, Op::DeregisterService { node, service_id }).await?;
    }
    Ok(StatusCode::OK.into_response())
}

pub async fn list(
    State(http): State<HttpState>,
    params: Params,
) -> Result<Json<BTreeMap<String, Value>>, HttpError> {
    let filter = parse_filter(&params)?;
    let state = http.registry.view();
    let services = state
        .catalog()
        .node_services(&http.registry.node().name)
        .map(|s| (s.id.clone(), render::agent_service(s)))
        .filter(|(_, v)| filter.as_ref().is_none_or(|f| f.matches(v)))
        .collect();
    Ok(Json(services))
}

pub async fn get(
    State(http): State<HttpState>,
    Path(service_id): Path<String>,
) -> Result<Json<Value>, HttpError> {
    let state = http.registry.view();
    let node = lookup::service_node(&state, &http.registry.node().name, &service_id);
    node.and_then(|node| state.catalog().service(&node, &service_id))
        .map(|s| Json(render::agent_service(s)))
        .ok_or_else(|| HttpError::NotFound(format!("unknown service ID: {service_id}")))
}

pub fn parse_filter(params: &Params) -> Result<Option<Filter>, HttpError> {
    params
        .text("filter")
        .filter(|f| !f.trim().is_empty())
        .map(|f| {
            Filter::parse(f).map_err(|e| {
                HttpError::bad_request(format!(
                    "Failed to create boolean expression evaluator: {e}"
                ))
            })
        })
        .transpose()
}

/// `GET /v1/agent/health/service/name/:name`: the instances of a service on
/// this agent with their checks; 200 when all pass, 429 when the worst is a
/// warning, 503 when any is critical (load balancers read only the code).
pub async fn health_by_name(State(http): State<HttpState>, Path(name): Path<String>) -> Response {
    let state = http.registry.view();
    let catalog = state.catalog();
    let local = &http.registry.node().name;
    let instances: Vec<_> = catalog
        .instances(&name)
        .into_iter()
        .filter(|i| i.node.name == *local)
        .collect();
    if instances.is_empty() {
        return (
            StatusCode::NOT_FOUND,
            format!("ServiceName {name} Not Found"),
        )
            .into_response();
    }
    let worst = CheckStatus::aggregate(instances.iter().map(|i| i.status()));
    let body: Vec<Value> = instances
        .iter()
        .map(|i| {
            json!({
                "AggregatedStatus": i.status().as_str(),
                "Service": render::agent_service(i.service),
                "Checks": i.checks.iter().map(|c| render::check(catalog, c)).collect::<Vec<_>>(),
            })
        })
        .collect();
    (status_code(worst), Json(body)).into_response()
}

/// `GET /v1/agent/health/service/id/:id`: the same for one instance.
pub async fn health_by_id(
    State(http): State<HttpState>,
    Path(service_id): Path<String>,
) -> Response {
    let state = http.registry.view();
    let catalog = state.catalog();
    let local = &http.registry.node().name;
    let Some(service) = catalog.service(local, &service_id) else {
        return (
            StatusCode::NOT_FOUND,
            format!("ServiceId {service_id} not found"),
        )
            .into_response();
    };
    let instance = catalog
        .instances(&service.name)
        .into_iter()
        .find(|i| i.node.name == *local && i.service.id == service_id);
    let Some(instance) = instance else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let worst = instance.status();
    let body = json!({
        "AggregatedStatus": worst.as_str(),
        "Service": render::agent_service(instance.service),
        "Checks": instance.checks.iter().map(|c| render::check(catalog, c)).collect::<Vec<_>>(),
    });
    (status_code(worst), Json(body)).into_response()
}

fn status_code(status: CheckStatus) -> StatusCode {
    match status {
        CheckStatus::Passing => StatusCode::OK,
        CheckStatus::Warning => StatusCode::TOO_MANY_REQUESTS,
        CheckStatus::Critical | CheckStatus::Maintenance => StatusCode::SERVICE_UNAVAILABLE,
    }
}
