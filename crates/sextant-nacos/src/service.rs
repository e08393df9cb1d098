//! `/nacos/v1/ns/service`: create (POST), update (PUT), read (GET) and
//! delete (DELETE) a service definition, and `/nacos/v1/ns/service/list`.
//!
//! A service exists once it has instances (registering one creates it, as
//! in Nacos) or a definition; the definition holds the protection threshold
//! and the service's metadata.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::error::NacosError;
use super::model::{parse_metadata, ServiceKey, DEFAULT_GROUP, DEFAULT_NAMESPACE};
use super::params::Params;
use super::store::{self, ServiceDefinition};
use super::NacosState;

pub async fn create(
    State(nacos): State<NacosState>,
    params: Params,
) -> Result<&'static str, NacosError> {
    let key = ServiceKey::from_params(&params)?;
    let definition = ServiceDefinition {
        protect_threshold: threshold(&params)?.unwrap_or(0.0),
        metadata: metadata(&params)?.unwrap_or_default(),
    };
    if exists(&nacos, &key) {
        return Err(NacosError::bad_request(format!(
            "specified service already exists, serviceName : {}",
            key.grouped()
        )));
    }
    store::put_definition(&nacos, &key, &definition).await?;
    Ok("ok")
}

pub async fn update(
    State(nacos): State<NacosState>,
    params: Params,
) -> Result<&'static str, NacosError> {
    let key = ServiceKey::from_params(&params)?;
    let threshold = threshold(&params)?;
    let metadata = metadata(&params)?;
    if !exists(&nacos, &key) {
        return Err(NacosError::bad_request(format!(
            "service {} not found!",
            key.grouped()
        )));
    }
    let mut definition = store::definition(&nacos, &key).unwrap_or_default();
    if let Some(threshold) = threshold {
        definition.protect_threshold = threshold;
    }
    if let Some(metadata) = metadata {
        definition.metadata = metadata;
    }
    store::put_definition(&nacos, &key, &definition).await?;
    Ok("ok")
}

pub async fn detail(
    State(nacos): State<NacosState>,
    params: Params,
) -> Result<Json<Value>, NacosError> {
    let key = ServiceKey::from_params(&params)?;
    let definition = store::definition(&nacos, &key);
    let instances = store::instances(&nacos, &key);
    if definition.is_none() && instances.is_empty() {
        return Err(NacosError::NotFound(format!(
            "service {} is not found!",
            key.grouped()
        )));
    }
    let definition = definition.unwrap_or_default();
    let clusters: BTreeSet<&str> = instances.iter().map(|i| i.cluster.as_str()).collect();
    Ok(Json(json!({
        "namespaceId": key.namespace,
        "groupName": key.group,
        "name": key.name,
        "protectThreshold": definition.protect_threshold,
        "metadata": definition.metadata,
        "selector": {"type": "none"},
        "clusters": clusters
            .into_iter()
            .map(|name| json!({"name": name, "healthChecker": {"type": "none"}, "metadata": {}}))
            .collect::<Vec<_>>(),
    })))
}

pub async fn delete(
    State(nacos): State<NacosState>,
    params: Params,
) -> Result<&'static str, NacosError> {
    let key = ServiceKey::from_params(&params)?;
    if !store::instances(&nacos, &key).is_empty() {
        return Err(NacosError::bad_request(format!(
            "service {} is not empty, can't be delete. Please unregister instance first",
            key.grouped()
        )));
    }
    if store::definition(&nacos, &key).is_none() {
        return Err(NacosError::bad_request(format!(
            "specified service not exist, serviceName : {}",
            key.grouped()
        )));
    }
    store::delete_definition(&nacos, &key).await?;
    Ok("ok")
}

/// One page of the names of a group's services: `{"count": N, "doms": [...]}`.
pub async fn list(
    State(nacos): State<NacosState>,
    params: Params,
) -> Result<Json<Value>, NacosError> {
    let page_no = params.number::<usize>("pageNo")?.unwrap_or(1).max(1);
    let page_size = params.number::<usize>("pageSize")?.unwrap_or(20);
    let namespace = params.text("namespaceId").unwrap_or(DEFAULT_NAMESPACE);
    let group = params.text("groupName").unwrap_or(DEFAULT_GROUP);
    let names = store::service_names(&nacos, namespace, group);
    let page: Vec<&String> = names
        .iter()
        .skip((page_no - 1).saturating_mul(page_size))
        .take(page_size)
        .collect();
    Ok(Json(json!({"count": names.len(), "doms": page})))
}

fn exists(nacos: &NacosState, key: &ServiceKey) -> bool {
    store::definition(nacos, key).is_some() || !store::instances(nacos, key).is_empty()
}

fn threshold(params: &Params) -> Result<Option<f64>, NacosError> {
    let threshold = params.number::<f64>("protectThreshold")?;
    if threshold.is_some_and(|t| !(0.0..=1.0).contains(&t)) {
        return Err(NacosError::bad_request(
            "Param 'protectThreshold' must be between 0 and 1.",
        ));
    }
    Ok(threshold)
}

fn metadata(
    params: &Params,
) -> Result<Option<std::collections::BTreeMap<String, String>>, NacosError> {
    params.text("metadata").map(parse_metadata).transpose()
}
