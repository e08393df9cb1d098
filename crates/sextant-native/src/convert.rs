//! The catalog's records as the API's messages.

use sextant_proto::v1::{HealthStatus, Instance, InstanceState};
use sextant_state::catalog::{CheckStatus, ServiceInstance};

/// An instance's aggregated health; maintenance counts as critical (it is
/// never to be called).
pub fn health_status(status: CheckStatus) -> HealthStatus {
    match status {
        CheckStatus::Passing => HealthStatus::Passing,
        CheckStatus::Warning => HealthStatus::Warning,
        CheckStatus::Critical | CheckStatus::Maintenance => HealthStatus::Critical,
    }
}

/// An instance with its node, health and the revision that last changed it
/// or any of its checks (its node's included: they count for its health).
pub fn instance_state(instance: &ServiceInstance<'_>) -> InstanceState {
    let service = instance.service;
    let revision = instance
        .checks
        .iter()
        .map(|c| c.modify_index)
        .chain([service.modify_index])
        .max()
        .unwrap_or(service.modify_index);
    InstanceState {
        instance: Some(Instance {
            id: service.id.clone(),
            service: service.name.clone(),
            address: service.address.clone(),
            port: u32::from(service.port),
            tags: service.tags.clone(),
            meta: service
                .meta
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            weight: service.weights.passing,
        }),
        node: instance.node.name.clone(),
        status: health_status(instance.status()) as i32,
        revision,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_state::catalog::{Check, Node, Service};

    #[test]
    fn an_instance_carries_its_newest_revision_and_worst_status() {
        let node = Node {
            name: "n".into(),
            ..Node::default()
        };
        let service = Service {
            id: "web-1".into(),
            name: "web".into(),
            port: 8080,
            modify_index: 4,
            ..Service::default()
        };
        let passing = Check {
            status: CheckStatus::Passing,
            modify_index: 9,
            ..Check::default()
        };
        let warning = Check {
            status: CheckStatus::Warning,
            modify_index: 6,
            ..Check::default()
        };
        let state = instance_state(&ServiceInstance {
            node: &node,
            service: &service,
            checks: vec![&passing, &warning],
        });
        assert_eq!(state.revision, 9);
        assert_eq!(state.status, HealthStatus::Warning as i32);
        assert_eq!(state.node, "n");
        let instance = state.instance.expect("an instance");
        assert_eq!((instance.id.as_str(), instance.port), ("web-1", 8080));
        assert_eq!(instance.weight, 1);
    }
}
