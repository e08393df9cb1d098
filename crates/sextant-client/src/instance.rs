//! What a service registers about itself: the instance and how its health is judged.

use std::collections::BTreeMap;
use std::time::Duration;

use sextant_proto::v1;

use crate::Error;

/// One health check the registry runs against an instance.
///
/// ```
/// use std::time::Duration;
/// use sextant_client::HealthCheck;
///
/// let check = HealthCheck::http("http://127.0.0.1:8080/health", Duration::from_secs(1))
///     .timeout(Duration::from_millis(500))
///     .deregister_critical_after(Duration::from_secs(30));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    kind: CheckKind,
    interval: Duration,
    timeout: Option<Duration>,
    deregister_critical_after: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum CheckKind {
    Http { url: String },
    Tcp { address: String },
    Grpc { target: String },
}

impl HealthCheck {
    /// A GET of `url` every `interval`; 2xx is passing, 429 warning, anything else critical.
    ///
    /// ```
    /// let c = sextant_client::HealthCheck::http("http://10.0.0.1/health", std::time::Duration::from_secs(5));
    /// ```
    pub fn http(url: impl Into<String>, interval: Duration) -> HealthCheck {
        HealthCheck::with_kind(CheckKind::Http { url: url.into() }, interval)
    }

    /// A TCP connect to `address` (`host:port`) every `interval`.
    ///
    /// ```
    /// let c = sextant_client::HealthCheck::tcp("10.0.0.1:80", std::time::Duration::from_secs(5));
    /// ```
    pub fn tcp(address: impl Into<String>, interval: Duration) -> HealthCheck {
        HealthCheck::with_kind(
            CheckKind::Tcp {
                address: address.into(),
            },
            interval,
        )
    }

    /// A `grpc.health.v1` check of `target` (`host:port[/service]`) every `interval`.
    ///
    /// ```
    /// let c = sextant_client::HealthCheck::grpc("10.0.0.1:50051", std::time::Duration::from_secs(5));
    /// ```
    pub fn grpc(target: impl Into<String>, interval: Duration) -> HealthCheck {
        HealthCheck::with_kind(
            CheckKind::Grpc {
                target: target.into(),
            },
            interval,
        )
    }

    fn with_kind(kind: CheckKind, interval: Duration) -> HealthCheck {
        HealthCheck {
            kind,
            interval,
            timeout: None,
            deregister_critical_after: None,
        }
    }

    /// How long one probe may take (the server's default otherwise).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let c = sextant_client::HealthCheck::tcp("h:1", Duration::from_secs(5)).timeout(Duration::from_secs(1));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> HealthCheck {
        self.timeout = Some(timeout);
        self
    }

    /// Remove the instance once this check has been critical this long.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let c = sextant_client::HealthCheck::tcp("h:1", Duration::from_secs(5))
    ///     .deregister_critical_after(Duration::from_secs(60));
    /// ```
    pub fn deregister_critical_after(mut self, after: Duration) -> HealthCheck {
        self.deregister_critical_after = Some(after);
        self
    }

    fn to_proto(&self) -> v1::Check {
        let kind = match &self.kind {
            CheckKind::Http { url } => v1::check::Kind::Http(v1::HttpCheck {
                url: url.clone(),
                method: String::from("GET"),
            }),
            CheckKind::Tcp { address } => v1::check::Kind::Tcp(v1::TcpCheck {
                address: address.clone(),
            }),
            CheckKind::Grpc { target } => v1::check::Kind::Grpc(v1::GrpcCheck {
                target: target.clone(),
            }),
        };
        v1::Check {
            kind: Some(kind),
            interval_ms: millis(self.interval),
            timeout_ms: self.timeout.map(millis).unwrap_or(0),
            deregister_critical_after_ms: self.deregister_critical_after.map(millis).unwrap_or(0),
        }
    }
}

/// An instance to register: where it listens, what it advertises, and how
/// the registry knows it is alive (a TTL renewed by the client, checks the
/// registry runs, or both).
///
/// ```
/// use std::time::Duration;
/// use sextant_client::{HealthCheck, Instance};
///
/// let instance = Instance::new("user-service", "127.0.0.1", 8080)
///     .id("user-service-1")
///     .tag("v1")
///     .meta("zone", "eu-1")
///     .weight(10)
///     .ttl(Duration::from_secs(10))
///     .deregister_critical_after(Duration::from_secs(10))
///     .check(HealthCheck::http("http://127.0.0.1:8080/health", Duration::from_secs(2)));
/// assert_eq!(instance.instance_id(), "user-service-1");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    id: Option<String>,
    service: String,
    address: String,
    port: u16,
    tags: Vec<String>,
    meta: BTreeMap<String, String>,
    weight: u32,
    ttl: Option<Duration>,
    deregister_critical_after: Option<Duration>,
    checks: Vec<HealthCheck>,
}

impl Instance {
    /// An instance of `service` at `address:port`, weight 1, no TTL, no checks.
    ///
    /// ```
    /// let i = sextant_client::Instance::new("svc", "10.0.0.1", 80);
    /// assert_eq!(i.instance_id(), "svc-10.0.0.1-80");
    /// ```
    pub fn new(service: impl Into<String>, address: impl Into<String>, port: u16) -> Instance {
        Instance {
            id: None,
            service: service.into(),
            address: address.into(),
            port,
            tags: Vec::new(),
            meta: BTreeMap::new(),
            weight: 1,
            ttl: None,
            deregister_critical_after: None,
            checks: Vec::new(),
        }
    }

