//! Reads and writes of the replicated state on behalf of the Nacos API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sextant_state::{KvCondition, LockAction, Op, Response as Applied};

use super::error::NacosError;
use super::model::{InstanceKey, ServiceKey, StoredInstance};
use super::NacosState;
use sextant_core::registry::RegistryError;

/// Where service definitions live in the key/value store:
/// `<prefix><namespace>/<group>@@<service>`.
pub const SERVICE_PREFIX: &str = "/sextant/nacos/services/";

/// Proposes `op` and returns once it is committed and applied on this
/// server too, so the client reads its write from here.
pub async fn write(nacos: &NacosState, op: Op) -> Result<(), NacosError> {
    let outcome = nacos.registry.write(op).await?;
    nacos.registry.applied_here(outcome.revision).await;
    match outcome.response {
        Applied::Rejected(e) => Err(NacosError::bad_request(e.to_string())),
        _ => Ok(()),
    }
}

/// Waits until this server has applied everything the leader had applied,
/// so a lookup that decides a write sees writes made through other servers.
pub async fn catch_up(nacos: &NacosState) -> Result<(), RegistryError> {
    nacos
        .registry
        .read_barrier(sextant_core::registry::Consistency::Default)
        .await
}

/// One registered instance, if it exists.
pub fn instance(nacos: &NacosState, key: &InstanceKey) -> Option<StoredInstance> {
    let state = nacos.registry.view();
    let catalog = state.catalog();
    let node_name = key.node();
    let node = catalog.node(&node_name)?;
    let service = catalog.service(&node_name, &key.id())?;
    let checks = catalog
        .check(&node_name, &key.check_id())
        .into_iter()
        .collect();
    StoredInstance::from_catalog(
        &sextant_state::catalog::ServiceInstance {
            node,
            service,
            checks,
        },
        &nacos.config,
    )
}

/// Every instance of a service in its namespace.
pub fn instances(nacos: &NacosState, key: &ServiceKey) -> Vec<StoredInstance> {
    instances_versioned(nacos, key).1
}

/// Every instance of a service in its namespace, and the catalog's revision
/// of the service's instances (`Catalog::service_index`) they were read at.
pub fn instances_versioned(nacos: &NacosState, key: &ServiceKey) -> (u64, Vec<StoredInstance>) {
    let grouped = key.grouped();
    let state = nacos.registry.view();
    let catalog = state.catalog();
    let instances = catalog
        .instances(&grouped)
        .iter()
        .filter(|i| key.owns_node(&i.node.name))
        .filter_map(|i| StoredInstance::from_catalog(i, &nacos.config))
        .collect();
    (catalog.service_index(&grouped), instances)
}

/// The catalog's revision of the instances of the service, as
/// [`instances_versioned`] reports it, without reading them.
pub fn instances_version(nacos: &NacosState, key: &ServiceKey) -> u64 {
    let state = nacos.registry.view();
    state.catalog().service_index(&key.grouped())
}

/// The names (without group) of the services of one group in a namespace
/// that have instances or a definition, sorted.
pub fn service_names(nacos: &NacosState, namespace: &str, group: &str) -> Vec<String> {
    let probe = ServiceKey {
        namespace: namespace.to_owned(),
        group: group.to_owned(),
        name: String::new(),
    };
    let group_prefix = format!("{group}{}", super::model::GROUP_SEPARATOR);
    let state = nacos.registry.view();
    let catalog = state.catalog();
    let mut names: Vec<String> = catalog
        .nodes()
        .filter(|n| probe.owns_node(&n.name))
        .flat_map(|n| catalog.node_services(&n.name))
        .filter_map(|s| s.name.strip_prefix(group_prefix.as_str()))
        .map(str::to_owned)
        .collect();
    let definitions = format!("{SERVICE_PREFIX}{namespace}/{group_prefix}");
    names.extend(
        state
            .kv()
            .list_prefix(definitions.as_bytes())
            .into_iter()
            .filter_map(|kv| kv.key.strip_prefix(definitions.as_bytes()))
            .filter_map(|name| std::str::from_utf8(name).ok())
            .map(str::to_owned),
    );
    names.sort();
    names.dedup();
    names
}

/// What a service carries besides its instances.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceDefinition {
    /// If the share of healthy instances is at most this, a list returns
    /// every instance (Nacos's protection threshold, 0 to 1).
    pub protect_threshold: f64,
    pub metadata: BTreeMap<String, String>,
}

fn definition_key(key: &ServiceKey) -> Vec<u8> {
    format!("{SERVICE_PREFIX}{}/{}", key.namespace, key.grouped()).into_bytes()
}

/// The service's definition, if one was created.
pub fn definition(nacos: &NacosState, key: &ServiceKey) -> Option<ServiceDefinition> {
    let state = nacos.registry.view();
    let kv = state.kv().get(&definition_key(key))?;
    match serde_json::from_slice(&kv.value) {
        Ok(definition) => Some(definition),
        Err(e) => {
            tracing::warn!(service = %key.grouped(), error = %e, "unreadable Nacos service definition; using defaults");
            Some(ServiceDefinition::default())
        }
    }
}

pub async fn put_definition(
    nacos: &NacosState,
    key: &ServiceKey,
    definition: &ServiceDefinition,
) -> Result<(), NacosError> {
    let value = serde_json::to_vec(definition).map_err(|e| NacosError::Internal(e.to_string()))?;
    let op = Op::KvPut {
        key: definition_key(key),
        value,
        flags: 0,
        lease: None,
        condition: KvCondition::None,
        lock: LockAction::None,
    };
    write(nacos, op).await
}

pub async fn delete_definition(nacos: &NacosState, key: &ServiceKey) -> Result<(), NacosError> {
    let op = Op::KvDelete {
        key: definition_key(key),
        prefix: false,
        condition: KvCondition::None,
    };
    write(nacos, op).await
}
