//! How Nacos's naming model maps onto the replicated catalog.
//!
//! A Nacos instance is a catalog service instance:
//! - namespace and ip → the catalog node `nacos-<namespace>@<ip>` (created
//!   with its first instance): one node per host, as a Consul agent would be,
//!   so a node holds a few instances and reading one instance's checks stays
//!   cheap however many instances a namespace has; namespaces never see each
//!   other's instances;
//! - group and service → the service name `<group>@@<service>`, Nacos's own
//!   "grouped name";
//! - cluster, ip, port → the service id `<ip>#<port>#<cluster>#<group>@@<service>`,
//!   Nacos's default instance id; address and port are the instance's;
//! - metadata → the service's `Meta`, verbatim;
//! - cluster, weight, enabled, ephemeral → tags `nacos-cluster=…` etc., so
//!   no metadata key can collide with them;
//! - health → one check `service:<id>`: for an ephemeral instance a TTL check
//!   renewed by beats (TTL = the beat timeout; it deregisters the instance
//!   once critical for the delete timeout minus the beat timeout, i.e. the
//!   delete timeout after the last beat); for a persistent instance an
//!   externally set check holding the `healthy` it was registered with.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde_json::Value;
use sextant_state::catalog::{
    Check, CheckDefinition, CheckKind, CheckStatus, Service, ServiceInstance, Weights,
};

use super::error::NacosError;
use super::params::Params;
use super::NacosConfig;

/// The namespace of a request that names none (Nacos's `public`).
pub const DEFAULT_NAMESPACE: &str = "public";
/// The group of a request that names none.
pub const DEFAULT_GROUP: &str = "DEFAULT_GROUP";
/// The cluster of an instance registered without one.
pub const DEFAULT_CLUSTER: &str = "DEFAULT";
/// Between group and service in a grouped service name.
pub const GROUP_SEPARATOR: &str = "@@";
/// Catalog nodes holding Nacos instances are named this, the namespace,
/// `@`, and the instances' ip.
pub const NODE_PREFIX: &str = "nacos-";

const TAG_CLUSTER: &str = "nacos-cluster=";
const TAG_WEIGHT: &str = "nacos-weight=";
const TAG_ENABLED: &str = "nacos-enabled=";
const TAG_EPHEMERAL: &str = "nacos-ephemeral=";

/// Nacos's per-instance timer overrides, in milliseconds, read from metadata.
const META_BEAT_INTERVAL: &str = "preserved.heart.beat.interval";
const META_BEAT_TIMEOUT: &str = "preserved.heart.beat.timeout";
const META_DELETE_TIMEOUT: &str = "preserved.ip.delete.timeout";

/// Nacos's bounds on an instance's weight.
const MAX_WEIGHT: f64 = 1_000_000.0;

/// One Nacos service: namespace, group and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServiceKey {
    /// `namespaceId` (`public` when absent).
    pub namespace: String,
    /// `groupName` (`DEFAULT_GROUP` when absent).
    pub group: String,
    /// The service's own name, without its group.
    pub name: String,
}

impl ServiceKey {
    /// From `serviceName` (which may already be `group@@name`), `groupName`
    /// and `namespaceId`.
    pub fn from_params(params: &Params) -> Result<Self, NacosError> {
        let service_name = params.required("serviceName")?;
        let (group, name) = match service_name.split_once(GROUP_SEPARATOR) {
            Some((group, name)) => (group, name),
            None => (
                params.text("groupName").unwrap_or(DEFAULT_GROUP),
                service_name,
            ),
        };
        let namespace = params.text("namespaceId").unwrap_or(DEFAULT_NAMESPACE);
        let key = Self {
            namespace: namespace.to_owned(),
            group: group.to_owned(),
            name: name.to_owned(),
        };
        key.validate()?;
        Ok(key)
    }

    fn validate(&self) -> Result<(), NacosError> {
        if self.name.is_empty() || self.group.is_empty() {
            return Err(NacosError::bad_request(format!(
                "Param 'serviceName' is illegal, illegal characters should not appear in the param: {}",
                self.grouped()
            )));
        }
        if self.name.contains(GROUP_SEPARATOR) || self.group.contains(GROUP_SEPARATOR) {
            return Err(NacosError::bad_request(format!(
                "Param 'serviceName' is illegal, it may contain '{GROUP_SEPARATOR}' only once: {}",
                self.grouped()
            )));
        }
        for (what, text) in [("serviceName", &self.name), ("groupName", &self.group)] {
            // Anything printable: instance ids stay unambiguous because ip
            // and cluster (before the service name in them) hold no `#`.
            if text.chars().any(char::is_control) {
                return Err(NacosError::bad_request(format!(
                    "Param '{what}' is illegal, illegal characters should not appear in the param: {text}"
                )));
            }
        }
        if self.namespace.len() > 128
            || !self
                .namespace
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err(NacosError::bad_request(format!(
                "Param 'namespaceId' is illegal: {:?}",
                self.namespace
            )));
        }
        Ok(())
    }

    /// `group@@name`: the catalog's service name.
    pub fn grouped(&self) -> String {
        format!("{}{GROUP_SEPARATOR}{}", self.group, self.name)
    }

    /// Whether the catalog node `node` holds instances of this namespace.
    pub fn owns_node(&self, node: &str) -> bool {
        node.strip_prefix(NODE_PREFIX)
            .and_then(|rest| rest.strip_prefix(self.namespace.as_str()))
            .is_some_and(|rest| rest.starts_with('@'))
    }
}

