//! Proposes the scheduler's writes in order, one at a time, through the
//! leader. A write that fails is only logged: the scheduler compares every
//! probe result with the replicated state, so it proposes the change again
//! if it did not land.
//!
//! The leader proposes a health write only from the server that decides the
//! check it is about in the leader's own view ([`decider`]): while two
//! servers' views of who is alive differ, both may probe a check, and if
//! they see its target differently their status changes would alternate;
//! the leader lets only one of them through, so a status is decided once.

use std::sync::Arc;
use std::time::Duration;

use sextant_state::Op;
use tokio::sync::mpsc;

use super::ownership::{decider, CheckKey};
use super::Health;
use crate::peer::{HealthWriteRequest, HealthWriteResponse, Method};

/// How long one write passed on to the leader may take.
const LEADER_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(health: Arc<Health>, mut writes: mpsc::Receiver<(CheckKey, Op)>) {
    while let Some(((node, check_id), op)) = writes.recv().await {
        let request = HealthWriteRequest {
            from: health.registry.id(),
            node,
            check_id,
            op,
        };
        if let Err(e) = through_leader(&health, request).await {
            tracing::debug!(error = %e, "health write not taken; it will be proposed again");
        }
    }
}

/// Proposes `request` here when this server leads, else passes it on to the
/// leader.
async fn through_leader(health: &Health, request: HealthWriteRequest) -> HealthWriteResponse {
    if health.registry.is_leader() {
        return accept(health, request).await;
    }
    let Some((_, leader)) = health.registry.leader() else {
        return Err("no leader".to_owned());
    };
    health
        .peers
        .call(
            &leader.raft_addr,
            Method::HealthWrite,
            &request,
            LEADER_TIMEOUT,
        )
        .await
        .map_err(|e| e.to_string())?
}

/// On the leader: proposes the write if its sender decides the check in
/// this server's view, and waits until it is applied.
pub async fn accept(health: &Health, request: HealthWriteRequest) -> HealthWriteResponse {
    let registry = &health.registry;
    if !registry.is_leader() {
        return Err("not the leader".to_owned());
    }
    let ownership = health.ownership();
    let decides = {
        let state = registry.view();
        state
            .catalog()
            .check(&request.node, &request.check_id)
            .and_then(|check| decider(check, &ownership, Some(registry.id())))
            == Some(request.from)
    };
    if !decides {
        return Err(format!(
            "server {} does not run check {:?} on {} in the leader's view",
            request.from, request.check_id, request.node
        ));
    }
    registry
        .write(request.op)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
