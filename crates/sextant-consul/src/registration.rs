//! Consul's registration bodies → the catalog's records, validated before
//! anything is written: a body refused here stores nothing.
//!
//! - `PUT /v1/agent/service/register`: a service with `Check` / `Checks`;
//! - `PUT /v1/agent/check/register`: one check, optionally of a service;
//! - `PUT /v1/catalog/register`: a node, optionally a service and checks
//!   that are recorded but never run.

use std::time::Duration;

use sextant_state::catalog::{
    Check, CheckDefinition, CheckKind, CheckStatus, HttpProbe, Service, Weights,
};

use super::consul_json::{parse_object, DecodeError, Fields};

/// Consul's default check timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Probing faster than this is refused rather than silently honoured.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// A decoded check and whether its initial status was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckRegistration {
    /// `node` is left empty: the handler knows which node it writes to.
    pub check: Check,
    /// Without `Status`, a check that exists already keeps its status (a
    /// re-registration must not flap it to critical).
    pub status_given: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRegistration {
    pub service: Service,
    pub checks: Vec<CheckRegistration>,
}

/// The body of `PUT /v1/agent/service/register`.
pub fn agent_service(body: &[u8]) -> Result<ServiceRegistration, DecodeError> {
    let value = parse_object(body)?;
    let fields = Fields::of(&value, "")?;
    let service = service(&fields, "Name")?;
    let mut checks = Vec::new();
    let single = fields.object("Check")?;
    let many = fields.objects("Checks")?;
    let numbered = single.is_some() as usize + many.len() > 1;
    for (i, check_fields) in single.into_iter().chain(many).enumerate() {
        let default_id = if numbered {
            format!("service:{}:{}", service.id, i + 1)
        } else {
            format!("service:{}", service.id)
        };
        let default_name = format!("Service '{}' check", service.name);
        let mut check = probed_check(&check_fields, default_id, default_name)?;
        check.check.service_id = Some(service.id.clone());
        checks.push(check);
    }
    let mut ids: Vec<&str> = checks.iter().map(|c| c.check.id.as_str()).collect();
    ids.sort_unstable();
    if let Some(pair) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(DecodeError::new(format!(
            "duplicate check ID {:?}",
            pair[0]
        )));
    }
    Ok(ServiceRegistration { service, checks })
}

/// The body of `PUT /v1/agent/check/register`.
pub fn agent_check(body: &[u8]) -> Result<CheckRegistration, DecodeError> {
    let value = parse_object(body)?;
    let fields = Fields::of(&value, "")?;
    let name = fields
        .non_empty("Name")?
        .ok_or_else(|| DecodeError::new("Missing check name"))?;
    let id = fields
        .non_empty("CheckID")?
        .or(fields.non_empty("ID")?)
        .unwrap_or_else(|| name.clone());
    let mut check = probed_check(&fields, id, name)?;
    check.check.service_id = fields.non_empty("ServiceID")?;
    Ok(check)
}

/// A service object: `name_field` is `Name` for the agent API and
/// `Service` for the catalog API (which also takes `Name`).
fn service(fields: &Fields<'_>, name_field: &str) -> Result<Service, DecodeError> {
    let name = fields
        .non_empty(name_field)?
        .or(fields.non_empty("Name")?)
        .ok_or_else(|| DecodeError::new("Missing service name"))?;
    let id = fields.non_empty("ID")?.unwrap_or_else(|| name.clone());
    let port = match fields.i64("Port")? {
        None => 0,
        Some(port) => u16::try_from(port).map_err(|_| {
            DecodeError::new(format!("Invalid service port {port}: must be 0 to 65535"))
        })?,
    };
    let weights = match fields.object("Weights")? {
        None => Weights::default(),
        Some(w) => {
            let passing = w.count("Passing")?;
            let warning = match w.get("Warning") {
                None => 1,
                Some(_) => w.count("Warning")?,
            };
            if passing == 0 {
                return Err(DecodeError::new("Passing weight must be greater than 0"));
            }
            Weights { passing, warning }
        }
    };
    Ok(Service {
        id,
        name,
        address: fields.string("Address")?.unwrap_or_default(),
        port,
        tags: fields.strings("Tags")?,
        meta: fields.string_map("Meta")?,
        weights,
        enable_tag_override: fields.bool("EnableTagOverride")?.unwrap_or(false),
        ..Service::default()
    })
}

