//! Which node an agent-API request means.
//!
//! Consul's agent API acts on the agent's own node; here every server is an
//! agent whose node is the server itself. A service or check registered
//! through another server is still found when its id names exactly one
//! record in the catalog, so deregistrations and TTL updates keep working
//! through any server — also while the one they were registered through is
//! down.

use sextant_state::StateMachine;

/// The node holding service `service_id`: the local node if it has one,
/// else the only node that does.
pub fn service_node(machine: &StateMachine, local: &str, service_id: &str) -> Option<String> {
    let catalog = machine.catalog();
    if catalog.service(local, service_id).is_some() {
        return Some(local.to_owned());
    }
    let mut found = catalog
        .services()
        .filter(|(_, s)| s.id == service_id)
        .map(|(node, _)| node);
    match (found.next(), found.next()) {
        (Some(node), None) => Some(node.to_owned()),
        _ => None,
    }
}

/// The node holding check `check_id`, found the same way.
pub fn check_node(machine: &StateMachine, local: &str, check_id: &str) -> Option<String> {
    let catalog = machine.catalog();
    if catalog.check(local, check_id).is_some() {
        return Some(local.to_owned());
    }
    let mut found = catalog
        .checks()
        .filter(|c| c.id == check_id)
        .map(|c| &c.node);
    match (found.next(), found.next()) {
        (Some(node), None) => Some(node.clone()),
        _ => None,
    }
}
