//! `GET /nacos/v1/ns/instance/list`: a service's instances as clients
//! subscribe to them, with Nacos's protection threshold.
//!
//! The threshold guards against a flood onto the few healthy instances left:
//! when the share of healthy instances is at most the service's threshold,
//! every instance is returned (unhealthy ones included, marked so) and
//! `reachProtectionThreshold` is set. Disabled instances are never returned.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::error::NacosError;
use super::model::{ServiceKey, StoredInstance};
use super::params::Params;
use super::{store, NacosState};

pub async fn list(
    State(nacos): State<NacosState>,
    params: Params,
) -> Result<Json<Value>, NacosError> {
    let key = ServiceKey::from_params(&params)?;
    let clusters_text = params.text("clusters").unwrap_or("");
    let clusters: Vec<&str> = clusters_text
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    let healthy_only = params.flag("healthyOnly", false)?;
    let threshold = store::definition(&nacos, &key)
        .map(|d| d.protect_threshold)
        .unwrap_or(0.0);
    let instances: Vec<StoredInstance> = store::instances(&nacos, &key)
        .into_iter()
        .filter(|i| clusters.is_empty() || clusters.contains(&i.cluster.as_str()))
        .collect();
    let selection = select(instances, threshold, healthy_only);
    let hosts: Vec<Value> = selection
        .hosts
        .iter()
        .map(StoredInstance::to_json)
        .collect();
    let checksum = checksum(&hosts);
    Ok(Json(json!({
        "name": key.grouped(),
        "groupName": key.group,
        "clusters": clusters_text,
        "cacheMillis": nacos.config.cache_millis,
        "hosts": hosts,
        "lastRefTime": crate::registry::now_ms(),
        "checksum": checksum,
        "allIPs": false,
        "reachProtectionThreshold": selection.reached_threshold,
        "valid": true,
    })))
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

/// A fingerprint of the hosts, for clients to notice a change cheaply.
fn checksum(hosts: &[Value]) -> String {
    // FNV-1a: stable across versions and servers, which std's hasher is not.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in serde_json::to_vec(hosts).unwrap_or_default() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::nacos::model::Timers;

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
