//! One etcd Watch stream: the watchers a client created on it, fed from the
//! watch hub and, when behind, from the store's history.
//!
//! Ordering without gaps or duplicates rests on one rule: each watcher
//! remembers the next revision it owes (`next_rev`), and every event below
//! it is skipped. The stream subscribes to the hub before it reads any
//! history, so whatever the history read did not cover is still queued.
//!
//! A slow client never stalls anyone else: responses go out through a
//! bounded channel, so a slow client only blocks its own stream's task;
//! that task's hub subscription then lags, and it catches up from history
//! (or cancels a watcher with `compact_revision` if history is gone).

use std::collections::{BTreeMap, BTreeSet};

use sextant_proto::etcd::etcdserverpb::{watch_create_request, WatchCreateRequest, WatchResponse};
use sextant_proto::etcd::mvccpb;
use sextant_state::kv::{KeyValue, KvEvent, KvEventKind};
use sextant_state::txn::in_range;
use sextant_state::ApplyError;
use tokio::sync::mpsc;

use super::{catalog_view, convert, EtcdContext};
use sextant_core::telemetry::{self, InFlight};
use sextant_core::watch_hub::AppliedBatch;

/// Events per response when replaying history; a revision is never split,
/// so a response may exceed it by the rest of one revision (etcd sends
/// history in batches of revisions, too).
const REPLAY_EVENTS_PER_RESPONSE: usize = 1000;
/// etcd's id for a response meant for every watcher of the stream.
const ALL_WATCHERS: i64 = -1;

/// The client has gone: the stream must end.
pub struct Gone;

struct Watcher {
    key: Vec<u8>,
    end: Vec<u8>,
    prev_kv: bool,
    no_put: bool,
    no_delete: bool,
    progress_notify: bool,
    /// The lowest revision not yet delivered.
    next_rev: u64,
    /// Whether anything was sent since the last progress tick.
    sent_since_tick: bool,
    /// Whether the range reaches into the catalog view.
    sees_catalog: bool,
    /// The catalog-view keys last sent, to turn catalog changes into events.
    catalog: BTreeMap<Vec<u8>, KeyValue>,
    /// Counts the watcher in `/metrics` until it is dropped.
    _in_flight: InFlight,
}

impl Watcher {
    fn wants(&self, event: &KvEvent) -> bool {
        let kind_ok = match event.kind {
            KvEventKind::Put => !self.no_put,
            KvEventKind::Delete => !self.no_delete,
        };
        kind_ok
            && event.revision() >= self.next_rev
            && in_range(&event.kv.key, &self.key, &self.end)
    }
}

pub struct WatchStream {
    ctx: EtcdContext,
    out: mpsc::Sender<Result<WatchResponse, tonic::Status>>,
    watchers: BTreeMap<i64, Watcher>,
    next_id: i64,
    /// The revision of the newest hub batch handled.
    delivered: u64,
}

impl WatchStream {
    pub fn new(ctx: EtcdContext, out: mpsc::Sender<Result<WatchResponse, tonic::Status>>) -> Self {
        Self {
            ctx,
            out,
            watchers: BTreeMap::new(),
            next_id: 0,
            delivered: 0,
        }
    }

    async fn send(&self, response: WatchResponse) -> Result<(), Gone> {
        self.out.send(Ok(response)).await.map_err(|_| Gone)
    }

    fn response(&self, watch_id: i64, revision: u64) -> WatchResponse {
        WatchResponse {
            header: self.ctx.header(revision),
            watch_id,
            ..WatchResponse::default()
        }
    }

    /// etcd's answer to a watcher behind compaction, sent after `created`;
    /// its header's revision is 0, as etcd's is.
    fn compacted_response(&self, id: i64, compacted: u64) -> WatchResponse {
        let mut response = self.response(id, 0);
        response.canceled = true;
        response.compact_revision = i64::try_from(compacted).unwrap_or(i64::MAX);
        response
    }