/// Which instance of a service a request is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceKey {
    pub service: ServiceKey,
    /// `clusterName` (`DEFAULT` when absent).
    pub cluster: String,
    /// An IP address or a host name.
    pub ip: String,
    pub port: u16,
}

impl InstanceKey {
    /// From the service's parameters plus `ip`, `port` and `clusterName`.
    pub fn from_params(params: &Params) -> Result<Self, NacosError> {
        let service = ServiceKey::from_params(params)?;
        let ip = params.required("ip")?;
        let port = params
            .number::<u16>("port")?
            .ok_or_else(|| NacosError::required("port"))?;
        let cluster = params.text("clusterName").unwrap_or(DEFAULT_CLUSTER);
        Self::new(service, cluster, ip, port)
    }

    pub fn new(
        service: ServiceKey,
        cluster: &str,
        ip: &str,
        port: u16,
    ) -> Result<Self, NacosError> {
        if !valid_cluster(cluster) {
            return Err(NacosError::bad_request(format!(
                "cluster name can only have these characters: 0-9a-zA-Z-, current: {cluster}"
            )));
        }
        if ip.parse::<IpAddr>().is_err() && !valid_host_name(ip) {
            return Err(NacosError::bad_request(format!(
                "Param 'ip' is not an IP address or host name: {ip:?}"
            )));
        }
        Ok(Self {
            service,
            cluster: cluster.to_owned(),
            ip: ip.to_owned(),
            port,
        })
    }

    /// Nacos's default instance id, which is also the catalog's service id.
    pub fn id(&self) -> String {
        format!(
            "{}#{}#{}#{}",
            self.ip,
            self.port,
            self.cluster,
            self.service.grouped()
        )
    }

    /// The catalog node that holds the instance.
    pub fn node(&self) -> String {
        format!("{NODE_PREFIX}{}@{}", self.service.namespace, self.ip)
    }

    /// The id of the instance's health check in the catalog.
    pub fn check_id(&self) -> String {
        check_id_of(&self.id())
    }
}

/// The id of the health check of the instance whose id is `instance_id`.
pub fn check_id_of(instance_id: &str) -> String {
    format!("service:{instance_id}")
}

