//! Bounds the key space's history.
//!
//! Every write keeps the key's previous version for etcd's reads at a revision
//! and watches from the past. Consul clients never compact, so without this
//! the history of a busy key would grow for ever. The leader periodically
//! proposes a compaction that keeps the last `retention` revisions (etcd's
//! revision-based auto-compaction). Followers do nothing: the compaction is an
//! ordinary replicated command.

use std::sync::Arc;
use std::time::Duration;

use sextant_state::Op;

use crate::registry::Registry;

pub struct Compactor {
    pub registry: Arc<Registry>,
    /// Revisions of history to keep; 0 keeps everything.
    pub retention: u64,
    pub interval: Duration,
}

impl Compactor {
    pub async fn run(self) {
        if self.retention == 0 {
            return;
        }
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            if !self.registry.is_leader() {
                continue;
            }
            let Some(revision) = self.due() else { continue };
            match self
                .registry
                .write_as_leader(Op::KvCompact { revision })
                .await
            {
                Ok(_) => tracing::info!(revision, "compacted the key history"),
                Err(e) => tracing::debug!(revision, error = %e, "compaction not done"),
            }
        }
    }

    /// The revision to compact at, if the history is longer than the retention.
    fn due(&self) -> Option<u64> {
        let state = self.registry.state().read();
        let kv = state.machine.kv();
        let target = kv.revision().saturating_sub(self.retention);
        (target > kv.compacted_revision()).then_some(target)
    }
}