/// A check that a server runs (HTTP, TCP, gRPC or TTL).
fn probed_check(
    fields: &Fields<'_>,
    default_id: String,
    default_name: String,
) -> Result<CheckRegistration, DecodeError> {
    let id = fields
        .non_empty("CheckID")?
        .or(fields.non_empty("ID")?)
        .unwrap_or(default_id);
    let name = fields.non_empty("Name")?.unwrap_or(default_name);
    let kind = check_kind(fields)?;
    let interval = fields.duration("Interval")?.unwrap_or_default();
    let probed = !matches!(kind, CheckKind::Ttl { .. });
    if probed && interval.is_zero() {
        return Err(DecodeError::new(
            "Interval must be > 0 for HTTP, TCP and gRPC checks",
        ));
    }
    if probed && interval < MIN_INTERVAL {
        return Err(DecodeError::new(format!(
            "Interval {} is below the minimum of {}",
            super::go_duration::format(interval),
            super::go_duration::format(MIN_INTERVAL)
        )));
    }
    let timeout = fields.duration("Timeout")?.unwrap_or(DEFAULT_TIMEOUT);
    let timeout = if timeout.is_zero() {
        DEFAULT_TIMEOUT
    } else {
        timeout
    };
    let status = initial_status(fields)?;
    let definition = CheckDefinition {
        kind,
        interval_ms: millis(interval),
        timeout_ms: millis(timeout),
        deregister_critical_after_ms: fields
            .duration("DeregisterCriticalServiceAfter")?
            .filter(|d| !d.is_zero())
            .map(millis),
        success_before_passing: fields.count("SuccessBeforePassing")?,
        failures_before_warning: fields.count("FailuresBeforeWarning")?,
        failures_before_critical: fields.count("FailuresBeforeCritical")?,
    };
    Ok(CheckRegistration {
        check: Check {
            id,
            name,
            status: status.unwrap_or(CheckStatus::Critical),
            notes: fields.string("Notes")?.unwrap_or_default(),
            definition,
            ..Check::default()
        },
        status_given: status.is_some(),
    })
}

fn initial_status(fields: &Fields<'_>) -> Result<Option<CheckStatus>, DecodeError> {
    match fields.non_empty("Status")? {
        None => Ok(None),
        Some(text) => match text.parse::<CheckStatus>() {
            Ok(CheckStatus::Maintenance) | Err(_) => Err(DecodeError::new(format!(
                "Invalid check status {text:?}: must be passing, warning or critical"
            ))),
            Ok(status) => Ok(Some(status)),
        },
    }
}

