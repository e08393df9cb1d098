//! `Register` and `Deregister`: validated, then written to the catalog as
//! the Consul agent API writes (`Op::RegisterService` replacing the
//! instance's checks, `Op::DeregisterService`), and answered once the write
//! is committed and applied on this server, so the client reads its write
//! back from the server it wrote to.

use std::time::Duration;

use sextant_proto::v1::{check, Check as CheckRequest, RegisterRequest};
use sextant_state::catalog::{
    Check, CheckDefinition, CheckKind, CheckStatus, HttpProbe, Service, Weights,
};
use sextant_state::{Op, Response as Applied, StateMachine};

use super::error::NativeError;
use super::{NativeContext, NATIVE_NODE};
use sextant_core::registry::Consistency;

/// A probed check's timeout when none is given (Consul's default).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Probing faster than this is refused (the Consul API's floor too).
const MIN_INTERVAL_MS: u64 = 100;

/// The id of the TTL check a registration with `ttl_ms` carries.
pub fn ttl_check_id(instance_id: &str) -> String {
    format!("service:{instance_id}:ttl")
}

/// A request turned into the catalog records it writes. Checks leave
/// `status` critical and `node` set to [`NATIVE_NODE`].
pub fn validate(request: RegisterRequest) -> Result<(Service, Vec<Check>), NativeError> {
    let instance = request
        .instance
        .ok_or_else(|| NativeError::invalid("instance is required"))?;
    if instance.id.is_empty() {
        return Err(NativeError::invalid("instance.id must not be empty"));
    }
    if instance.service.is_empty() {
        return Err(NativeError::invalid("instance.service must not be empty"));
    }
    if instance.address.is_empty() {
        return Err(NativeError::invalid(
            "instance.address must not be empty (the host consumers connect to)",
        ));
    }
    let port = u16::try_from(instance.port).map_err(|_| {
        NativeError::invalid(format!(
            "instance.port {} is out of range (0 to 65535)",
            instance.port
        ))
    })?;
    let service = Service {
        id: instance.id,
        name: instance.service,
        address: instance.address,
        port,
        tags: instance.tags,
        meta: instance.meta.into_iter().collect(),
        weights: Weights {
            passing: instance.weight.max(1),
            warning: 1,
        },
        ..Service::default()
    };
    let mut checks = Vec::new();
    if request.ttl_ms > 0 {
        checks.push(Check {
            id: ttl_check_id(&service.id),
            name: format!("Service '{}' TTL", service.name),
            definition: CheckDefinition {
                kind: CheckKind::Ttl {
                    ttl_ms: request.ttl_ms,
                },
                timeout_ms: millis(DEFAULT_TIMEOUT),
                deregister_critical_after_ms: non_zero(request.deregister_critical_after_ms),
                ..CheckDefinition::default()
            },
            ..new_check(&service)
        });
    }
    for (i, check) in request.checks.into_iter().enumerate() {
        let definition = probed(check)
            .map_err(|reason| NativeError::invalid(format!("checks[{i}]: {reason}")))?;
        checks.push(Check {
            id: format!("service:{}:{}", service.id, i + 1),
            name: format!("Service '{}' check", service.name),
            definition,
            ..new_check(&service)
        });
    }
    Ok((service, checks))
}

fn new_check(service: &Service) -> Check {
    Check {
        node: NATIVE_NODE.to_owned(),
        service_id: Some(service.id.clone()),
        status: CheckStatus::Critical,
        ..Check::default()
    }
}

/// An HTTP, TCP or gRPC check, held to the Consul API's rules.
fn probed(check: CheckRequest) -> Result<CheckDefinition, String> {
    let kind = match check.kind {
        None => return Err("a check needs one of http, tcp or grpc".into()),
        Some(check::Kind::Http(http)) => {
            if http.url.is_empty() {
                return Err("http.url must not be empty".into());
            }
            let method = if http.method.is_empty() {
                "GET".to_owned()
            } else {
                http.method.to_ascii_uppercase()
            };
            CheckKind::Http(Box::new(HttpProbe {
                url: http.url,
                method,
                ..HttpProbe::default()
            }))
        }
        Some(check::Kind::Tcp(tcp)) => {
            if tcp.address.is_empty() {
                return Err("tcp.address must not be empty".into());
            }
            CheckKind::Tcp {
                address: tcp.address,
            }
        }
        Some(check::Kind::Grpc(grpc)) => {
            if grpc.target.is_empty() {
                return Err("grpc.target must not be empty".into());
            }
            CheckKind::Grpc {
                target: grpc.target,
                use_tls: false,
            }
        }
    };
    if check.interval_ms < MIN_INTERVAL_MS {
        return Err(format!(
            "interval_ms must be at least {MIN_INTERVAL_MS} (got {})",
            check.interval_ms
        ));
    }
    let timeout_ms = match check.timeout_ms {
        0 => millis(DEFAULT_TIMEOUT),
        timeout => timeout,
    };
    Ok(CheckDefinition {
        kind,
        interval_ms: check.interval_ms,
        timeout_ms,
        deregister_critical_after_ms: non_zero(check.deregister_critical_after_ms),
        ..CheckDefinition::default()
    })
}