    /// Creates a watcher: `created` first, then any history it asked for.
    pub async fn create(&mut self, req: WatchCreateRequest) -> Result<(), Gone> {
        let id = if req.watch_id != 0 {
            req.watch_id
        } else {
            while self.watchers.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            self.next_id
        };
        if self.watchers.contains_key(&id) || id < 0 {
            let mut response = self.response(ALL_WATCHERS, self.ctx.revision());
            response.created = true;
            response.canceled = true;
            response.cancel_reason = "mvcc: duplicate watch ID provided on the WatchStream".into();
            return self.send(response).await;
        }
        // etcd's conventions: an empty key means "\0"; an end of "\0" means
        // "from the key on", which `in_range` reads from `[0]` as well.
        let key = if req.key.is_empty() { vec![0] } else { req.key };
        let end = req.range_end;
        let filters: BTreeSet<i32> = req.filters.iter().copied().collect();
        let start = u64::try_from(req.start_revision).unwrap_or(0);
        let sees_catalog = catalog_view::overlaps(&key, &end);
        let (revision, history, catalog) = {
            let state = self.ctx.registry.view();
            let kv = state.kv();
            let revision = kv.revision();
            let history = if start > 0 && start <= revision {
                Some(kv.events_since(&key, &end, start))
            } else {
                None
            };
            let catalog = if sees_catalog {
                catalog_in_range(&state, &key, &end)
            } else {
                BTreeMap::new()
            };
            (revision, history, catalog)
        };
        let mut created = self.response(id, revision);
        created.created = true;
        self.send(created).await?;
        if let Some(Err(ApplyError::Compacted { compacted, .. })) = history {
            return self.send(self.compacted_response(id, compacted)).await;
        }
        let mut watcher = Watcher {
            key,
            end,
            prev_kv: req.prev_kv,
            no_put: filters.contains(&(watch_create_request::FilterType::Noput as i32)),
            no_delete: filters.contains(&(watch_create_request::FilterType::Nodelete as i32)),
            progress_notify: req.progress_notify,
            next_rev: if start == 0 { revision + 1 } else { start },
            sent_since_tick: false,
            sees_catalog,
            catalog: BTreeMap::new(),
            _in_flight: InFlight::new(telemetry::ETCD_WATCHERS),
        };
        if let Some(Ok(events)) = history {
            // The view has no history: instances changed since `start` are
            // replayed as puts (none for a NOPUT watcher), and instances
            // removed since then are unknown.
            let replay_catalog: Vec<KvEvent> = catalog
                .values()
                .filter(|kv| !watcher.no_put && kv.mod_revision >= start)
                .map(|kv| catalog_put(kv, None))
                .collect();
            let mut events: Vec<KvEvent> =
                events.into_iter().filter(|e| watcher.wants(e)).collect();
            events.extend(replay_catalog);
            events.sort_by_key(KvEvent::revision);
            for chunk in by_revision(&events, REPLAY_EVENTS_PER_RESPONSE) {
                self.send_events(id, &mut watcher, chunk, revision).await?;
            }
            watcher.next_rev = revision + 1;
        }
        watcher.catalog = catalog;
        self.watchers.insert(id, watcher);
        if req.watch_id == 0 {
            self.next_id = id + 1;
        }
        Ok(())
    }

    async fn send_events(
        &self,
        id: i64,
        watcher: &mut Watcher,
        events: &[KvEvent],
        revision: u64,
    ) -> Result<(), Gone> {
        if events.is_empty() {
            return Ok(());
        }
        let mut response = self.response(id, revision);
        response.events = events
            .iter()
            .map(|e| convert::event(e, watcher.prev_kv))
            .collect::<Vec<mvccpb::Event>>();
        watcher.sent_since_tick = true;
        self.send(response).await
    }

    /// Cancels a watcher; an unknown id gets no answer, as in etcd.
    pub async fn cancel(&mut self, id: i64) -> Result<(), Gone> {
        if self.watchers.remove(&id).is_none() {
            return Ok(());
        }
        let mut response = self.response(id, self.ctx.revision());
        response.canceled = true;
        self.send(response).await
    }

