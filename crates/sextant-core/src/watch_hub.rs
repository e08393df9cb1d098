//! Tells readers what each applied batch of Raft entries changed, so a change
//! wakes only the watchers it concerns.
//!
//! - Key changes go out on a bounded broadcast channel. A receiver that falls
//!   more than the channel's capacity behind gets `Lagged` and must resync from
//!   the store's history: a slow watcher never stalls the apply loop.
//! - Each service name has its own revision watch, bumped when the answer of
//!   `Catalog::instances(name)` changed; a blocking query on one service waits
//!   on that alone.
//! - Installing a snapshot replaces the state wholesale: key watchers get a
//!   batch with `reset` set, and every service watch is bumped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use sextant_state::kv::KvEvent;
use tokio::sync::{broadcast, watch};

/// How many applied batches a key watcher may fall behind before it must
/// resync, unless configured otherwise.
pub const KV_BACKLOG: usize = 4096;

/// Below this many service watches, unwatched names are only pruned on publish.
const SERVICE_WATCHES_PRUNE_AT: usize = 1024;

/// The key changes of one applied batch of entries.
#[derive(Debug)]
pub struct AppliedBatch {
    /// The revision after the batch.
    pub revision: u64,
    /// Every key change in the batch, in order.
    pub kv_events: Vec<KvEvent>,
    /// The state was replaced by a snapshot: events before `revision` are unknown.
    pub reset: bool,
    /// Service names whose `Catalog::instances` answer changed in the batch,
    /// for watchers of the etcd catalog view (`/sextant/services/`).
    pub service_names: BTreeSet<String>,
}

#[derive(Debug)]
pub struct WatchHub {
    kv: broadcast::Sender<Arc<AppliedBatch>>,
    services: Mutex<BTreeMap<String, watch::Sender<u64>>>,
}

impl Default for WatchHub {
    fn default() -> Self {
        Self::with_capacity(KV_BACKLOG)
    }
}

impl WatchHub {
    /// A hub whose key watchers may fall `kv_backlog` batches behind (at
    /// least one) before they must resync.
    pub fn with_capacity(kv_backlog: usize) -> Self {
        Self {
            kv: broadcast::channel(kv_backlog.max(1)).0,
            services: Mutex::new(BTreeMap::new()),
        }
    }

    /// Called by the state machine after each applied batch.
    pub fn publish(&self, revision: u64, kv_events: Vec<KvEvent>, services: &BTreeSet<String>) {
        if (!kv_events.is_empty() || !services.is_empty()) && self.kv.receiver_count() > 0 {
            let _ = self.kv.send(Arc::new(AppliedBatch {
                revision,
                kv_events,
                reset: false,
                service_names: services.clone(),
            }));
        }
        if services.is_empty() {
            return;
        }
        let mut watches = self.services.lock().unwrap_or_else(|e| e.into_inner());
        for name in services {
            if let Some(sender) = watches.get(name) {
                sender.send_replace(revision);
            }
        }
        // Forget the names nobody waits on any more.
        watches.retain(|_, sender| sender.receiver_count() > 0);
    }

    /// Called after a snapshot replaced the state.
    pub fn reset(&self, revision: u64) {
        if self.kv.receiver_count() > 0 {
            let _ = self.kv.send(Arc::new(AppliedBatch {
                revision,
                kv_events: Vec::new(),
                reset: true,
                service_names: BTreeSet::new(),
            }));
        }
        let watches = self.services.lock().unwrap_or_else(|e| e.into_inner());
        for sender in watches.values() {
            sender.send_replace(revision);
        }
    }

    /// Every key change from now on.
    pub fn subscribe_kv(&self) -> broadcast::Receiver<Arc<AppliedBatch>> {
        self.kv.subscribe()
    }

    /// A watch that moves whenever the instances of service `name` change.
    pub fn subscribe_service(&self, name: &str) -> watch::Receiver<u64> {
        let mut watches = self.services.lock().unwrap_or_else(|e| e.into_inner());
        // Names come from request URLs: while the catalog is idle (no publish
        // to prune them) forget the unwatched ones here, whenever the map has
        // doubled, so its size stays proportional to the live watches.
        if watches.len() >= SERVICE_WATCHES_PRUNE_AT && watches.len().is_power_of_two() {
            watches.retain(|_, sender| sender.receiver_count() > 0);
        }
        watches
            .entry(name.to_string())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_service_change_wakes_only_its_watchers() {
        let hub = WatchHub::default();
        let mut web = hub.subscribe_service("web");
        let db = hub.subscribe_service("db");
        hub.publish(7, Vec::new(), &BTreeSet::from(["web".to_string()]));
        assert!(web.has_changed().unwrap_or(false));
        assert_eq!(*web.borrow_and_update(), 7);
        assert!(!db.has_changed().unwrap_or(true));
    }

    #[tokio::test]
    async fn unwatched_services_are_forgotten() {
        let hub = WatchHub::default();
        drop(hub.subscribe_service("web"));
        hub.publish(3, Vec::new(), &BTreeSet::from(["web".to_string()]));
        assert!(hub.services.lock().map(|w| w.is_empty()).unwrap_or(false));
    }

    #[tokio::test]
    async fn unwatched_names_do_not_pile_up_while_nothing_is_published() {
        let hub = WatchHub::default();
        for n in 0..10_000 {
            drop(hub.subscribe_service(&format!("svc-{n}")));
        }
        let kept = hub.services.lock().map(|w| w.len()).unwrap_or(usize::MAX);
        assert!(kept <= 2 * SERVICE_WATCHES_PRUNE_AT, "{kept} names kept");
    }

    #[tokio::test]
    async fn a_receiver_behind_the_capacity_lags() {
        let hub = WatchHub::with_capacity(2);
        let mut kv = hub.subscribe_kv();
        let web = BTreeSet::from(["web".to_string()]);
        for revision in 1..=3 {
            hub.publish(revision, Vec::new(), &web);
        }
        assert!(matches!(
            kv.recv().await,
            Err(broadcast::error::RecvError::Lagged(1))
        ));
        assert_eq!(kv.recv().await.map(|b| b.revision).ok(), Some(2));
    }

    #[tokio::test]
    async fn a_reset_reaches_key_watchers() {
        let hub = WatchHub::default();
        let mut kv = hub.subscribe_kv();
        hub.reset(42);
        let batch = kv.recv().await.expect("a batch");
        assert!(batch.reset);
        assert_eq!(batch.revision, 42);
    }
}
