//! What must hold of the catalog after any sequence of commands; checked on
//! every decoded snapshot and after every step of the property tests.

use std::collections::{BTreeMap, BTreeSet};

use super::Catalog;

impl Catalog {
    pub(crate) fn check_invariants(&self, revision: u64) -> Result<(), String> {
        for (name, node) in &self.nodes {
            if node.name != *name {
                return Err(format!("node {name:?} is stored as {:?}", node.name));
            }
            stamps_ok("node", name, node.create_index, node.modify_index, revision)?;
        }
        let mut by_name: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
        for (node, services) in &self.services {
            if !self.nodes.contains_key(node) {
                return Err(format!("services on unknown node {node:?}"));
            }
            if services.is_empty() {
                return Err(format!("empty service table for node {node:?}"));
            }
            // A table reads each id from its record: no id can be stored wrong.
            for service in services.values() {
                let id = &service.id;
                stamps_ok(
                    "service",
                    id,
                    service.create_index,
                    service.modify_index,
                    revision,
                )?;
                by_name
                    .entry(service.name.clone())
                    .or_default()
                    .insert((node.clone(), id.clone()));
            }
        }
        if by_name != self.by_service_name {
            return Err("the service name index does not match the services".into());
        }
        if !self
            .service_name_indexes
            .keys()
            .eq(self.by_service_name.keys())
        {
            return Err("service name indexes do not cover exactly the names in use".into());
        }
        if let Some((name, index)) = self
            .service_name_indexes
            .iter()
            .find(|(_, i)| **i > revision)
        {
            return Err(format!(
                "service {name:?} has index {index} from the future"
            ));
        }
        for (node, checks) in &self.checks {
            if !self.nodes.contains_key(node) {
                return Err(format!("checks on unknown node {node:?}"));
            }
            if checks.is_empty() {
                return Err(format!("empty check table for node {node:?}"));
            }
            for check in checks.values() {
                let id = &check.id;
                if check.node != *node {
                    return Err(format!(
                        "check {node:?}/{id:?} is stored on node {:?}",
                        check.node
                    ));
                }
                stamps_ok(
                    "check",
                    id,
                    check.create_index,
                    check.modify_index,
                    revision,
                )?;
                if let Some(service_id) = &check.service_id {
                    if self.service(node, service_id).is_none() {
                        return Err(format!(
                            "check {id:?} belongs to unknown service {service_id:?}"
                        ));
                    }
                }
            }
        }
        let tables = [self.nodes_index, self.services_index, self.checks_index];
        if tables.iter().any(|i| *i > revision) {
            return Err("a catalog table index is from the future".into());
        }
        Ok(())
    }
}

fn stamps_ok(what: &str, id: &str, create: u64, modify: u64, revision: u64) -> Result<(), String> {
    if create == 0 || create > modify || modify > revision {
        return Err(format!(
            "{what} {id:?} has stamps {create}/{modify} at revision {revision}"
        ));
    }
    Ok(())
}