    /// Delivers one batch from the hub to every watcher that wants some of it.
    pub async fn deliver(&mut self, batch: &AppliedBatch) -> Result<(), Gone> {
        if batch.reset {
            return self.resync().await;
        }
        let catalog_changes = self.catalog_changes(batch);
        let ids: Vec<i64> = self.watchers.keys().copied().collect();
        for id in ids {
            let Some(mut watcher) = self.watchers.remove(&id) else {
                continue;
            };
            let mut events: Vec<KvEvent> = batch
                .kv_events
                .iter()
                .filter(|e| watcher.wants(e))
                .cloned()
                .collect();
            if watcher.sees_catalog {
                events.extend(diff_catalog(&mut watcher, &catalog_changes, batch.revision));
            }
            let sent = self
                .send_events(id, &mut watcher, &events, batch.revision)
                .await;
            watcher.next_rev = watcher.next_rev.max(batch.revision + 1);
            self.watchers.insert(id, watcher);
            sent?;
        }
        self.delivered = self.delivered.max(batch.revision);
        Ok(())
    }

    /// The current projection of each service the batch changed, for
    /// watchers of the catalog view.
    fn catalog_changes(
        &self,
        batch: &AppliedBatch,
    ) -> BTreeMap<String, BTreeMap<Vec<u8>, KeyValue>> {
        if batch.service_names.is_empty() || !self.watchers.values().any(|w| w.sees_catalog) {
            return BTreeMap::new();
        }
        let state = self.ctx.registry.view();
        batch
            .service_names
            .iter()
            .map(|name| (name.clone(), catalog_view::service(state.catalog(), name)))
            .collect()
    }

    /// Catches every watcher up from history after the hub dropped batches
    /// for this stream (or the state was replaced by a snapshot).
    ///
    /// The catalog view has no history, and the dropped batches named the
    /// services that changed: a watcher of the view gets the difference
    /// between the view now and what it was last sent, at the current
    /// revision, merged into its key history by revision.
    pub async fn resync(&mut self) -> Result<(), Gone> {
        let ids: Vec<i64> = self.watchers.keys().copied().collect();
        for id in ids {
            let Some(mut watcher) = self.watchers.remove(&id) else {
                continue;
            };
            // One read of the state, so history and view are of one revision.
            let (revision, history, catalog) = {
                let state = self.ctx.registry.view();
                let kv = state.kv();
                let revision = kv.revision();
                let history = (watcher.next_rev <= revision)
                    .then(|| kv.events_since(&watcher.key, &watcher.end, watcher.next_rev));
                let catalog = watcher
                    .sees_catalog
                    .then(|| catalog_in_range(&state, &watcher.key, &watcher.end));
                (revision, history, catalog)
            };
            let (mut events, caught_up) = match history {
                Some(Err(ApplyError::Compacted { compacted, .. })) => {
                    // Dropped: a compacted watcher is over.
                    self.send(self.compacted_response(id, compacted)).await?;
                    continue;
                }
                Some(Ok(events)) => {
                    let events: Vec<KvEvent> =
                        events.into_iter().filter(|e| watcher.wants(e)).collect();
                    (events, true)
                }
                Some(Err(_)) | None => (Vec::new(), false),
            };
            if let Some(now) = catalog {
                let before: Vec<Vec<u8>> = watcher.catalog.keys().cloned().collect();
                events.extend(diff_view(&mut watcher, before, &now, revision));
                // Stable: key events keep their order within a revision.
                events.sort_by_key(KvEvent::revision);
            }
            for chunk in by_revision(&events, REPLAY_EVENTS_PER_RESPONSE) {
                self.send_events(id, &mut watcher, chunk, revision).await?;
            }
            if caught_up {
                watcher.next_rev = watcher.next_rev.max(revision + 1);
            }
            self.watchers.insert(id, watcher);
        }
        self.delivered = self.delivered.max(self.ctx.revision());
        Ok(())
    }

    /// The revision up to which every watcher has everything, once the
    /// batches queued for this stream are handled: the caller drains the
    /// hub right after reading it. Batches are published before the state's
    /// lock is released, so all changes up to this revision are queued.
    pub fn progress_mark(&self) -> u64 {
        self.ctx.revision()
    }

