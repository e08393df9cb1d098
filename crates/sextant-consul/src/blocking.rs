//! Consul's blocking queries, run against the local applied state.
//!
//! The result is evaluated under the read lock; if its index has not passed the
//! client's, the query sleeps until the applied revision moves (or the wait
//! ends) and evaluates again. A return does not promise a change.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue};
use rand::Rng;
use sextant_state::StateMachine;

use super::error::HttpError;
use super::params::Params;
use sextant_core::registry::{Consistency, Registry};
use sextant_core::telemetry::{self, InFlight};

/// A query's answer with its `X-Consul-*` headers.
pub struct Indexed<T> {
    pub value: T,
    pub headers: HeaderMap,
}

/// Runs `evaluate` with the consistency and blocking options in `params`.
/// `evaluate` returns the result's index (for example the highest ModifyIndex
/// among the keys it read) and the result.
pub async fn query<T>(
    registry: &Registry,
    params: &Params,
    evaluate: impl Fn(&StateMachine) -> (u64, T),
) -> Result<Indexed<T>, HttpError> {
    let consistency = params.consistency()?;
    let blocking = params.blocking()?;
    registry.read_barrier(consistency).await?;
    let run = || {
        let state = registry.view();
        let revision = state.revision();
        let (index, value) = evaluate(&state);
        (revision, index, value)
    };
    let (mut revision, mut index, mut value) = run();
    if let Some(blocking) = blocking {
        // A client ahead of us (after a restore or against another cluster)
        // gets our lower index at once and starts over from it.
        if blocking.index <= revision {
            let _in_flight = InFlight::new(telemetry::BLOCKING_QUERIES);
            let deadline = Instant::now() + blocking.wait + jitter(blocking.wait);
            while index <= blocking.index && Instant::now() < deadline {
                registry.wait_past(revision, deadline).await;
                (revision, index, value) = run();
            }
        }
    }
    let index = index.max(1);
    Ok(Indexed {
        value,
        headers: query_headers(registry, index, consistency),
    })
}

/// Up to wait/16 more, so many clients woken together do not return together.
pub(super) fn jitter(wait: Duration) -> Duration {
    let max = wait / 16;
    if max.is_zero() {
        return Duration::ZERO;
    }
    Duration::from_nanos(rand::rng().random_range(0..max.as_nanos() as u64))
}

pub(super) fn query_headers(
    registry: &Registry,
    index: u64,
    consistency: Consistency,
) -> HeaderMap {
    let meta = registry.query_meta();
    let mut headers = HeaderMap::new();
    headers.insert("X-Consul-Index", HeaderValue::from(index));
    headers.insert(
        "X-Consul-KnownLeader",
        HeaderValue::from_static(if meta.known_leader { "true" } else { "false" }),
    );
    headers.insert(
        "X-Consul-LastContact",
        HeaderValue::from(meta.last_contact_ms),
    );
    let effective = match consistency {
        Consistency::Stale => "stale",
        Consistency::Default => "leader",
        Consistency::Consistent => "consistent",
    };
    headers.insert(
        "X-Consul-Effective-Consistency",
        HeaderValue::from_static(effective),
    );
    headers
}