fn non_zero(ms: u64) -> Option<u64> {
    (ms > 0).then_some(ms)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Writes the instance; returns the revision that holds it.
pub async fn register(ctx: &NativeContext, request: RegisterRequest) -> Result<u64, NativeError> {
    let (service, mut checks) = validate(request)?;
    carry_over(ctx, &mut checks);
    write(
        ctx,
        Op::RegisterService {
            node: NATIVE_NODE.to_owned(),
            service,
            checks,
            replace_checks: true,
        },
    )
    .await
}

/// A check registered again keeps the status and output it has, as
/// through the Consul API: a client re-registering after a reconnect must
/// not flap its instance to critical until the next keep-alive.
fn carry_over(ctx: &NativeContext, checks: &mut [Check]) {
    let state = ctx.registry.view();
    let catalog = state.catalog();
    for check in checks {
        if let Some(existing) = catalog.check(&check.node, &check.id) {
            check.status = existing.status;
            check.output = existing.output.clone();
        }
    }
}

/// Removes an instance. Unknown ids are not an error: the answer is then
/// the current revision.
pub async fn deregister(
    ctx: &NativeContext,
    instance_id: String,
    node: String,
) -> Result<u64, NativeError> {
    if instance_id.is_empty() {
        return Err(NativeError::invalid("instance_id must not be empty"));
    }
    let node = if node.is_empty() {
        // Read what the leader has, so an instance registered a moment ago
        // through another server is found.
        ctx.registry.read_barrier(Consistency::Default).await?;
        let state = ctx.registry.view();
        match instance_node(&state, &ctx.registry.node().name, &instance_id) {
            Some(node) => node,
            None => return Ok(state.revision()),
        }
    } else {
        node
    };
    write(
        ctx,
        Op::DeregisterService {
            node,
            service_id: instance_id,
        },
    )
    .await
}

/// The node an instance named without one is on: [`NATIVE_NODE`], else the
/// receiving server's own node (instances registered through its Consul
/// agent API).
pub fn instance_node(machine: &StateMachine, local: &str, instance_id: &str) -> Option<String> {
    let catalog = machine.catalog();
    [NATIVE_NODE, local]
        .into_iter()
        .find(|node| catalog.service(node, instance_id).is_some())
        .map(str::to_owned)
}

/// Proposes `op` and waits until this server applied it.
async fn write(ctx: &NativeContext, op: Op) -> Result<u64, NativeError> {
    let outcome = ctx.registry.write(op).await?;
    ctx.registry.applied_here(outcome.revision).await;
    match outcome.response {
        Applied::Rejected(e) => Err(NativeError::Rejected(e.to_string())),
        _ => Ok(outcome.revision),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_proto::v1::{HttpCheck, Instance, TcpCheck};

    fn request(instance: Instance) -> RegisterRequest {
        RegisterRequest {
            instance: Some(instance),
            ..RegisterRequest::default()
        }
    }

    fn web() -> Instance {
        Instance {
            id: "web-1".into(),
            service: "web".into(),
            address: "10.0.0.1".into(),
            port: 8080,
            ..Instance::default()
        }
    }

    #[test]
    fn a_ttl_and_probes_become_catalog_checks() {
        let mut req = request(web());
        req.ttl_ms = 3000;
        req.deregister_critical_after_ms = 9000;
        req.checks = vec![CheckRequest {
            kind: Some(check::Kind::Http(HttpCheck {
                url: "http://10.0.0.1:8080/health".into(),
                method: "get".into(),
            })),
            interval_ms: 1000,
            ..CheckRequest::default()
        }];
        let (service, checks) = validate(req).expect("valid");
        assert_eq!(service.weights.passing, 1);
        let ids: Vec<&str> = checks.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["service:web-1:ttl", "service:web-1:1"]);
        assert_eq!(checks[0].definition.kind, CheckKind::Ttl { ttl_ms: 3000 });
        assert_eq!(
            checks[0].definition.deregister_critical_after_ms,
            Some(9000)
        );
        assert!(checks.iter().all(|c| c.node == NATIVE_NODE
            && c.status == CheckStatus::Critical
            && c.service_id.as_deref() == Some("web-1")));
        assert_eq!(checks[1].definition.timeout_ms, 10_000);
        assert!(matches!(&checks[1].definition.kind,
            CheckKind::Http(http) if http.method == "GET"));
    }

    #[test]
    fn malformed_registrations_say_why() {
        let no_id = Instance {
            id: String::new(),
            ..web()
        };
        let no_service = Instance {
            service: String::new(),
            ..web()
        };
        let bad_port = Instance {
            port: 70_000,
            ..web()
        };
        let no_kind = RegisterRequest {
            checks: vec![CheckRequest {
                interval_ms: 1000,
                ..CheckRequest::default()
            }],
            ..request(web())
        };
        let fast = RegisterRequest {
            checks: vec![CheckRequest {
                kind: Some(check::Kind::Tcp(TcpCheck {
                    address: "10.0.0.1:8080".into(),
                })),
                interval_ms: 10,
                ..CheckRequest::default()
            }],
            ..request(web())
        };
        let cases = [
            (RegisterRequest::default(), "instance is required"),
            (request(no_id), "instance.id must not be empty"),
            (request(no_service), "instance.service must not be empty"),
            (request(bad_port), "instance.port 70000 is out of range"),
            (no_kind, "checks[0]: a check needs one of http, tcp or grpc"),
            (fast, "checks[0]: interval_ms must be at least 100"),
        ];
        for (req, reason) in cases {
            let err = validate(req).expect_err(reason);
            assert!(err.to_string().contains(reason), "{err} vs {reason}");
        }
    }
}
