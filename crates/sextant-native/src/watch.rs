//! `Watch`: a service's matching instances as a stream of deltas.
//!
//! The stream waits on the watch hub's per-service watch (the one blocking
//! health queries wait on), so only a change of this service wakes it. On
//! each change the matching set is evaluated again and compared with the
//! last one sent: instances that entered are `Add`, left are `Remove`,
//! changed are `Update`, each carrying the service's revision. Changes that
//! leave the set as the client sees it (a check's output) send nothing.
//!
//! Nothing is buffered per change beyond the deltas of one evaluation: the
//! stream computes the next deltas only when the client has taken the
//! previous ones, and the hub's watch keeps only the newest revision, so a
//! slow client skips straight to the current state and never holds up the
//! apply loop or other clients.

use std::collections::VecDeque;
use std::pin::Pin;

use futures::Stream;
use sextant_proto::v1::watch_event::Event;
use sextant_proto::v1::{Removed, Reset, WatchEvent, WatchRequest};
use tokio::sync::watch;
use tonic::Status;

use super::error::NativeError;
use super::selection::{Matching, Selection};
use sextant_core::tasks::stopped;

use super::NativeContext;
use sextant_core::registry::Consistency;

/// The events of one Watch.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, Status>> + Send + 'static>>;

struct Watcher {
    ctx: NativeContext,
    selection: Selection,
    changes: watch::Receiver<u64>,
    /// The set as the client holds it once `pending` is sent.
    sent: Matching,
    pending: VecDeque<WatchEvent>,
    /// The stream has ended (after telling the client the server stops).
    done: bool,
}

/// Opens a watch: a `Reset` first, unless `after_revision` shows the client
/// already holds the current set.
pub async fn open(ctx: NativeContext, request: WatchRequest) -> Result<WatchStream, NativeError> {
    let selection = Selection::new(
        request.service,
        request.tags,
        request.meta,
        request.include_unhealthy,
    )?;
    // Subscribed before reading, so a change between the read and the wait
    // is not missed.
    let mut changes = ctx.registry.hub().subscribe_service(&selection.service);
    // A client resuming from a revision it saw elsewhere must be compared
    // with the leader's state, not with a follower's older one.
    ctx.registry.read_barrier(Consistency::Default).await?;
    changes.mark_unchanged();
    let (revision, applied, sent) = {
        let state = ctx.registry.view();
        let (revision, matching) = selection.evaluate(state.catalog());
        (revision, state.revision(), matching)
    };
    // Covered: the service has not changed since the revision the client
    // saw. A revision beyond everything applied was never this cluster's
    // (the client saw a state that is gone): it gets a Reset.
    let covered = request.after_revision > 0
        && request.after_revision >= revision
        && request.after_revision <= applied;
    let pending = if covered {
        VecDeque::new()
    } else {
        VecDeque::from([WatchEvent {
            event: Some(Event::Reset(Reset {
                instances: sent.values().cloned().collect(),
            })),
            revision,
        }])
    };
    let watcher = Watcher {
        ctx,
        selection,
        changes,
        sent,
        pending,
        done: false,
    };
    Ok(Box::pin(futures::stream::unfold(watcher, next)))
}

async fn next(mut watcher: Watcher) -> Option<(Result<WatchEvent, Status>, Watcher)> {
    if watcher.done {
        return None;
    }
    loop {
        if let Some(event) = watcher.pending.pop_front() {
            return Some((Ok(event), watcher));
        }
        let stop = stopped(watcher.ctx.stop.clone());
        let woken = tokio::select! {
            changed = watcher.changes.changed() => Wake::Changed(changed.is_ok()),
            () = stop => Wake::Stopping,
        };
        match woken {
            Wake::Changed(true) => {}
            // The hub is gone: the server is going away.
            Wake::Changed(false) => return None,
            Wake::Stopping => {
                // Told, so the client reconnects to another server instead
                // of taking a clean end for "nothing more to watch".
                watcher.done = true;
                let status = Status::from(NativeError::ShuttingDown);
                return Some((Err(status), watcher));
            }
        }
        let (revision, matching) = {
            let state = watcher.ctx.registry.view();
            watcher.selection.evaluate(state.catalog())
        };
        watcher.pending = deltas(&watcher.sent, &matching, revision);
        watcher.sent = matching;
    }
}

enum Wake {
    /// The service changed (`false`: its watch is gone).
    Changed(bool),
    Stopping,
}

/// What turns `before` into `after`, each delta stamped with `revision`:
/// removals first, then additions and updates, in key order.
fn deltas(before: &Matching, after: &Matching, revision: u64) -> VecDeque<WatchEvent> {
    let event = |event| WatchEvent {
        event: Some(event),
        revision,
    };
    let mut out: VecDeque<WatchEvent> = before
        .iter()
        .filter(|(key, _)| !after.contains_key(*key))
        .map(|((node, id), _)| {
            event(Event::Remove(Removed {
                instance_id: id.clone(),
                node: node.clone(),
            }))
        })
        .collect();
    for (key, now) in after {
        match before.get(key) {
            None => out.push_back(event(Event::Add(now.clone()))),
            // The instance's own revision moves with output-only check
            // changes too; only what the client sees counts.
            Some(was) if was.instance != now.instance || was.status != now.status => {
                out.push_back(event(Event::Update(now.clone())))
            }
            Some(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_proto::v1::{HealthStatus, Instance, InstanceState};

    fn state(id: &str, port: u32, status: HealthStatus, revision: u64) -> InstanceState {
        InstanceState {
            instance: Some(Instance {
                id: id.into(),
                service: "web".into(),
                port,
                ..Instance::default()
            }),
            node: "n".into(),
            status: status as i32,
            revision,
        }
    }

    fn set(states: &[InstanceState]) -> Matching {
        states
            .iter()
            .map(|s| {
                let id = s
                    .instance
                    .as_ref()
                    .map(|i| i.id.clone())
                    .unwrap_or_default();
                ((s.node.clone(), id), s.clone())
            })
            .collect()
    }

    #[test]
    fn deltas_add_update_and_remove() {
        let before = set(&[
            state("a", 1, HealthStatus::Passing, 3),
            state("b", 2, HealthStatus::Passing, 3),
            state("c", 3, HealthStatus::Passing, 3),
        ]);
        let after = set(&[
            state("b", 2, HealthStatus::Warning, 7),
            // Only the revision moved (an output change): nothing to send.
            state("c", 3, HealthStatus::Passing, 7),
            state("d", 4, HealthStatus::Passing, 7),
        ]);
        let kinds: Vec<(String, u64)> = deltas(&before, &after, 7)
            .into_iter()
            .map(|e| {
                let what = match e.event {
                    Some(Event::Remove(r)) => format!("remove {}", r.instance_id),
                    Some(Event::Add(s)) => {
                        format!("add {}", s.instance.map(|i| i.id).unwrap_or_default())
                    }
                    Some(Event::Update(s)) => {
                        format!("update {}", s.instance.map(|i| i.id).unwrap_or_default())
                    }
                    other => format!("{other:?}"),
                };
                (what, e.revision)
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("remove a".to_string(), 7),
                ("update b".to_string(), 7),
                ("add d".to_string(), 7)
            ]
        );
        assert!(deltas(&after, &after, 8).is_empty());
    }
}