fn valid_cluster(cluster: &str) -> bool {
    !cluster.is_empty()
        && cluster
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn valid_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Everything a registration says about an instance.
#[derive(Clone, Debug, PartialEq)]
pub struct Registration {
    pub key: InstanceKey,
    /// 0 to 1,000,000; clients pick instances in proportion to it.
    pub weight: f64,
    /// A disabled instance is kept but never listed.
    pub enabled: bool,
    /// For a persistent instance: its health as given. An ephemeral one is
    /// healthy on registration and stays so while it beats.
    pub healthy: bool,
    /// Kept alive by beats (true), or registered until deregistered (false).
    pub ephemeral: bool,
    pub metadata: BTreeMap<String, String>,
}

impl Registration {
    /// A registration (or update) from the request's parameters.
    pub fn from_params(params: &Params) -> Result<Self, NacosError> {
        let key = InstanceKey::from_params(params)?;
        let weight = params.number::<f64>("weight")?.unwrap_or(1.0);
        if !(0.0..=MAX_WEIGHT).contains(&weight) {
            return Err(NacosError::bad_request(format!(
                "instance format invalid: The weights range from 0.0 to {MAX_WEIGHT:.1}, not {weight}"
            )));
        }
        let metadata = match params.text("metadata") {
            Some(text) => parse_metadata(text)?,
            None => BTreeMap::new(),
        };
        // Older clients send `enable`, newer ones `enabled`.
        let enabled = match params.text("enabled") {
            Some(_) => params.flag("enabled", true)?,
            None => params.flag("enable", true)?,
        };
        Ok(Self {
            key,
            weight,
            enabled,
            healthy: params.flag("healthy", true)?,
            ephemeral: params.flag("ephemeral", true)?,
            metadata,
        })
    }

    /// The instance's timers: the configured ones unless its metadata
    /// overrides them, as Nacos allows.
    pub fn timers(&self, config: &NacosConfig) -> Result<Timers, NacosError> {
        timers_of(&self.metadata, config)
    }

    /// The catalog records of this instance; refused if its metadata sets
    /// timers that make no sense.
    pub fn to_catalog(&self, config: &NacosConfig) -> Result<(Service, Check), NacosError> {
        let id = self.key.id();
        let service = Service {
            id: id.clone(),
            name: self.key.service.grouped(),
            address: self.key.ip.clone(),
            port: self.key.port,
            tags: vec![
                format!("{TAG_CLUSTER}{}", self.key.cluster),
                format!("{TAG_WEIGHT}{}", self.weight),
                format!("{TAG_ENABLED}{}", self.enabled),
                format!("{TAG_EPHEMERAL}{}", self.ephemeral),
            ],
            meta: self.metadata.clone(),
            weights: Weights {
                // Consul's weights are whole numbers of at least 1.
                passing: (self.weight.round() as u32).max(1),
                warning: 1,
            },
            ..Service::default()
        };
        let definition = if self.ephemeral {
            let timers = self.timers(config)?;
            CheckDefinition {
                kind: CheckKind::Ttl {
                    ttl_ms: timers.beat_timeout.as_millis() as u64,
                },
                deregister_critical_after_ms: Some(
                    timers
                        .delete_timeout
                        .saturating_sub(timers.beat_timeout)
                        .as_millis() as u64,
                ),
                ..CheckDefinition::default()
            }
        } else {
            CheckDefinition::default()
        };
        let check = Check {
            node: self.key.node(),
            id: self.key.check_id(),
            name: if self.ephemeral {
                "Nacos client beat".into()
            } else {
                "Nacos persistent instance health".into()
            },
            service_id: Some(id),
            status: if self.healthy || self.ephemeral {
                CheckStatus::Passing
            } else {
                CheckStatus::Critical
            },
            definition,
            ..Check::default()
        };
        Ok((service, check))
    }
}

/// Nacos's metadata parameter: a JSON object of strings, or (older clients)
/// `k1=v1,k2=v2`.
pub fn parse_metadata(text: &str) -> Result<BTreeMap<String, String>, NacosError> {
    let invalid = || NacosError::bad_request(format!("Param 'metadata' is illegal: {text}"));
    if text.starts_with('{') {
        let value: serde_json::Map<String, Value> =
            serde_json::from_str(text).map_err(|_| invalid())?;
        return value
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                Value::Number(n) => Ok((k, n.to_string())),
                Value::Bool(b) => Ok((k, b.to_string())),
                _ => Err(invalid()),
            })
            .collect();
    }
    text.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(invalid)
        })
        .collect()
}

/// An instance's beat interval and its timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    /// How often the client is told to beat.
    pub beat_interval: Duration,
    /// Unhealthy after this long without a beat.
    pub beat_timeout: Duration,
    /// Deleted after this long without a beat.
    pub delete_timeout: Duration,
}

fn timers_of(
    metadata: &BTreeMap<String, String>,
    config: &NacosConfig,
) -> Result<Timers, NacosError> {
    let millis = |key: &str, default: Duration| -> Result<Duration, NacosError> {
        match metadata.get(key) {
            None => Ok(default),
            Some(text) => text
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis)
                .ok_or_else(|| {
                    NacosError::bad_request(format!(
                        "metadata '{key}' must be a positive number of milliseconds, not {text:?}"
                    ))
                }),
        }
    };
    let timers = Timers {
        beat_interval: millis(META_BEAT_INTERVAL, config.beat_interval)?,
        beat_timeout: millis(META_BEAT_TIMEOUT, config.beat_timeout)?,
        delete_timeout: millis(META_DELETE_TIMEOUT, config.delete_timeout)?,
    };
    if timers.delete_timeout < timers.beat_timeout {
        return Err(NacosError::bad_request(format!(
            "metadata '{META_DELETE_TIMEOUT}' ({:?}) must not be below '{META_BEAT_TIMEOUT}' ({:?})",
            timers.delete_timeout, timers.beat_timeout
        )));
    }
    Ok(timers)
}

/// A Nacos instance as read back from the catalog.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredInstance {
    /// `<ip>#<port>#<cluster>#<group>@@<service>`.
    pub id: String,
    pub ip: String,
    pub port: u16,
    pub cluster: String,
    /// `<group>@@<service>`.
    pub grouped_service: String,
    pub weight: f64,
    pub enabled: bool,
    pub ephemeral: bool,
    /// Whether its checks (and its node's) are not critical.
    pub healthy: bool,
    pub metadata: BTreeMap<String, String>,
    pub timers: Timers,
}

