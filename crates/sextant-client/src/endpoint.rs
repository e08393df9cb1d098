//! A discovered instance of a service, as the watch stream reports it.

use std::collections::BTreeMap;

use sextant_proto::v1;

/// Health of an instance as the registry's checks see it.
///
/// ```
/// # fn f(e: &sextant_client::Endpoint) {
/// if e.health == sextant_client::Health::Warning {
///     println!("{} is degraded", e.id);
/// }
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Health {
    /// Every check passes.
    Passing,
    /// Some check warns; the instance still serves.
    Warning,
    /// Some check is critical.
    Critical,
    /// The server did not say.
    Unknown,
}

impl From<i32> for Health {
    fn from(value: i32) -> Health {
        match v1::HealthStatus::try_from(value) {
            Ok(v1::HealthStatus::Passing) => Health::Passing,
            Ok(v1::HealthStatus::Warning) => Health::Warning,
            Ok(v1::HealthStatus::Critical) => Health::Critical,
            _ => Health::Unknown,
        }
    }
}

/// One instance of a service: where to call it and what it advertises.
///
/// ```
/// use sextant_client::{Endpoint, Health};
///
/// let e = Endpoint::new("user-1", "user-service", "127.0.0.1", 8080);
/// assert_eq!(e.authority(), "127.0.0.1:8080");
/// assert_eq!(e.health, Health::Passing);
/// assert_eq!(e.weight, 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The instance id, unique within its node.
    pub id: String,
    /// The registry node the instance is registered on.
    pub node: String,
    /// The service name.
    pub service: String,
    /// Host name or IP address.
    pub address: String,
    /// Port.
    pub port: u16,
    /// Tags as registered.
    pub tags: Vec<String>,
    /// Metadata as registered.
    pub meta: BTreeMap<String, String>,
    /// Relative weight for weighted balancing, at least 1.
    pub weight: u32,
    /// Health as of the last event.
    pub health: Health,
    /// The registry revision that last changed this instance.
    pub revision: u64,
}

impl Endpoint {
    /// A passing endpoint of weight 1 with no tags, meta or node (for tests
    /// and hand-built views).
    ///
    /// ```
    /// let e = sextant_client::Endpoint::new("a", "svc", "10.0.0.1", 80);
    /// assert_eq!(e.key(), "/a");
    /// ```
    pub fn new(id: &str, service: &str, address: &str, port: u16) -> Endpoint {
        Endpoint {
            id: id.to_owned(),
            node: String::new(),
            service: service.to_owned(),
            address: address.to_owned(),
            port,
            tags: Vec::new(),
            meta: BTreeMap::new(),
            weight: 1,
            health: Health::Passing,
            revision: 0,
        }
    }

    /// `node/id`: what identifies an instance across the whole registry
    /// (ids are unique per node only).
    ///
    /// ```
    /// let mut e = sextant_client::Endpoint::new("a", "svc", "10.0.0.1", 80);
    /// e.node = "s1".into();
    /// assert_eq!(e.key(), "s1/a");
    /// ```
    pub fn key(&self) -> String {
        format!("{}/{}", self.node, self.id)
    }

    /// `address:port`, with brackets around an IPv6 address.
    ///
    /// ```
    /// let e = sextant_client::Endpoint::new("a", "svc", "::1", 80);
    /// assert_eq!(e.authority(), "[::1]:80");
    /// ```
    pub fn authority(&self) -> String {
        if self.address.contains(':') && !self.address.starts_with('[') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }

    /// `http://address:port`: the base URI for HTTP or plaintext gRPC.
    ///
    /// ```
    /// let e = sextant_client::Endpoint::new("a", "svc", "10.0.0.1", 80);
    /// assert_eq!(e.http_uri(), "http://10.0.0.1:80");
    /// ```
    pub fn http_uri(&self) -> String {
        format!("http://{}", self.authority())
    }

    /// Converts the server's view of an instance; `None` if it carries no instance.
    pub(crate) fn from_state(state: v1::InstanceState) -> Option<Endpoint> {
        let health = Health::from(state.status);
        let instance = state.instance?;
        Some(Endpoint {
            id: instance.id,
            node: state.node,
            service: instance.service,
            address: instance.address,
            port: u16::try_from(instance.port).unwrap_or(0),
            tags: instance.tags,
            meta: instance.meta.into_iter().collect(),
            weight: instance.weight.max(1),
            health,
            revision: state.revision,
        })
    }
}
