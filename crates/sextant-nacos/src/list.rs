//! `GET /nacos/v1/ns/instance/list`: a service's instances as clients
//! subscribe to them, with Nacos's protection threshold.
//!
//! The threshold guards against a flood onto the few healthy instances left:
//! when the share of healthy instances is at most the service's threshold,
//! every instance is returned (unhealthy ones included, marked so) and
//! `reachProtectionThreshold` is set. Disabled instances are never returned.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde_json::value::RawValue;

use super::error::NacosError;
use super::list_cache::{CachedHosts, ListKey, ListVersion};
use super::list_reply::{checksum, Host, ListReply};
use super::model::{ServiceKey, StoredInstance};
use super::params::Params;
use super::{store, NacosState};

pub async fn list(State(nacos): State<NacosState>, params: Params) -> Result<Response, NacosError> {
    let key = ListKey {
        service: ServiceKey::from_params(&params)?,
        clusters: params.text("clusters").unwrap_or("").to_owned(),
        healthy_only: params.flag("healthyOnly", false)?,
    };
    let threshold = store::definition(&nacos, &key.service)
        .map(|d| d.protect_threshold)
        .unwrap_or(0.0);
    let hosts = selected_hosts(&nacos, &key, threshold)?;
    let reply = ListReply {
        all_ips: false,
        cache_millis: nacos.config.cache_millis,
        checksum: &hosts.checksum,
        clusters: &key.clusters,
        group_name: &key.service.group,
        hosts: &hosts.json,
        last_ref_time: sextant_core::registry::now_ms(),
        name: &key.service.grouped(),
        reach_protection_threshold: hosts.reached_threshold,
        valid: true,
    };
    let body = serde_json::to_vec(&reply).map_err(internal)?;
    Ok(([(CONTENT_TYPE, "application/json")], body).into_response())
}

/// The hosts `key` selects at `threshold`, from the cache while the service
/// has not changed since they were written.
fn selected_hosts(
    nacos: &NacosState,
    key: &ListKey,
    threshold: f64,
) -> Result<Arc<CachedHosts>, NacosError> {
    let current = ListVersion {
        service_index: store::instances_version(nacos, &key.service),
        threshold,
    };
    if let Some(cached) = nacos.lists.get(key, current) {
        return Ok(cached);
    }
    let (service_index, instances) = store::instances_versioned(nacos, &key.service);
    let clusters: Vec<&str> = key
        .clusters
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    let instances: Vec<StoredInstance> = instances
        .into_iter()
        .filter(|i| clusters.is_empty() || clusters.contains(&i.cluster.as_str()))
        .collect();
    let selection = select(instances, threshold, key.healthy_only);
    let hosts: Vec<Host<'_>> = selection.hosts.iter().map(Host::from).collect();
    let json = serde_json::to_string(&hosts).map_err(internal)?;
    let built = Arc::new(CachedHosts {
        version: ListVersion {
            service_index,
            threshold,
        },
        checksum: checksum(&json),
        json: RawValue::from_string(json).map_err(internal)?,
        reached_threshold: selection.reached_threshold,
    });
    nacos.lists.insert(key.clone(), built.clone());
    Ok(built)
}

fn internal(e: serde_json::Error) -> NacosError {
    NacosError::Internal(e.to_string())
}

/// The instances a list returns.
#[derive(Debug, PartialEq)]
pub struct Selection {
    pub hosts: Vec<StoredInstance>,
    pub reached_threshold: bool,
}

/// Nacos's selection: healthy and unhealthy instances apart, all of them
/// together once the healthy share is at most `threshold`, unhealthy ones
/// dropped if `healthy_only` (unless the threshold was reached), disabled
/// ones dropped always.
pub fn select(instances: Vec<StoredInstance>, threshold: f64, healthy_only: bool) -> Selection {
    let total = instances.len();
    let healthy = instances.iter().filter(|i| i.healthy).count();
    let reached_threshold = total > 0 && (healthy as f64 / total as f64) <= threshold;
    let hosts = instances
        .into_iter()
        .filter(|i| i.enabled)
        .filter(|i| reached_threshold || !healthy_only || i.healthy)
        .collect();
    Selection {
        hosts,
        reached_threshold,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::model::Timers;

    fn instance(port: u16, healthy: bool, enabled: bool) -> StoredInstance {
        StoredInstance {
            id: format!("10.0.0.1#{port}#DEFAULT#DEFAULT_GROUP@@svc"),
            ip: "10.0.0.1".into(),
            port,
            cluster: "DEFAULT".into(),
            grouped_service: "DEFAULT_GROUP@@svc".into(),
            weight: 1.0,
            enabled,
            ephemeral: true,
            healthy,
            metadata: BTreeMap::new(),
            timers: Timers {
                beat_interval: Duration::from_secs(5),
                beat_timeout: Duration::from_secs(15),
                delete_timeout: Duration::from_secs(30),
            },
        }
    }

    fn ports(selection: &Selection) -> Vec<u16> {
        selection.hosts.iter().map(|h| h.port).collect()
    }

    #[test]
    fn healthy_only_drops_unhealthy_instances_above_the_threshold() {
        let all = vec![instance(1, true, true), instance(2, false, true)];
        let selection = select(all.clone(), 0.0, true);
        assert_eq!(
            (ports(&selection), selection.reached_threshold),
            (vec![1], false)
        );
        assert_eq!(ports(&select(all, 0.0, false)), vec![1, 2]);
    }

    #[test]
    fn at_or_below_the_threshold_every_instance_is_returned() {
        let all = vec![
            instance(1, true, true),
            instance(2, false, true),
            instance(3, false, true),
            instance(4, false, true),
        ];
        // 1 of 4 healthy: 0.25 <= 0.25.
        let selection = select(all.clone(), 0.25, true);
        assert_eq!(
            (ports(&selection), selection.reached_threshold),
            (vec![1, 2, 3, 4], true)
        );
        let selection = select(all, 0.2, true);
        assert_eq!(
            (ports(&selection), selection.reached_threshold),
            (vec![1], false)
        );
    }

    #[test]
    fn disabled_instances_are_never_returned_but_count() {
        let all = vec![instance(1, true, false), instance(2, false, true)];
        // 1 of 2 healthy (the disabled one): 0.5 > 0.4, not reached.
        let selection = select(all, 0.4, false);
        assert_eq!(
            (ports(&selection), selection.reached_threshold),
            (vec![2], false)
        );
        assert!(!select(Vec::new(), 1.0, true).reached_threshold);
    }
}