    /// Answers a progress request: one response for the whole stream.
    pub async fn progress(&mut self, mark: u64) -> Result<(), Gone> {
        let revision = mark.max(self.delivered);
        self.send(self.response(ALL_WATCHERS, revision)).await
    }

    /// The periodic progress notification of watchers that asked for it and
    /// heard nothing since the last tick.
    pub async fn progress_tick(&mut self, mark: u64) -> Result<(), Gone> {
        let revision = mark.max(self.delivered);
        let due: Vec<i64> = self
            .watchers
            .iter_mut()
            .filter(|(_, w)| w.progress_notify)
            .filter_map(|(id, w)| {
                let quiet = !w.sent_since_tick;
                w.sent_since_tick = false;
                quiet.then_some(*id)
            })
            .collect();
        for id in due {
            self.send(self.response(id, revision)).await?;
        }
        Ok(())
    }
}

/// Splits events (ordered by revision) into runs of about `max` events that
/// never cut a revision in two.
fn by_revision(events: &[KvEvent], max: usize) -> Vec<&[KvEvent]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < events.len() {
        let mut end = (start + max).min(events.len());
        while end < events.len()
            && end > start
            && events[end].revision() == events[end - 1].revision()
        {
            end += 1;
        }
        chunks.push(&events[start..end]);
        start = end;
    }
    chunks
}

fn catalog_put(kv: &KeyValue, prev: Option<&KeyValue>) -> KvEvent {
    KvEvent {
        kind: KvEventKind::Put,
        kv: kv.clone(),
        prev: prev.cloned(),
    }
}

/// The catalog view's keys in `[key, end)`, by key.
fn catalog_in_range(
    machine: &sextant_state::StateMachine,
    key: &[u8],
    end: &[u8],
) -> BTreeMap<Vec<u8>, KeyValue> {
    catalog_view::range(machine.catalog(), key, end)
        .into_iter()
        .map(|kv| (kv.key.clone(), kv))
        .collect()
}

/// Turns the new projection of changed services into events for one
/// watcher, and remembers what it was sent.
fn diff_catalog(
    watcher: &mut Watcher,
    changes: &BTreeMap<String, BTreeMap<Vec<u8>, KeyValue>>,
    revision: u64,
) -> Vec<KvEvent> {
    let mut events = Vec::new();
    for (name, now) in changes {
        if !catalog_view::watches_service(&watcher.key, &watcher.end, name) {
            continue;
        }
        let before: Vec<Vec<u8>> = watcher
            .catalog
            .keys()
            .filter(|k| catalog_view::service_of(k) == Some(name.as_str()))
            .cloned()
            .collect();
        events.extend(diff_view(watcher, before, now, revision));
    }
    events
}

/// Turns the view `now` of the watcher's keys `before` (those it was sent
/// that `now` covers) into events, deletes stamped `revision`, and
/// remembers what it was sent. NOPUT and NODELETE filter the events, not
/// what is remembered.
fn diff_view(
    watcher: &mut Watcher,
    before: Vec<Vec<u8>>,
    now: &BTreeMap<Vec<u8>, KeyValue>,
    revision: u64,
) -> Vec<KvEvent> {
    let mut events = Vec::new();
    for key in before {
        if !now.contains_key(&key) {
            if let Some(prev) = watcher.catalog.remove(&key) {
                if !watcher.no_delete {
                    events.push(KvEvent {
                        kind: KvEventKind::Delete,
                        kv: KeyValue {
                            key,
                            mod_revision: revision,
                            ..KeyValue::default()
                        },
                        prev: Some(prev),
                    });
                }
            }
        }
    }
    for (key, kv) in now {
        if !in_range(key, &watcher.key, &watcher.end) {
            continue;
        }
        let prev = watcher.catalog.get(key);
        if prev.is_some_and(|p| p.value == kv.value) {
            continue;
        }
        if !watcher.no_put {
            events.push(catalog_put(kv, prev));
        }
        watcher.catalog.insert(key.clone(), kv.clone());
    }
    events
}
