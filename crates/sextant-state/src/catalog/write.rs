//! Writes to the catalog. Validation happens before any change, so a refused
//! write leaves nothing behind; the writes themselves cannot fail.
//!
//! Each write reports in `CatalogChanges` what the rest of the state machine
//! must follow up on: the service names whose instances changed (for
//! watchers) and the checks that failed or vanished (for the sessions that
//! depend on them).

use std::collections::BTreeSet;

use super::{stamp, Catalog, Check, CheckStatus, Keyed, Node, Service, Table};
use crate::ApplyError;

#[derive(Debug, Default)]
pub(crate) struct CatalogChanges {
    /// Service names whose `instances` answer changed.
    pub service_names: BTreeSet<String>,
    /// (node, check id) of checks that are now failing or gone.
    pub lost_checks: BTreeSet<(String, String)>,
}

impl Catalog {
    /// Creates or replaces a node. An unchanged node is left as it is.
    pub(crate) fn register_node(
        &mut self,
        node: &Node,
        revision: u64,
        changes: &mut CatalogChanges,
    ) {
        let Some(record) = stamp(node, self.nodes.get(&node.name), revision) else {
            return;
        };
        self.nodes.insert(node.name.clone(), record);
        self.nodes_index = revision;
        self.touch_names_on_node(&node.name, revision, changes);
    }

    /// Removes a node with its instances and checks; `false` if it was unknown.
    pub(crate) fn deregister_node(
        &mut self,
        name: &str,
        revision: u64,
        changes: &mut CatalogChanges,
    ) -> bool {
        if self.nodes.remove(name).is_none() {
            return false;
        }
        self.nodes_index = revision;
        if let Some(checks) = self.checks.remove(name) {
            self.checks_index = revision;
            for check in checks.into_values() {
                changes.lost_checks.insert((name.to_owned(), check.id));
            }
        }
        if let Some(services) = self.services.remove(name) {
            self.services_index = revision;
            for service in services.into_values() {
                self.unindex_instance(&service.name, name, &service.id);
                self.touch_service_name(&service.name, revision, changes);
            }
        }
        true
    }

    /// Creates or replaces an instance with its checks. An unknown node is
    /// created with the instance's address, as Consul's catalog does with the
    /// address a registration carries. Each check is stamped as the
    /// instance's; with `replace_checks`, the instance's other checks go.
    pub(crate) fn register_service(
        &mut self,
        node: &str,
        service: &Service,
        checks: &[Check],
        replace_checks: bool,
        revision: u64,
        changes: &mut CatalogChanges,
    ) {
        if !self.nodes.contains_key(node) {
            let new_node = Node {
                name: node.to_owned(),
                address: service.address.clone(),
                ..Node::default()
            };
            self.register_node(&new_node, revision, changes);
        }
        let old = self.service(node, &service.id);
        let old_name = old.map(|s| s.name.clone());
        if let Some(record) = stamp(service, old, revision) {
            if let Some(old_name) = old_name.filter(|n| *n != service.name) {
                self.unindex_instance(&old_name, node, &service.id);
                self.touch_service_name(&old_name, revision, changes);
            }
            self.services
                .entry(node.to_owned())
                .or_default()
                .insert(record);
            self.by_service_name
                .entry(service.name.clone())
                .or_default()
                .insert((node.to_owned(), service.id.clone()));
            self.services_index = revision;
            self.touch_service_name(&service.name, revision, changes);
        }
        for check in checks {
            let check = Check {
                node: node.to_owned(),
                service_id: Some(service.id.clone()),
                ..check.clone()
            };
            self.register_check(&check, revision, changes);
        }
        if replace_checks {
            let keep: BTreeSet<&str> = checks.iter().map(|c| c.id.as_str()).collect();
            let stale: Vec<String> = self
                .checks_of_instance(node, &service.id)
                .into_iter()
                .filter(|c| !keep.contains(c.id.as_str()))
                .map(|c| c.id.clone())
                .collect();
            for id in stale {
                self.deregister_check(node, &id, revision, changes);
            }
        }
    }

    /// Removes an instance and its checks. Absent is not an error.
    pub(crate) fn deregister_service(
        &mut self,
        node: &str,
        service_id: &str,
        revision: u64,
        changes: &mut CatalogChanges,
    ) {
        let Some(name) = self.service(node, service_id).map(|s| s.name.clone()) else {
            return;
        };
        // Checks first: naming their service's watchers needs the service.
        let checks: Vec<String> = self
            .checks_of_instance(node, service_id)
            .into_iter()
            .map(|c| c.id.clone())
            .collect();
        for id in checks {
            self.deregister_check(node, &id, revision, changes);
        }
        remove_inner(&mut self.services, node, service_id);
        self.unindex_instance(&name, node, service_id);
        self.services_index = revision;
        self.touch_service_name(&name, revision, changes);
    }