    /// The instance id (unique per registry node); defaults to `service-address-port`.
    ///
    /// ```
    /// let i = sextant_client::Instance::new("svc", "h", 1).id("svc-a");
    /// assert_eq!(i.instance_id(), "svc-a");
    /// ```
    pub fn id(mut self, id: impl Into<String>) -> Instance {
        self.id = Some(id.into());
        self
    }

    /// Adds a tag.
    ///
    /// ```
    /// let i = sextant_client::Instance::new("svc", "h", 1).tag("primary");
    /// ```
    pub fn tag(mut self, tag: impl Into<String>) -> Instance {
        self.tags.push(tag.into());
        self
    }

    /// Sets a metadata pair.
    ///
    /// ```
    /// let i = sextant_client::Instance::new("svc", "h", 1).meta("version", "1.2.0");
    /// ```
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Instance {
        self.meta.insert(key.into(), value.into());
        self
    }

    /// Relative weight for weighted balancing (0 means 1).
    ///
    /// ```
    /// let i = sextant_client::Instance::new("svc", "h", 1).weight(5);
    /// ```
    pub fn weight(mut self, weight: u32) -> Instance {
        self.weight = weight;
        self
    }

    /// A TTL check the client's keep-alive stream renews: if the process
    /// dies, the instance goes critical one TTL later.
    ///
    /// ```
    /// let i = sextant_client::Instance::new("svc", "h", 1).ttl(std::time::Duration::from_secs(10));
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Instance {
        self.ttl = Some(ttl);
        self
    }

    /// Removes the instance once its TTL check has been critical this long.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let i = sextant_client::Instance::new("svc", "h", 1)
    ///     .ttl(Duration::from_secs(5))
    ///     .deregister_critical_after(Duration::from_secs(5));
    /// ```
    pub fn deregister_critical_after(mut self, after: Duration) -> Instance {
        self.deregister_critical_after = Some(after);
        self
    }

    /// Adds a check the registry runs.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let i = sextant_client::Instance::new("svc", "127.0.0.1", 80)
    ///     .check(sextant_client::HealthCheck::tcp("127.0.0.1:80", Duration::from_secs(1)));
    /// ```
    pub fn check(mut self, check: HealthCheck) -> Instance {
        self.checks.push(check);
        self
    }

    /// The id the instance is registered under.
    ///
    /// ```
    /// assert_eq!(sextant_client::Instance::new("a", "b", 1).instance_id(), "a-b-1");
    /// ```
    pub fn instance_id(&self) -> String {
        match &self.id {
            Some(id) => id.clone(),
            None => format!("{}-{}-{}", self.service, self.address, self.port),
        }
    }

    /// The service name.
    ///
    /// ```
    /// assert_eq!(sextant_client::Instance::new("a", "b", 1).service(), "a");
    /// ```
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The TTL, if the instance has one.
    ///
    /// ```
    /// assert_eq!(sextant_client::Instance::new("a", "b", 1).ttl_duration(), None);
    /// ```
    pub fn ttl_duration(&self) -> Option<Duration> {
        self.ttl
    }

    /// Checks what the server would refuse anyway, before any request.
    pub(crate) fn to_request(&self) -> Result<v1::RegisterRequest, Error> {
        if self.service.trim().is_empty() {
            return Err(Error::InvalidInstance("the service name is empty"));
        }
        if self.address.trim().is_empty() {
            return Err(Error::InvalidInstance("the address is empty"));
        }
        if self.port == 0 {
            return Err(Error::InvalidInstance("the port is 0"));
        }
        if self.id.as_deref().is_some_and(|id| id.trim().is_empty()) {
            return Err(Error::InvalidInstance("the instance id is empty"));
        }
        if self.ttl.is_some_and(|ttl| ttl < Duration::from_millis(1)) {
            return Err(Error::InvalidInstance("the TTL is shorter than 1 ms"));
        }
        Ok(v1::RegisterRequest {
            instance: Some(v1::Instance {
                id: self.instance_id(),
                service: self.service.clone(),
                address: self.address.clone(),
                port: u32::from(self.port),
                tags: self.tags.clone(),
                meta: self.meta.clone().into_iter().collect(),
                weight: self.weight,
            }),
            ttl_ms: self.ttl.map(millis).unwrap_or(0),
            checks: self.checks.iter().map(HealthCheck::to_proto).collect(),
            deregister_critical_after_ms: self.deregister_critical_after.map(millis).unwrap_or(0),
        })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_register_request() {
        let request = Instance::new("svc", "10.0.0.1", 8080)
            .tag("a")
            .meta("k", "v")
            .weight(3)
            .ttl(Duration::from_secs(2))
            .deregister_critical_after(Duration::from_secs(4))
            .check(HealthCheck::http(
                "http://10.0.0.1:8080/health",
                Duration::from_millis(500),
            ))
            .to_request()
            .unwrap_or_else(|e| panic!("{e}"));
        let instance = request.instance.unwrap_or_default();
        assert_eq!(instance.id, "svc-10.0.0.1-8080");
        assert_eq!(instance.weight, 3);
        assert_eq!(request.ttl_ms, 2000);
        assert_eq!(request.deregister_critical_after_ms, 4000);
        assert_eq!(request.checks.len(), 1);
        assert_eq!(request.checks[0].interval_ms, 500);
    }

    #[test]
    fn refuses_what_the_server_would_refuse() {
        for bad in [
            Instance::new("", "h", 1),
            Instance::new("s", " ", 1),
            Instance::new("s", "h", 0),
            Instance::new("s", "h", 1).id(""),
        ] {
            assert!(
                matches!(bad.to_request(), Err(Error::InvalidInstance(_))),
                "{bad:?}"
            );
        }
    }
}
