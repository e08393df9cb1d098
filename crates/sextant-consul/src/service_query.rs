//! Blocking queries scoped to one service (`/v1/health/service/:name`,
//! `/v1/catalog/service/:name`, `/v1/health/checks/:name`), with shared
//! evaluations.
//!
//! - They wait on the watch hub's per-service watch, so a write to another
//!   service (or to the key space) wakes none of them; their index is the
//!   service's own index, which moves only when its answer can have changed.
//! - Identical queries share one evaluation: the rendered JSON body is kept
//!   per query (path and answer-shaping parameters) together with the
//!   service index it was computed at. When ten thousand watchers wake on
//!   one change, the first renders the body and the rest reuse its bytes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue};
use serde_json::Value;
use sextant_state::StateMachine;

use super::blocking::{jitter, query_headers};
use super::error::HttpError;
use super::params::Params;
use sextant_core::registry::Registry;
use sextant_core::telemetry::{self, InFlight};
use sextant_core::watch_hub::WatchHub;

/// Bodies kept; past this many distinct queries the cache starts over (a
/// cache miss only costs one evaluation).
const MAX_SHARED: usize = 4096;

/// One query's last rendered answer.
struct Slot {
    index: u64,
    body: OnceLock<Bytes>,
}

#[derive(Default)]
pub struct SharedEvaluations {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

impl SharedEvaluations {
    /// The body of query `key` at service index `index`, rendered by
    /// `render` unless a caller already did for that index. Concurrent
    /// callers with the same key and index wait for the one rendering.
    fn body(&self, key: &str, index: u64, render: impl FnOnce() -> Bytes) -> Bytes {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            match slots.get(key) {
                Some(slot) if slot.index == index => slot.clone(),
                _ => {
                    if slots.len() >= MAX_SHARED {
                        slots.clear();
                    }
                    let slot = Arc::new(Slot {
                        index,
                        body: OnceLock::new(),
                    });
                    slots.insert(key.to_owned(), slot.clone());
                    slot
                }
            }
        };
        slot.body.get_or_init(render).clone()
    }
}

/// The answer of a service-scoped query: headers and a JSON body.
pub struct ServiceAnswer {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl axum::response::IntoResponse for ServiceAnswer {
    fn into_response(self) -> axum::response::Response {
        let mut headers = self.headers;
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        (headers, self.body).into_response()
    }
}

/// Runs a query on service `service` whose answer is `evaluate`'s JSON,
/// blocking per `params`. `key` names the query for sharing: the same key
/// must mean the same answer for the same service index.
pub async fn query(
    registry: &Registry,
    shared: &SharedEvaluations,
    params: &Params,
    service: &str,
    key: String,
    evaluate: impl Fn(&StateMachine) -> Value,
) -> Result<ServiceAnswer, HttpError> {
    let consistency = params.consistency()?;
    let blocking = params.blocking()?;
    // Subscribe before reading, so a change between the read and the wait
    // is not missed.
    let hub: &WatchHub = registry.hub();
    let mut changes = hub.subscribe_service(service);
    registry.read_barrier(consistency).await?;
    // Whatever was published before this point is in the state read below.
    changes.mark_unchanged();
    let run = || {
        let state = registry.view();
        let index = state.catalog().service_index(service);
        let body = shared.body(&key, index, || {
            Bytes::from(serde_json::to_vec(&evaluate(&state)).unwrap_or_default())
        });
        (state.revision(), index, body)
    };
    let (revision, mut index, mut body) = run();
    if let Some(blocking) = blocking {
        // A client ahead of us (after a restore) gets our index at once.
        if blocking.index <= revision {
            let _in_flight = InFlight::new(telemetry::BLOCKING_QUERIES);
            let deadline = Instant::now() + blocking.wait + jitter(blocking.wait);
            while index <= blocking.index {
                match tokio::time::timeout_at(deadline.into(), changes.changed()).await {
                    Ok(Ok(())) => (_, index, body) = run(),
                    Ok(Err(_)) | Err(_) => break,
                }
            }
        }
    }
    Ok(ServiceAnswer {
        headers: query_headers(registry, index.max(1), consistency),
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn identical_queries_share_one_rendering_per_index() {
        let shared = SharedEvaluations::default();
        let renders = AtomicUsize::new(0);
        let render = || {
            renders.fetch_add(1, Ordering::SeqCst);
            Bytes::from_static(b"[]")
        };
        for _ in 0..100 {
            shared.body("health/web", 7, render);
        }
        assert_eq!(renders.load(Ordering::SeqCst), 1);
        shared.body("health/web", 8, render);
        shared.body("health/web?passing", 8, render);
        assert_eq!(renders.load(Ordering::SeqCst), 3);
    }
}