    /// Refuses a check on an unknown node or for a service not on its node.
    pub(crate) fn validate_check(&self, check: &Check) -> Result<(), ApplyError> {
        if !self.nodes.contains_key(&check.node) {
            return Err(ApplyError::UnknownNode {
                node: check.node.clone(),
            });
        }
        if let Some(service_id) = &check.service_id {
            if self.service(&check.node, service_id).is_none() {
                return Err(ApplyError::UnknownService {
                    node: check.node.clone(),
                    service_id: service_id.clone(),
                });
            }
        }
        Ok(())
    }

    /// Creates or replaces a check that `validate_check` accepted. An
    /// unchanged check is left as it is.
    pub(crate) fn register_check(
        &mut self,
        check: &Check,
        revision: u64,
        changes: &mut CatalogChanges,
    ) {
        let old = self.check(&check.node, &check.id);
        let old_service = old.map(|c| c.service_id.clone());
        let Some(record) = stamp(check, old, revision) else {
            return;
        };
        if let Some(old_service) = old_service {
            self.touch_names_of_check(&check.node, old_service.as_deref(), revision, changes);
        }
        self.checks
            .entry(check.node.clone())
            .or_default()
            .insert(record);
        self.checks_index = revision;
        self.touch_names_of_check(&check.node, check.service_id.as_deref(), revision, changes);
        if check.status.is_failing() {
            changes
                .lost_checks
                .insert((check.node.clone(), check.id.clone()));
        }
    }

    /// Removes a check. Absent is not an error.
    pub(crate) fn deregister_check(
        &mut self,
        node: &str,
        check_id: &str,
        revision: u64,
        changes: &mut CatalogChanges,
    ) {
        let Some(check) = remove_inner(&mut self.checks, node, check_id) else {
            return;
        };
        self.checks_index = revision;
        self.touch_names_of_check(node, check.service_id.as_deref(), revision, changes);
        changes
            .lost_checks
            .insert((node.to_owned(), check_id.to_owned()));
    }

    /// Records a check's result. A result that changes neither status nor
    /// output changes nothing, not even an index.
    pub(crate) fn update_check(
        &mut self,
        node: &str,
        check_id: &str,
        status: CheckStatus,
        output: &str,
        revision: u64,
        changes: &mut CatalogChanges,
    ) -> Result<(), ApplyError> {
        let Some(check) = self.checks.get_mut(node).and_then(|c| c.get_mut(check_id)) else {
            return Err(ApplyError::UnknownCheck {
                node: node.to_owned(),
                check_id: check_id.to_owned(),
            });
        };
        if check.status == status && check.output == output {
            return Ok(());
        }
        check.status = status;
        check.output = output.to_owned();
        check.modify_index = revision;
        let service_id = check.service_id.clone();
        self.checks_index = revision;
        self.touch_names_of_check(node, service_id.as_deref(), revision, changes);
        if status.is_failing() {
            changes
                .lost_checks
                .insert((node.to_owned(), check_id.to_owned()));
        }
        Ok(())
    }

    fn unindex_instance(&mut self, name: &str, node: &str, service_id: &str) {
        if let Some(members) = self.by_service_name.get_mut(name) {
            members.remove(&(node.to_owned(), service_id.to_owned()));
            if members.is_empty() {
                self.by_service_name.remove(name);
            }
        }
    }

    /// Notes that `instances(name)` changed at `revision`; a name left with
    /// no instance loses its index entry (see `service_index`).
    fn touch_service_name(&mut self, name: &str, revision: u64, changes: &mut CatalogChanges) {
        if self.by_service_name.contains_key(name) {
            self.service_name_indexes.insert(name.to_owned(), revision);
        } else {
            self.service_name_indexes.remove(name);
        }
        changes.service_names.insert(name.to_owned());
    }

    /// A change to a node or to a node-level check shows in every instance on it.
    fn touch_names_on_node(&mut self, node: &str, revision: u64, changes: &mut CatalogChanges) {
        let names: BTreeSet<String> = self.node_services(node).map(|s| s.name.clone()).collect();
        for name in names {
            self.touch_service_name(&name, revision, changes);
        }
    }

    fn touch_names_of_check(
        &mut self,
        node: &str,
        service_id: Option<&str>,
        revision: u64,
        changes: &mut CatalogChanges,
    ) {
        match service_id {
            Some(id) => {
                if let Some(name) = self.service(node, id).map(|s| s.name.clone()) {
                    self.touch_service_name(&name, revision, changes);
                }
            }
            None => self.touch_names_on_node(node, revision, changes),
        }
    }
}

/// Removes `outer[node][id]`, dropping the table when it empties.
fn remove_inner<T: Keyed>(
    outer: &mut std::collections::BTreeMap<String, Table<T>>,
    node: &str,
    id: &str,
) -> Option<T> {
    let inner = outer.get_mut(node)?;
    let removed = inner.remove(id);
    if inner.is_empty() {
        outer.remove(node);
    }
    removed
}
