//! The catalog endpoints: services, one service's instances, nodes, one
//! node, and the low-level register / deregister (which run no checks).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use sextant_state::catalog::Node;
use sextant_state::Op;

use super::agent_service::parse_filter;
use super::blocking::{self, Indexed};
use super::consul_json::{parse_object, Fields};
use super::error::HttpError;
use super::params::Params;
use super::registration;
use super::service_query::{self, ServiceAnswer};
use super::{apply, render, HttpState};

/// `{"name": ["tag", …]}` for every service.
pub async fn services(
    State(http): State<HttpState>,
    params: Params,
) -> Result<Response, HttpError> {
    let Indexed { value, headers } = blocking::query(&http.registry, &params, |machine| {
        let catalog = machine.catalog();
        let names: BTreeMap<String, Vec<String>> = catalog
            .service_names()
            .into_iter()
            .map(|(name, tags)| {
                (
                    name.to_owned(),
                    tags.into_iter().map(str::to_owned).collect(),
                )
            })
            .collect();
        (catalog.services_index(), names)
    })
    .await?;
    Ok((headers, Json(value)).into_response())
}

/// The instances of one service; `?tag=` keeps those with the tag.
pub async fn service(
    State(http): State<HttpState>,
    Path(name): Path<String>,
    params: Params,
) -> Result<ServiceAnswer, HttpError> {
    let filter = parse_filter(&params)?;
    // Several `?tag=` must all be present, as in Consul.
    let tags = params.all("tag").to_vec();
    // Debug formatting quotes every part, so no two queries share a key.
    let key = format!("{:?}", ("catalog", &name, &tags, params.text("filter")));
    service_query::query(
        &http.registry,
        &http.shared,
        &params,
        &name,
        key,
        |machine| {
            let entries: Vec<Value> = machine
                .catalog()
                .instances(&name)
                .iter()
                .filter(|i| tags.iter().all(|t| i.service.tags.contains(t)))
                .map(|i| render::catalog_service(i.node, i.service))
                .filter(|v| filter.as_ref().is_none_or(|f| f.matches(v)))
                .collect();
            Value::Array(entries)
        },
    )
    .await
}

pub async fn nodes(State(http): State<HttpState>, params: Params) -> Result<Response, HttpError> {
    let filter = parse_filter(&params)?;
    let Indexed { value, headers } = blocking::query(&http.registry, &params, |machine| {
        let catalog = machine.catalog();
        let nodes: Vec<Value> = catalog
            .nodes()
            .map(render::node)
            .filter(|v| filter.as_ref().is_none_or(|f| f.matches(v)))
            .collect();
        (catalog.nodes_index(), nodes)
    })
    .await?;
    Ok((headers, Json(value)).into_response())
}

/// One node with its services; `null` for an unknown node, as Consul answers.
pub async fn node(
    State(http): State<HttpState>,
    Path(name): Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    let Indexed { value, headers } = blocking::query(&http.registry, &params, |machine| {
        let catalog = machine.catalog();
        let index = catalog.nodes_index().max(catalog.services_index());
        let value = match catalog.node(&name) {
            None => Value::Null,
            Some(node) => {
                let services: BTreeMap<String, Value> = catalog
                    .node_services(&name)
                    .map(|s| (s.id.clone(), render::agent_service(s)))
                    .collect();
                json!({"Node": render::node(node), "Services": services})
            }
        };
        (index, value)
    })
    .await?;
    Ok((headers, Json(value)).into_response())
}

pub async fn datacenters() -> Json<Vec<&'static str>> {
    Json(vec![render::DATACENTER])
}

/// Writes a node, and optionally a service and checks on it, as given. The
/// writes are separate Raft entries (node first), so a reader may briefly
/// see the node without its service.
pub async fn register(State(http): State<HttpState>, body: Bytes) -> Result<Json<bool>, HttpError> {
    let registration = registration::catalog(&body).map_err(|e| HttpError::bad_request(e.0))?;
    let node = Node {
        name: registration.node.clone(),
        address: registration.address,
        meta: registration.node_meta,
        ..Node::default()
    };
    apply::write(&http, Op::RegisterNode { node }).await?;
    let (service_checks, node_checks): (Vec<_>, Vec<_>) = registration
        .checks
        .into_iter()
        .partition(|c| c.service_id.is_some());
    if let Some(service) = registration.service {
        let op = Op::RegisterService {
            node: registration.node.clone(),
            service,
            checks: service_checks,
            replace_checks: false,
        };
        apply::write(&http, op).await?;
    }
    for check in node_checks {
        apply::write(&http, Op::RegisterCheck { check }).await?;
    }
    Ok(Json(true))
}

/// Removes a check (`CheckID`), a service (`ServiceID`) or a whole node.
pub async fn deregister(
    State(http): State<HttpState>,
    body: Bytes,
) -> Result<Json<bool>, HttpError> {
    let value = parse_object(&body).map_err(|e| HttpError::bad_request(e.0))?;
    let fields = Fields::of(&value, "").map_err(|e| HttpError::bad_request(e.0))?;
    let text = |name: &str| {
        fields
            .non_empty(name)
            .map_err(|e| HttpError::bad_request(e.0))
    };
    let node = text("Node")?.ok_or_else(|| HttpError::bad_request("Must provide node"))?;
    let op = match (text("CheckID")?, text("ServiceID")?) {
        (Some(check_id), _) => Op::DeregisterCheck { node, check_id },
        (None, Some(service_id)) => Op::DeregisterService { node, service_id },
        (None, None) => Op::DeregisterNode { node },
    };
    apply::write(&http, op).await?;
    Ok(Json(true))
}
