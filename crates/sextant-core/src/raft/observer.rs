//! Logs this server's Raft state transitions (role, term, leader), which
//! openraft itself reports only at debug level.

use openraft::ServerState;

use super::Raft;
use crate::node::NodeId;

/// Runs until Raft shuts down.
pub async fn log_transitions(raft: Raft) {
    let mut metrics = raft.metrics();
    let mut last: Option<(ServerState, u64, Option<NodeId>)> = None;
    // The last leader known, so an election that re-elects it after a
    // leaderless moment is not counted as a change.
    let mut last_leader: Option<NodeId> = None;
    loop {
        let now = {
            let m = metrics.borrow_and_update();
            (m.state, m.current_term, m.current_leader)
        };
        if last != Some(now) {
            let (state, term, leader) = now;
            tracing::info!(?state, term, ?leader, "raft state");
            if leader.is_some() && leader != last_leader {
                metrics::counter!(crate::telemetry::RAFT_LEADER_CHANGES).increment(1);
                last_leader = leader;
            }
            last = Some(now);
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}
