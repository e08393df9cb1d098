//! `GET /v1/sextant/health/owners`: which server runs each check, as this
//! server sees it — the one rendezvous hashing picks for a probed check,
//! the leader for a TTL check — and which servers it counts as alive. For
//! operators and for tests that kill a check's owner.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use sextant_state::catalog::CheckKind;

use super::HttpState;

pub async fn owners(State(http): State<HttpState>) -> Json<Value> {
    let view = http.health.view();
    let ownership = view.ownership();
    let me = http.registry.node().name.clone();
    let name_of = |id| match view.node(id) {
        Some(node) => node.name.clone(),
        None if id == view.me => me.clone(),
        None => id.to_string(),
    };
    let leader = http.registry.leader().map(|(id, _)| id);
    let state = http.registry.view();
    let checks: Vec<Value> = state
        .catalog()
        .checks()
        .filter(|c| !matches!(c.definition.kind, CheckKind::External))
        .map(|c| {
            json!({
                "Node": c.node,
                "CheckID": c.id,
                "Owner": match c.definition.kind {
                    CheckKind::Ttl { .. } => leader.map(name_of),
                    _ => Some(name_of(ownership.owner_of(&c.node, &c.id))),
                },
            })
        })
        .collect();
    let alive: Vec<String> = view.alive.iter().map(|id| name_of(*id)).collect();
    Json(json!({"Alive": alive, "Checks": checks}))
}
