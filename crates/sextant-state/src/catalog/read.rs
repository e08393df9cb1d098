//! Reads of the catalog, shaped after the Consul catalog and health endpoints.
//! Every index returned is at least 1: clients treat 0 as "no index".

use std::collections::{BTreeMap, BTreeSet};

use super::{Catalog, Check, CheckStatus, Node, Service};

/// One instance of a service with what a health query shows beside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInstance<'a> {
    pub node: &'a Node,
    pub service: &'a Service,
    /// The node's own checks and the instance's checks, by check id.
    pub checks: Vec<&'a Check>,
}

impl ServiceInstance<'_> {
    /// The instance's health: the worst of its checks and its node's.
    pub fn status(&self) -> CheckStatus {
        CheckStatus::aggregate(self.checks.iter().map(|c| c.status))
    }
}

impl Catalog {
    /// Every node, by name.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.get(name)
    }

    /// Every service instance with its node's name, by node then id.
    pub fn services(&self) -> impl Iterator<Item = (&str, &Service)> {
        self.services
            .iter()
            .flat_map(|(node, services)| services.values().map(move |s| (node.as_str(), s)))
    }

    /// The instances registered on one node, by id.
    pub fn node_services(&self, node: &str) -> impl Iterator<Item = &Service> {
        self.services.get(node).into_iter().flat_map(|s| s.values())
    }

    pub fn service(&self, node: &str, service_id: &str) -> Option<&Service> {
        self.services.get(node).and_then(|s| s.get(service_id))
    }

    /// Every service name with the union of its instances' tags
    /// (Consul's `/v1/catalog/services`). Visits every instance.
    pub fn service_names(&self) -> BTreeMap<&str, BTreeSet<&str>> {
        let mut names: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (_, service) in self.services() {
            names
                .entry(service.name.as_str())
                .or_default()
                .extend(service.tags.iter().map(String::as_str));
        }
        names
    }

    /// The instances of one service with their nodes and checks, by node
    /// then service id. Visits only that service's instances.
    pub fn instances(&self, service_name: &str) -> Vec<ServiceInstance<'_>> {
        let Some(members) = self.by_service_name.get(service_name) else {
            return Vec::new();
        };
        members
            .iter()
            .filter_map(|(node_name, service_id)| {
                let node = self.nodes.get(node_name)?;
                let service = self.service(node_name, service_id)?;
                let checks = self
                    .checks_of_node(node_name)
                    .filter(|c| c.service_id.as_deref().is_none_or(|id| id == service_id))
                    .collect();
                Some(ServiceInstance {
                    node,
                    service,
                    checks,
                })
            })
            .collect()
    }

    /// Every check, by node then id.
    pub fn checks(&self) -> impl Iterator<Item = &Check> {
        self.checks.values().flat_map(|c| c.values())
    }

    pub fn check(&self, node: &str, check_id: &str) -> Option<&Check> {
        self.checks.get(node).and_then(|c| c.get(check_id))
    }

    /// Every check on one node, node-level and of its services, by id
    /// (Consul's `/v1/health/node/:node`).
    pub fn checks_of_node(&self, node: &str) -> impl Iterator<Item = &Check> {
        self.checks.get(node).into_iter().flat_map(|c| c.values())
    }

    /// The checks of one service instance, without its node's checks.
    pub fn checks_of_instance(&self, node: &str, service_id: &str) -> Vec<&Check> {
        self.checks_of_node(node)
            .filter(|c| c.service_id.as_deref() == Some(service_id))
            .collect()
    }

    /// The checks of every instance of a service, without node checks
    /// (Consul's `/v1/health/checks/:service`).
    pub fn checks_of_service(&self, service_name: &str) -> Vec<&Check> {
        let Some(members) = self.by_service_name.get(service_name) else {
            return Vec::new();
        };
        members
            .iter()
            .flat_map(|(node, service_id)| self.checks_of_instance(node, service_id))
            .collect()
    }

    /// Every check in `status`, or every check with `None` (Consul's
    /// `/v1/health/state/:state`). A scan of all checks: this listing is for
    /// operators, not for hot paths.
    pub fn checks_in_state(&self, status: Option<CheckStatus>) -> Vec<&Check> {
        self.checks()
            .filter(|c| status.is_none_or(|s| c.status == s))
            .collect()
    }

    /// The service instance a check belongs to, for the `ServiceName` and
    /// `ServiceTags` that Consul shows beside a check.
    pub fn service_of_check(&self, check: &Check) -> Option<&Service> {
        let service_id = check.service_id.as_deref()?;
        self.service(&check.node, service_id)
    }

    /// The health of a node's own checks.
    pub fn node_status(&self, node: &str) -> CheckStatus {
        CheckStatus::aggregate(
            self.checks_of_node(node)
                .filter(|c| c.service_id.is_none())
                .map(|c| c.status),
        )
    }

    /// The last revision at which any node changed.
    pub fn nodes_index(&self) -> u64 {
        self.nodes_index.max(1)
    }

    /// The last revision at which any service instance changed.
    pub fn services_index(&self) -> u64 {
        self.services_index.max(1)
    }

    /// The last revision at which any check changed.
    pub fn checks_index(&self) -> u64 {
        self.checks_index.max(1)
    }

    /// The last revision at which `instances(service_name)` changed. For a
    /// name with no instances, the services table's index: it moved when the
    /// last instance went, so the answer never goes backwards.
    pub fn service_index(&self, service_name: &str) -> u64 {
        self.service_name_indexes
            .get(service_name)
            .copied()
            .unwrap_or(self.services_index)
            .max(1)
    }
}
