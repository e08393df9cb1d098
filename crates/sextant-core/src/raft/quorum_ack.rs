//! When this leader last heard from a majority, as an instant on this
//! server's clock.
//!
//! openraft reports `millis_since_quorum_ack` as of the moment it published
//! its metrics, and the figure goes stale whenever nothing publishes new
//! metrics — above all while the whole process is stopped (SIGSTOP, a VM
//! pause, a stall). A leader resumed after such a pause would read the figure
//! from before it and believe it still holds its lease, although a successor
//! may have been elected meanwhile; it would then renew etcd leases the
//! successor knows nothing of, or tell a client that a lease granted by the
//! successor does not exist. So a task turns each published figure into an
//! instant (now − figure) as it arrives, and the lease's age is measured from
//! that instant: the pause counts. (A figure published just before a pause
//! and read just after it still looks fresh; that window is as wide as the
//! task's reaction to a publication, microseconds.)

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::ServerState;

use super::Raft;

#[derive(Debug, Default)]
pub struct QuorumAck {
    /// While this server leads: when a majority last acknowledged it.
    acked_at: Mutex<Option<Instant>>,
}

impl QuorumAck {
    /// Whether this server leads and a majority acknowledged it within `within`.
    pub fn acked_within(&self, within: Duration) -> bool {
        let acked_at = *self.acked_at.lock().unwrap_or_else(|e| e.into_inner());
        acked_at.is_some_and(|at| at.elapsed() <= within)
    }

    /// Follows Raft's metrics until Raft shuts down.
    pub async fn follow(self: Arc<Self>, raft: Raft) {
        let mut metrics = raft.metrics();
        loop {
            let acked_at = {
                let m = metrics.borrow_and_update();
                match (m.state, m.millis_since_quorum_ack) {
                    (ServerState::Leader, Some(ms)) => {
                        Instant::now().checked_sub(Duration::from_millis(ms))
                    }
                    _ => None,
                }
            };
            *self.acked_at.lock().unwrap_or_else(|e| e.into_inner()) = acked_at;
            if metrics.changed().await.is_err() {
                return;
            }
        }
    }
}