impl StoredInstance {
    /// The Nacos instance a catalog instance holds; `None` for one that was
    /// not registered through the Nacos API (it has no cluster tag).
    pub fn from_catalog(instance: &ServiceInstance<'_>, config: &NacosConfig) -> Option<Self> {
        let service = instance.service;
        let tag = |prefix: &str| {
            service
                .tags
                .iter()
                .find_map(|t| t.strip_prefix(prefix))
                .map(str::to_owned)
        };
        let cluster = tag(TAG_CLUSTER)?;
        let flag = |prefix: &str| tag(prefix).is_none_or(|v| v == "true");
        let default_timers = Timers {
            beat_interval: config.beat_interval,
            beat_timeout: config.beat_timeout,
            delete_timeout: config.delete_timeout,
        };
        Some(Self {
            id: service.id.clone(),
            ip: service.address.clone(),
            port: service.port,
            cluster,
            grouped_service: service.name.clone(),
            weight: tag(TAG_WEIGHT).and_then(|w| w.parse().ok()).unwrap_or(1.0),
            enabled: flag(TAG_ENABLED),
            ephemeral: flag(TAG_EPHEMERAL),
            healthy: !instance.status().is_failing(),
            metadata: service.meta.clone(),
            timers: timers_of(&service.meta, config).unwrap_or(default_timers),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_state::catalog::Node;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn service_names_are_grouped() {
        let key = ServiceKey::from_params(&params(&[("serviceName", "svc")])).expect("valid");
        assert_eq!(key.grouped(), "DEFAULT_GROUP@@svc");
        assert!(key.owns_node("nacos-public@10.0.0.1"));
        assert!(!key.owns_node("nacos-public-2@10.0.0.1"));
        let key = ServiceKey::from_params(&params(&[
            ("serviceName", "g1@@svc"),
            ("groupName", "ignored"),
            ("namespaceId", "dev"),
        ]))
        .expect("valid");
        assert_eq!(key.group, "g1");
        assert!(key.owns_node("nacos-dev@10.0.0.1"));
        for bad in ["@@svc", "a@@b@@c", "a\nb"] {
            assert!(ServiceKey::from_params(&params(&[("serviceName", bad)])).is_err());
        }
        assert!(ServiceKey::from_params(&params(&[])).is_err());
    }

    #[test]
    fn a_registration_round_trips_through_the_catalog() {
        let registration = Registration::from_params(&params(&[
            ("serviceName", "svc"),
            ("ip", "10.0.0.1"),
            ("port", "8080"),
            ("clusterName", "c1"),
            ("weight", "2.5"),
            ("metadata", r#"{"zone":"a","v":2}"#),
        ]))
        .expect("valid");
        let config = NacosConfig::default();
        let (service, check) = registration.to_catalog(&config).expect("records");
        assert_eq!(service.id, "10.0.0.1#8080#c1#DEFAULT_GROUP@@svc");
        assert_eq!(check.definition.kind, CheckKind::Ttl { ttl_ms: 15_000 });
        assert_eq!(check.definition.deregister_critical_after_ms, Some(15_000));
        let node = Node {
            name: registration.key.node(),
            ..Node::default()
        };
        let stored = StoredInstance::from_catalog(
            &ServiceInstance {
                node: &node,
                service: &service,
                checks: vec![&check],
            },
            &config,
        )
        .expect("a Nacos instance");
        assert_eq!(stored.cluster, "c1");
        assert_eq!(stored.weight, 2.5);
        assert!(stored.healthy && stored.enabled && stored.ephemeral);
        assert_eq!(stored.metadata.get("v").map(String::as_str), Some("2"));
    }

    #[test]
    fn bad_registrations_are_refused() {
        let base = [("serviceName", "svc"), ("ip", "10.0.0.1"), ("port", "80")];
        let with = |extra: (&str, &str)| {
            let mut pairs = base.to_vec();
            pairs.push(extra);
            Registration::from_params(&params(&pairs))
                .and_then(|r| r.to_catalog(&NacosConfig::default()))
        };
        assert!(with(("weight", "-1")).is_err());
        assert!(with(("port", "70000")).is_err());
        assert!(with(("clusterName", "bad name")).is_err());
        assert!(with(("ip", "not an ip")).is_err());
        assert!(with(("metadata", "[1]")).is_err());
        assert!(with(("metadata", "preserved.heart.beat.timeout=0")).is_err());
        assert!(with(("ephemeral", "maybe")).is_err());
        assert!(with(("metadata", "preserved.ip.delete.timeout=1000")).is_err());
        assert!(with(("metadata", "a=1,b=2")).is_ok());
    }
}
