//! `/v1/agent/self` and `/v1/agent/members`: this server, and the servers it knows.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::HttpState;
use sextant_core::{NodeId, ServerNode};

/// How long a member may take to answer before it is shown as failed.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// Serf's member states, as Consul reports them.
const ALIVE: u8 = 1;
const FAILED: u8 = 4;

/// Consul node ids are UUIDs; ours is derived from the Raft node id.
fn node_uuid(id: NodeId) -> String {
    let hex = format!("{id:016x}{:016x}", id.rotate_left(32));
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn member(id: NodeId, node: &ServerNode, status: u8) -> Value {
    let (addr, port) = node
        .raft_addr
        .rsplit_once(':')
        .map(|(a, p)| (a.to_string(), p.parse::<u16>().unwrap_or(0)))
        .unwrap_or_default();
    json!({
        "Name": node.name,
        "Addr": addr,
        "Port": port,
        "Tags": {
            "role": "consul",
            "id": node_uuid(id),
            "raft_addr": node.raft_addr,
            "http_addr": node.http_addr,
            "grpc_addr": node.grpc_addr,
        },
        "Status": status,
        "ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2,
        "DelegateMin": 2, "DelegateMax": 5, "DelegateCur": 4,
    })
}

pub async fn agent_self(State(http): State<HttpState>) -> Json<Value> {
    let registry = &http.registry;
    let node = registry.node();
    Json(json!({
        "Config": {
            "Datacenter": "dc1",
            "NodeName": node.name,
            "NodeID": node_uuid(registry.id()),
            "Server": true,
            "Version": env!("CARGO_PKG_VERSION"),
            "Revision": "",
        },
        "Member": member(registry.id(), node, ALIVE),
        "Meta": {},
        "Stats": {
            "raft": {
                "state": registry.status().role.as_str(),
                "term": registry.term().to_string(),
            },
        },
    }))
}

/// Every server of the Raft configuration, each probed now for liveness.
pub async fn members(State(http): State<HttpState>) -> Json<Vec<Value>> {
    let membership = http.registry.status().membership;
    let probes = membership.nodes().map(|(id, node)| {
        let discovery = http.discovery.clone();
        let own = id == http.registry.id();
        async move {
            let alive = own || discovery.answers(node, PROBE_TIMEOUT).await;
            member(id, node, if alive { ALIVE } else { FAILED })
        }
    });
    Json(futures::future::join_all(probes).await)
}
