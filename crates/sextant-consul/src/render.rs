//! The catalog's records as Consul's API shows them: field names, the
//! datacenter, Go duration strings. Every endpoint renders through here so
//! the shapes stay the same everywhere.

use std::time::Duration;

use serde_json::{json, Map, Value};
use sextant_state::catalog::{Catalog, Check, CheckKind, Node, Service, ServiceInstance};

use super::go_duration;

pub const DATACENTER: &str = "dc1";

fn duration_ms(ms: u64) -> String {
    go_duration::format(Duration::from_millis(ms))
}

fn weights(service: &Service) -> Value {
    json!({"Passing": service.weights.passing, "Warning": service.weights.warning})
}

fn tagged_addresses(address: &str) -> Value {
    json!({"lan": address, "lan_ipv4": address, "wan": address, "wan_ipv4": address})
}

/// A node as `/v1/catalog/nodes` and the `Node` of a health entry show it.
pub fn node(node: &Node) -> Value {
    json!({
        "ID": "",
        "Node": node.name,
        "Address": node.address,
        "Datacenter": DATACENTER,
        "TaggedAddresses": tagged_addresses(&node.address),
        "Meta": node.meta,
        "CreateIndex": node.create_index,
        "ModifyIndex": node.modify_index,
    })
}

/// A service as the agent API (`/v1/agent/services`) shows it.
pub fn agent_service(service: &Service) -> Value {
    json!({
        "ID": service.id,
        "Service": service.name,
        "Tags": service.tags,
        "Meta": service.meta,
        "Port": service.port,
        "Address": service.address,
        "Weights": weights(service),
        "EnableTagOverride": service.enable_tag_override,
        "Datacenter": DATACENTER,
    })
}

/// The `Service` of a health entry.
pub fn health_service(service: &Service) -> Value {
    json!({
        "ID": service.id,
        "Service": service.name,
        "Tags": service.tags,
        "Address": service.address,
        "Meta": service.meta,
        "Port": service.port,
        "Weights": weights(service),
        "EnableTagOverride": service.enable_tag_override,
        "CreateIndex": service.create_index,
        "ModifyIndex": service.modify_index,
    })
}

/// One instance as `/v1/catalog/service/:name` shows it.
pub fn catalog_service(node: &Node, service: &Service) -> Value {
    json!({
        "ID": "",
        "Node": node.name,
        "Address": node.address,
        "Datacenter": DATACENTER,
        "TaggedAddresses": tagged_addresses(&node.address),
        "NodeMeta": node.meta,
        "ServiceKind": "",
        "ServiceID": service.id,
        "ServiceName": service.name,
        "ServiceTags": service.tags,
        "ServiceAddress": service.address,
        "ServiceWeights": weights(service),
        "ServiceMeta": service.meta,
        "ServicePort": service.port,
        "ServiceEnableTagOverride": service.enable_tag_override,
        "CreateIndex": service.create_index,
        "ModifyIndex": service.modify_index,
    })
}

/// A check, with the name and tags of the service it belongs to.
pub fn check(catalog: &Catalog, check: &Check) -> Value {
    let service = catalog.service_of_check(check);
    let definition = &check.definition;
    let mut def = Map::new();
    match &definition.kind {
        CheckKind::Http(http) => {
            def.insert("HTTP".into(), json!(http.url));
            def.insert("Method".into(), json!(http.method));
            def.insert("Header".into(), json!(http.headers));
            def.insert("Body".into(), json!(http.body));
            def.insert("TLSSkipVerify".into(), json!(http.tls_skip_verify));
        }
        CheckKind::Tcp { address } => {
            def.insert("TCP".into(), json!(address));
        }
        CheckKind::Grpc { target, use_tls } => {
            def.insert("GRPC".into(), json!(target));
            def.insert("GRPCUseTLS".into(), json!(use_tls));
        }
        CheckKind::Ttl { ttl_ms } => {
            def.insert("TTL".into(), json!(duration_ms(*ttl_ms)));
        }
        CheckKind::External => {}
    }
    let probed = !matches!(definition.kind, CheckKind::Ttl { .. } | CheckKind::External);
    if probed {
        def.insert(
            "Interval".into(),
            json!(duration_ms(definition.interval_ms)),
        );
        def.insert("Timeout".into(), json!(duration_ms(definition.timeout_ms)));
    }
    if let Some(after) = definition.deregister_critical_after_ms {
        def.insert(
            "DeregisterCriticalServiceAfter".into(),
            json!(duration_ms(after)),
        );
    }
    json!({
        "Node": check.node,
        "CheckID": check.id,
        "Name": check.name,
        "Status": check.status.as_str(),
        "Notes": check.notes,
        "Output": check.output,
        "ServiceID": check.service_id.clone().unwrap_or_default(),
        "ServiceName": service.map(|s| s.name.clone()).unwrap_or_default(),
        "ServiceTags": service.map(|s| s.tags.clone()).unwrap_or_default(),
        "Type": definition.kind.type_name(),
        "Interval": if probed { duration_ms(definition.interval_ms) } else { String::new() },
        "Timeout": if probed { duration_ms(definition.timeout_ms) } else { String::new() },
        "ExposedPort": 0,
        "Definition": Value::Object(def),
        "CreateIndex": check.create_index,
        "ModifyIndex": check.modify_index,
    })
}

/// One entry of `/v1/health/service/:name`.
pub fn health_entry(catalog: &Catalog, instance: &ServiceInstance<'_>) -> Value {
    json!({
        "Node": node(instance.node),
        "Service": health_service(instance.service),
        "Checks": instance.checks.iter().map(|c| check(catalog, c)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_go_strings() {
        let c = Check {
            node: "n".into(),
            id: "c".into(),
            definition: sextant_state::catalog::CheckDefinition {
                kind: CheckKind::Http(Box::new(sextant_state::catalog::HttpProbe {
                    url: "http://x".into(),
                    method: "GET".into(),
                    ..Default::default()
                })),
                interval_ms: 90_000,
                timeout_ms: 5_000,
                deregister_critical_after_ms: Some(30_000),
                ..Default::default()
            },
            ..Check::default()
        };
        let v = check(&Catalog::new(), &c);
        assert_eq!(v["Interval"], "1m30s");
        assert_eq!(v["Definition"]["Timeout"], "5s");
        assert_eq!(v["Definition"]["DeregisterCriticalServiceAfter"], "30s");
        assert_eq!(v["Type"], "http");
        assert_eq!(v["Status"], "critical");
    }
}