/// Exactly one of `HTTP`, `TCP`, `GRPC` or `TTL`.
fn check_kind(fields: &Fields<'_>) -> Result<CheckKind, DecodeError> {
    let mut kinds = Vec::new();
    if let Some(url) = fields.non_empty("HTTP")? {
        kinds.push(CheckKind::Http(Box::new(HttpProbe {
            url,
            method: fields
                .non_empty("Method")?
                .unwrap_or_else(|| "GET".into())
                .to_ascii_uppercase(),
            headers: fields.string_lists("Header")?,
            body: fields.string("Body")?.unwrap_or_default(),
            tls_skip_verify: fields.bool("TLSSkipVerify")?.unwrap_or(false),
        })));
    }
    if let Some(address) = fields.non_empty("TCP")? {
        kinds.push(CheckKind::Tcp { address });
    }
    if let Some(target) = fields.non_empty("GRPC")? {
        kinds.push(CheckKind::Grpc {
            target,
            use_tls: fields.bool("GRPCUseTLS")?.unwrap_or(false),
        });
    }
    if let Some(ttl) = fields.duration("TTL")? {
        if ttl.is_zero() {
            return Err(DecodeError::new("TTL must be > 0"));
        }
        kinds.push(CheckKind::Ttl {
            ttl_ms: millis(ttl),
        });
    }
    match kinds.len() {
        1 => Ok(kinds.remove(0)),
        0 => {
            let unsupported = [
                ("Args", "script"),
                ("ScriptArgs", "script"),
                ("Script", "script"),
                ("DockerContainerID", "docker"),
                ("H2PING", "h2ping"),
                ("UDP", "udp"),
                ("AliasService", "alias"),
                ("AliasNode", "alias"),
                ("OSService", "os_service"),
            ];
            match unsupported.iter().find(|(field, _)| fields.has(field)) {
                Some((_, kind)) => Err(DecodeError::new(format!(
                    "unsupported check kind {kind:?}: Sextant runs HTTP, TCP, gRPC and TTL checks"
                ))),
                None => Err(DecodeError::new(
                    "unknown check kind: a check needs one of HTTP, TCP, GRPC or TTL",
                )),
            }
        }
        _ => Err(DecodeError::new(
            "a check may have only one of HTTP, TCP, GRPC or TTL",
        )),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The body of `PUT /v1/catalog/register`.
pub struct CatalogRegistration {
    pub node: String,
    pub address: String,
    pub node_meta: std::collections::BTreeMap<String, String>,
    pub service: Option<Service>,
    /// Recorded as they are (`External`): the catalog API runs no checks.
    pub checks: Vec<Check>,
}

pub fn catalog(body: &[u8]) -> Result<CatalogRegistration, DecodeError> {
    let value = parse_object(body)?;
    let fields = Fields::of(&value, "")?;
    let node = fields
        .non_empty("Node")?
        .ok_or_else(|| DecodeError::new("Must provide node"))?;
    let address = fields
        .non_empty("Address")?
        .ok_or_else(|| DecodeError::new("Must provide address"))?;
    let service = fields
        .object("Service")?
        .map(|s| service(&s, "Service"))
        .transpose()?;
    let mut checks = Vec::new();
    for check in fields
        .object("Check")?
        .into_iter()
        .chain(fields.objects("Checks")?)
    {
        let id = check
            .non_empty("CheckID")?
            .or(check.non_empty("ID")?)
            .or(check.non_empty("Name")?)
            .ok_or_else(|| DecodeError::new("Missing check ID"))?;
        let service_id = check.non_empty("ServiceID")?;
        if let Some(sid) = &service_id {
            if service.as_ref().is_none_or(|s| s.id != *sid) {
                return Err(DecodeError::new(format!(
                    "check {id:?} names service {sid:?}, which is not the registered service"
                )));
            }
        }
        checks.push(Check {
            node: node.clone(),
            name: check.non_empty("Name")?.unwrap_or_else(|| id.clone()),
            id,
            service_id,
            status: initial_status(&check)?.unwrap_or(CheckStatus::Critical),
            output: check.string("Output")?.unwrap_or_default(),
            notes: check.string("Notes")?.unwrap_or_default(),
            definition: CheckDefinition::default(),
            ..Check::default()
        });
    }
    Ok(CatalogRegistration {
        node,
        address,
        node_meta: fields.string_map("NodeMeta")?,
        service,
        checks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON the Go client sends for the seed article's registration.
    const SEED_GO_BODY: &[u8] = br#"{"Name":"user-service","Port":8080,"Address":"127.0.0.1","Check":{"Interval":"10s","Timeout":"5s","HTTP":"http://127.0.0.1:8080/health","DeregisterCriticalServiceAfter":"30s"}}"#;

    #[test]
    fn the_seed_go_snippet_decodes() {
        let reg = agent_service(SEED_GO_BODY).expect("valid");
        assert_eq!(reg.service.id, "user-service");
        assert_eq!(reg.service.port, 8080);
        assert_eq!(reg.service.address, "127.0.0.1");
        assert_eq!(reg.checks.len(), 1);
        let check = &reg.checks[0].check;
        assert_eq!(check.id, "service:user-service");
        assert_eq!(check.service_id.as_deref(), Some("user-service"));
        assert_eq!(check.status, CheckStatus::Critical);
        assert!(!reg.checks[0].status_given);
        assert_eq!(check.definition.interval_ms, 10_000);
        assert_eq!(check.definition.timeout_ms, 5_000);
        assert_eq!(check.definition.deregister_critical_after_ms, Some(30_000));
        assert!(matches!(&check.definition.kind, CheckKind::Http(http)
            if http.url == "http://127.0.0.1:8080/health" && http.method == "GET"));
    }

    #[test]
    fn py_consul_lowercase_keys_decode() {
        let body = br#"{"name":"web","id":"web-1","port":9000,"tags":["a"],"meta":{"v":"1"},
            "checks":[{"ttl":"30s"},{"tcp":"127.0.0.1:9000","interval":"1s"}]}"#;
        let reg = agent_service(body).expect("valid");
        assert_eq!(reg.service.id, "web-1");
        assert_eq!(reg.service.tags, vec!["a".to_string()]);
        let ids: Vec<&str> = reg.checks.iter().map(|c| c.check.id.as_str()).collect();
        assert_eq!(ids, vec!["service:web-1:1", "service:web-1:2"]);
        assert_eq!(
            reg.checks[0].check.definition.kind,
            CheckKind::Ttl { ttl_ms: 30_000 }
        );
    }

    #[test]
    fn malformed_registrations_say_why() {
        let cases: &[(&[u8], &str)] = &[
            (br#"{"Port":80}"#, "Missing service name"),
            (br#"{"Name":"a","Port":-1}"#, "Invalid service port"),
            (br#"{"Name":"a","Port":70000}"#, "Invalid service port"),
            (
                br#"{"Name":"a","Check":{"HTTP":"http://x","Interval":"often"}}"#,
                "invalid duration",
            ),
            (
                br#"{"Name":"a","Check":{"Args":["true"],"Interval":"1s"}}"#,
                "unsupported check kind",
            ),
            (
                br#"{"Name":"a","Check":{"Interval":"1s"}}"#,
                "unknown check kind",
            ),
            (
                br#"{"Name":"a","Check":{"HTTP":"http://x"}}"#,
                "Interval must be > 0",
            ),
            (
                br#"{"Name":"a","Check":{"TTL":"1s","Status":"fine"}}"#,
                "Invalid check status",
            ),
            (br#"[]"#, "JSON object"),
        ];
        for (body, reason) in cases {
            let err = agent_service(body).expect_err("must be refused");
            assert!(
                err.0.contains(reason),
                "{} -> {err}, expected {reason:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn an_agent_check_needs_a_name_and_defaults_its_id() {
        assert!(agent_check(br#"{"ttl":"5s"}"#).is_err());
        let reg = agent_check(br#"{"name":"mem","ttl":"5s","serviceid":"web","Status":"passing"}"#)
            .expect("valid");
        assert_eq!(reg.check.id, "mem");
        assert_eq!(reg.check.service_id.as_deref(), Some("web"));
        assert_eq!(reg.check.status, CheckStatus::Passing);
        assert!(reg.status_given);
    }

    #[test]
    fn a_catalog_registration_takes_the_service_name_from_service() {
        let reg = catalog(br#"{"node":"n1","address":"10.0.0.1","service":{"service":"db","port":5432,"tags":["t"]}}"#)
            .expect("valid");
        let service = reg.service.expect("a service");
        assert_eq!(
            (service.name.as_str(), service.id.as_str(), service.port),
            ("db", "db", 5432)
        );
        assert!(catalog(br#"{"address":"10.0.0.1"}"#).is_err());
    }
}
