//! Every server is a catalog node with a node-level `serfHealth` check, kept
//! by the leader: passing while the server answers greetings, critical once
//! it has not for a while. A node-level check counts for every instance on
//! the node, so when a server dies the services registered through it go
//! critical (and drop out of `?passing`), as they do in Consul when an
//! agent dies.

use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use sextant_state::catalog::{Check, CheckDefinition, CheckKind, CheckStatus, Node};
use sextant_state::Op;

use super::Health;
use crate::node::ServerNode;

/// Consul's id and name for the check.
pub const SERF_CHECK_ID: &str = "serfHealth";
const SERF_CHECK_NAME: &str = "Serf Health Status";
const ALIVE_OUTPUT: &str = "Agent alive and reachable";
const DEAD_OUTPUT: &str = "Agent not live or unreachable";

const ROUND: Duration = Duration::from_secs(1);

pub async fn run(health: Arc<Health>) {
    let mut ticker = tokio::time::interval(ROUND);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut views = health.view.clone();
    loop {
        // A new view (a server died or came back) is acted on at once.
        tokio::select! {
            _ = ticker.tick() => {}
            changed = views.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
        if health.registry.metrics().state != ServerState::Leader {
            continue;
        }
        for op in needed_writes(&health) {
            if let Err(e) = health.registry.write_as_leader(op).await {
                tracing::debug!(error = %e, "node health write failed; retrying next round");
                break;
            }
        }
    }
}

/// The host part of a server's HTTP address: the address its node shows.
pub fn node_address(server: &ServerNode) -> String {
    server
        .http_addr
        .rsplit_once(':')
        .map(|(host, _)| {
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned()
        })
        .unwrap_or_else(|| server.http_addr.clone())
}

/// What must be written for the catalog to show every voter with its current liveness.
fn needed_writes(health: &Health) -> Vec<Op> {
    let view = health.view();
    let state = health.registry.state().read();
    let catalog = state.machine.catalog();
    let mut ops = Vec::new();
    for (id, server) in &view.voters {
        let address = node_address(server);
        let node_ok = catalog
            .node(&server.name)
            .is_some_and(|n| n.address == address);
        if !node_ok {
            let meta = catalog
                .node(&server.name)
                .map(|n| n.meta.clone())
                .unwrap_or_default();
            ops.push(Op::RegisterNode {
                node: Node {
                    name: server.name.clone(),
                    address,
                    meta,
                    ..Node::default()
                },
            });
        }
        let (status, output) = if view.alive.contains(id) {
            (CheckStatus::Passing, ALIVE_OUTPUT)
        } else {
            (CheckStatus::Critical, DEAD_OUTPUT)
        };
        match catalog.check(&server.name, SERF_CHECK_ID) {
            Some(check) if check.status == status && check.output == output => {}
            Some(_) => ops.push(Op::UpdateCheck {
                node: server.name.clone(),
                check_id: SERF_CHECK_ID.to_owned(),
                status,
                output: output.to_owned(),
            }),
            None => ops.push(Op::RegisterCheck {
                check: Check {
                    node: server.name.clone(),
                    id: SERF_CHECK_ID.to_owned(),
                    name: SERF_CHECK_NAME.to_owned(),
                    service_id: None,
                    status,
                    output: output.to_owned(),
                    definition: CheckDefinition {
                        kind: CheckKind::External,
                        ..CheckDefinition::default()
                    },
                    ..Check::default()
                },
            }),
        }
    }
    ops
}
