//! The JSON of an instance list, written straight from the instances.
//!
//! The reply used to be built as a `serde_json::Value` (a map per host, each
//! key a new string) and serialized twice, once for the checksum and once
//! for the reply. These borrowed shapes serialize the same bytes — their
//! fields are declared in the sorted order in which `Value`'s maps wrote
//! them — with no tree in between, and the checksum is hashed as the hosts
//! are written, into no buffer.

use std::collections::BTreeMap;
use std::io;

use serde::Serialize;

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
    pub checksum: String,
    pub clusters: &'a str,
    #[serde(rename = "groupName")]
    pub group_name: &'a str,
    pub hosts: &'a [Host<'a>],
    #[serde(rename = "lastRefTime")]
    pub last_ref_time: u64,
    pub name: &'a str,
    #[serde(rename = "reachProtectionThreshold")]
    pub reach_protection_threshold: bool,
    pub valid: bool,
}

/// A fingerprint of the hosts, for clients to notice a change cheaply:
/// FNV-1a over their JSON, stable across versions and servers, which std's
/// hasher is not.
pub fn checksum(hosts: &[Host<'_>]) -> String {
    let mut hasher = Fnv1a(0xcbf2_9ce4_8422_2325);
    // Writing into a hasher cannot fail, and these shapes always serialize.
    let _ = serde_json::to_writer(&mut hasher, hosts);
    format!("{:016x}", hasher.0)
}

struct Fnv1a(u64);

impl io::Write for Fnv1a {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
