//! Health checks: their definition (what to probe, how often, how to damp
//! flapping), their last result, and how results combine.
//!
//! The definition is replicated so that whichever server owns a check can
//! probe it; only results that change something are written back.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::Stamped;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CheckStatus {
    Passing,
    Warning,
    /// Consul starts a check critical until its first result, unless told otherwise.
    #[default]
    Critical,
    /// Taken out of service on purpose; worse than critical when aggregated.
    Maintenance,
}

impl CheckStatus {
    /// Consul's name for the status.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Passing => "passing",
            CheckStatus::Warning => "warning",
            CheckStatus::Critical => "critical",
            CheckStatus::Maintenance => "maintenance",
        }
    }

    /// Whether the check counts as down: sessions depending on it end, and
    /// none can be created on it. Maintenance is a critical check in Consul.
    pub fn is_failing(self) -> bool {
        matches!(self, CheckStatus::Critical | CheckStatus::Maintenance)
    }

    fn severity(self) -> u8 {
        match self {
            CheckStatus::Passing => 0,
            CheckStatus::Warning => 1,
            CheckStatus::Critical => 2,
            CheckStatus::Maintenance => 3,
        }
    }

    /// The health of something with these checks: the worst of them
    /// (maintenance > critical > warning > passing); passing with none.
    pub fn aggregate(statuses: impl IntoIterator<Item = CheckStatus>) -> CheckStatus {
        statuses
            .into_iter()
            .max_by_key(|s| s.severity())
            .unwrap_or(CheckStatus::Passing)
    }
}

impl fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(thiserror::Error, Clone, Debug, PartialEq, Eq)]
#[error("unknown check status {0:?} (expected passing, warning, critical or maintenance)")]
pub struct UnknownCheckStatus(pub String);

impl FromStr for CheckStatus {
    type Err = UnknownCheckStatus;

    /// Consul's lowercase names; case is forgiven.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            CheckStatus::Passing,
            CheckStatus::Warning,
            CheckStatus::Critical,
            CheckStatus::Maintenance,
        ]
        .into_iter()
        .find(|status| status.as_str().eq_ignore_ascii_case(s))
        .ok_or_else(|| UnknownCheckStatus(s.to_owned()))
    }
}

/// What a check probes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub enum CheckKind {
    /// 2xx passing, 429 warning, anything else critical. Boxed: inline, its
    /// five fields made every check 72 bytes larger, HTTP or not, and a
    /// registry holds a check per instance (and its owner a copy of the
    /// definition). Encoded exactly as the struct variant it replaced.
    Http(Box<HttpProbe>),
    /// Passing when a TCP connection opens.
    Tcp { address: String },
    /// The standard gRPC health protocol; only SERVING passes.
    Grpc { target: String, use_tls: bool },
    /// Critical unless its owner reports within `ttl_ms`.
    Ttl { ttl_ms: u64 },
    /// Nothing is probed: the status is whatever was last written, by the
    /// servers (node liveness such as Consul's `serfHealth`, maintenance mode)
    /// or through the low-level catalog API.
    #[default]
    External,
}

impl CheckKind {
    /// Consul's `Type` field for the check.
    pub fn type_name(&self) -> &'static str {
        match self {
            CheckKind::Http(_) => "http",
            CheckKind::Tcp { .. } => "tcp",
            CheckKind::Grpc { .. } => "grpc",
            CheckKind::Ttl { .. } => "ttl",
            CheckKind::External => "",
        }
    }
}

/// The request an HTTP check sends.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct HttpProbe {
    pub url: String,
    pub method: String,
    pub headers: BTreeMap<String, Vec<String>>,
    pub body: String,
    pub tls_skip_verify: bool,
}

/// How and how often a check runs; read by the server that owns the check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct CheckDefinition {
    pub kind: CheckKind,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    /// Deregister the check's service once the check has been critical this long.
    pub deregister_critical_after_ms: Option<u64>,
    /// Consecutive successes needed to turn passing (flap damping).
    pub success_before_passing: u32,
    /// Consecutive failures needed to turn warning.
    pub failures_before_warning: u32,
    /// Consecutive failures needed to turn critical.
    pub failures_before_critical: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Check {
    pub node: String,
    /// Unique on its node.
    pub id: String,
    pub name: String,
    /// The service instance on `node` it belongs to; `None` for a node-level check.
    pub service_id: Option<String>,
    pub status: CheckStatus,
    pub output: String,
    pub notes: String,
    pub definition: CheckDefinition,
    /// Set by the state machine; whatever a command carries here is ignored.
    pub create_index: u64,
    /// Set by the state machine; moves only when the check actually changes.
    pub modify_index: u64,
}

impl Stamped for Check {
    fn stamps(&self) -> (u64, u64) {
        (self.create_index, self.modify_index)
    }

    fn set_stamps(&mut self, create_index: u64, modify_index: u64) {
        self.create_index = create_index;
        self.modify_index = modify_index;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip() {
        for status in [
            CheckStatus::Passing,
            CheckStatus::Warning,
            CheckStatus::Critical,
            CheckStatus::Maintenance,
        ] {
            assert_eq!(status.as_str().parse::<CheckStatus>(), Ok(status));
        }
        assert_eq!("PASSING".parse::<CheckStatus>(), Ok(CheckStatus::Passing));
        assert!("any".parse::<CheckStatus>().is_err());
    }

    #[test]
    fn an_http_check_encodes_as_the_struct_variant_it_was() {
        // The variant as it was declared before it was boxed.
        #[derive(Serialize)]
        enum Before {
            Http {
                url: String,
                method: String,
                headers: BTreeMap<String, Vec<String>>,
                body: String,
                tls_skip_verify: bool,
            },
        }
        let headers = BTreeMap::from([("A".to_owned(), vec!["b".to_owned()])]);
        let before = Before::Http {
            url: "http://x/health".into(),
            method: "GET".into(),
            headers: headers.clone(),
            body: "ping".into(),
            tls_skip_verify: true,
        };
        let now = CheckKind::Http(Box::new(HttpProbe {
            url: "http://x/health".into(),
            method: "GET".into(),
            headers,
            body: "ping".into(),
            tls_skip_verify: true,
        }));
        // Http is the first variant of both, so the variant indexes agree too.
        assert_eq!(
            bincode::serialize(&now).expect("encodes"),
            bincode::serialize(&before).expect("encodes")
        );
    }

    #[test]
    fn aggregate_takes_the_worst() {
        use CheckStatus::*;
        assert_eq!(CheckStatus::aggregate([]), Passing);
        assert_eq!(CheckStatus::aggregate([Passing, Warning]), Warning);
        assert_eq!(
            CheckStatus::aggregate([Critical, Warning, Passing]),
            Critical
        );
        assert_eq!(CheckStatus::aggregate([Critical, Maintenance]), Maintenance);
    }
}
