//! The health endpoints: a service's instances with their checks (what
//! discovery clients poll or block on), a service's checks, checks by state,
//! a node's checks.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use sextant_state::catalog::CheckStatus;

use super::agent_service::parse_filter;
use super::blocking::{self, Indexed};
use super::error::HttpError;
use super::params::Params;
use super::service_query::{self, ServiceAnswer};
use super::{render, HttpState};

/// Consul counts `?passing` by presence, but clients also send `passing=false`.
fn passing_only(params: &Params) -> bool {
    params
        .text("passing")
        .is_some_and(|v| !matches!(v, "false" | "0" | "no"))
}

/// `/v1/health/service/:name`: `?passing` keeps instances whose every check
/// (the node's included) passes; `?tag=` those with the tag; `?filter=`
/// those matching the expression.
pub async fn service(
    State(http): State<HttpState>,
    Path(name): Path<String>,
    params: Params,
) -> Result<ServiceAnswer, HttpError> {
    let filter = parse_filter(&params)?;
    let passing = passing_only(&params);
    // Several `?tag=` must all be present, as in Consul.
    let tags = params.all("tag").to_vec();
    // Debug formatting quotes every part, so no two queries share a key.
    let key = format!(
        "{:?}",
        ("health", &name, passing, &tags, params.text("filter"))
    );
    service_query::query(
        &http.registry,
        &http.shared,
        &params,
        &name,
        key,
        |machine| {
            let catalog = machine.catalog();
            let entries: Vec<Value> = catalog
                .instances(&name)
                .iter()
                .filter(|i| !passing || i.status() == CheckStatus::Passing)
                .filter(|i| tags.iter().all(|t| i.service.tags.contains(t)))
                .map(|i| render::health_entry(catalog, i))
                .filter(|v| filter.as_ref().is_none_or(|f| f.matches(v)))
                .collect();
            Value::Array(entries)
        },
    )
    .await
}

/// `/v1/health/checks/:service`: the checks of every instance of a service.
pub async fn checks(
    State(http): State<HttpState>,
    Path(name): Path<String>,
    params: Params,
) -> Result<ServiceAnswer, HttpError> {
    let filter = parse_filter(&params)?;
    let key = format!("{:?}", ("checks", &name, params.text("filter")));
    service_query::query(
        &http.registry,
        &http.shared,
        &params,
        &name,
        key,
        |machine| {
            let catalog = machine.catalog();
            let checks: Vec<Value> = catalog
                .checks_of_service(&name)
                .into_iter()
                .map(|c| render::check(catalog, c))
                .filter(|v| filter.as_ref().is_none_or(|f| f.matches(v)))
                .collect();
            Value::Array(checks)
        },
    )
    .await
}

/// `/v1/health/state/:state`: every check in a state (`any` for all).
pub async fn state(
    State(http): State<HttpState>,
    Path(state): Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    let wanted = match state.as_str() {
        "any" => None,
        other => match other.parse::<CheckStatus>() {
            Ok(CheckStatus::Maintenance) | Err(_) => {
                return Err(HttpError::bad_request(format!(
                    "Invalid check state {other:?}"
                )))
            }
            Ok(status) => Some(status),
        },
    };
    let filter = parse_filter(&params)?;
    let Indexed { value, headers } = blocking::query(&http.registry, &params, |machine| {
        let catalog = machine.catalog();
        let checks: Vec<Value> = catalog
            .checks_in_state(wanted)
            .into_iter()
            .map(|c| render::check(catalog, c))
            .filter(|v| filter.as_ref().is_none_or(|f| f.matches(v)))
            .collect();
        (catalog.checks_index(), checks)
    })
    .await?;
    Ok((headers, Json(value)).into_response())
}

/// `/v1/health/node/:node`: the node's checks, its services' included.
pub async fn node(
    State(http): State<HttpState>,
    Path(node): Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    let filter = parse_filter(&params)?;
    let Indexed { value, headers } = blocking::query(&http.registry, &params, |machine| {
        let catalog = machine.catalog();
        let checks: Vec<Value> = catalog
            .checks_of_node(&node)
            .map(|c| render::check(catalog, c))
            .filter(|v| filter.as_ref().is_none_or(|f| f.matches(v)))
            .collect();
        (catalog.checks_index(), checks)
    })
    .await?;
    Ok((headers, Json(value)).into_response())
}
