//! The JSON of an instance list, written straight from the instances.
//!
//! These borrowed shapes serialize the bytes a `serde_json::Value` of the
//! reply would (their fields are declared in the sorted order in which
//! `Value`'s maps write them) with no tree in between. The hosts are written
//! once, hashed for the checksum, and kept (`list_cache`); the envelope
//! around them is written per reply.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::value::RawValue;

use super::model::StoredInstance;

/// One instance as `hosts` shows it.
#[derive(Serialize)]
pub struct Host<'a> {
    #[serde(rename = "clusterName")]
    cluster_name: &'a str,
    enabled: bool,
    ephemeral: bool,
    healthy: bool,
    #[serde(rename = "instanceHeartBeatInterval")]
    beat_interval_ms: u64,
    #[serde(rename = "instanceHeartBeatTimeOut")]
    beat_timeout_ms: u64,
    #[serde(rename = "instanceId")]
    instance_id: &'a str,
    #[serde(rename = "instanceIdGenerator")]
    instance_id_generator: &'static str,
    ip: &'a str,
    #[serde(rename = "ipDeleteTimeout")]
    delete_timeout_ms: u64,
    metadata: &'a BTreeMap<String, String>,
    port: u16,
    #[serde(rename = "serviceName")]
    service_name: &'a str,
    weight: f64,
}

impl<'a> From<&'a StoredInstance> for Host<'a> {
    fn from(i: &'a StoredInstance) -> Self {
        Self {
            cluster_name: &i.cluster,
            enabled: i.enabled,
            ephemeral: i.ephemeral,
            healthy: i.healthy,
            beat_interval_ms: i.timers.beat_interval.as_millis() as u64,
            beat_timeout_ms: i.timers.beat_timeout.as_millis() as u64,
            instance_id: &i.id,
            instance_id_generator: "simple",
            ip: &i.ip,
            delete_timeout_ms: i.timers.delete_timeout.as_millis() as u64,
            metadata: &i.metadata,
            port: i.port,
            service_name: &i.grouped_service,
            weight: i.weight,
        }
    }
}

/// The whole reply of `/nacos/v1/ns/instance/list`.
#[derive(Serialize)]
pub struct ListReply<'a> {
    #[serde(rename = "allIPs")]
    pub all_ips: bool,
    #[serde(rename = "cacheMillis")]
    pub cache_millis: u64,
    pub checksum: &'a str,
    pub clusters: &'a str,
    #[serde(rename = "groupName")]
    pub group_name: &'a str,
    pub hosts: &'a RawValue,
    #[serde(rename = "lastRefTime")]
    pub last_ref_time: u64,
    pub name: &'a str,
    #[serde(rename = "reachProtectionThreshold")]
    pub reach_protection_threshold: bool,
    pub valid: bool,
}

/// A fingerprint of the hosts' JSON, for clients to notice a change
/// cheaply: FNV-1a, stable across versions and servers, which std's hasher
/// is not.
pub fn checksum(hosts_json: &str) -> String {
    let hash = hosts_json
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_is_fnv1a_of_the_json() {
        // FNV-1a's published test vectors: the empty input, and "a".
        assert_eq!(checksum(""), "cbf29ce484222325");
        assert_eq!(checksum("a"), "af63dc4c8601ec8c");
    }
}
