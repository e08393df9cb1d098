//! `KeepAlive`: one stream per client process. Each message renews the TTL
//! checks of every instance it names, through the path of Consul's
//! `/v1/agent/check/pass` (the leader keeps every TTL clock in memory; the
//! first pass after registration turns it passing with one Raft write, the
//! others write nothing). The answer lists the instances the registry does
//! not hold, which the client registers again. A message the leader could
//! not take (no leader, no quorum, unreachable) is answered with an
//! `UNAVAILABLE` status, which ends the stream: the client must not believe
//! it renewed, and reconnects (to another server, with backoff).
//!
//! Messages are handled one at a time, in order, as the client sends them:
//! a client that stops reading its answers stops being read (no buffer
//! grows), and other streams are not affected.

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use sextant_proto::v1::{InstanceRef, KeepAliveRequest, KeepAliveResponse};
use sextant_state::catalog::{CheckKind, CheckStatus};
use tonic::{Status, Streaming};

use super::error::NativeError;
use super::register::instance_node;
use sextant_core::tasks::stopped;

use super::NativeContext;
use sextant_core::health::TtlUpdateError;
use sextant_core::registry::{Consistency, RegistryError};

/// TTL updates of one message in flight at once (each may be a request to
/// another server, the leader).
const RENEWALS_IN_FLIGHT: usize = 16;

/// How long a keep-alive naming unknown instances waits to catch up with
/// the leader before answering from this server's state.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(2);

/// The answers of one KeepAlive stream.
pub type KeepAliveStream =
    Pin<Box<dyn Stream<Item = Result<KeepAliveResponse, Status>> + Send + 'static>>;

/// The answers to a client's stream of keep-alives; ends with the client's
/// stream, or when the server stops.
pub fn stream(ctx: NativeContext, inbound: Streaming<KeepAliveRequest>) -> KeepAliveStream {
    let stop = stopped(ctx.stop.clone());
    Box::pin(inbound.take_until(stop).then(move |message| {
        let ctx = ctx.clone();
        async move {
            match message {
                Ok(request) => renew(&ctx, request).await.map_err(Status::from),
                Err(status) => Err(status),
            }
        }
    }))
}

/// What one instance's renewal found.
enum Renewal {
    /// Renewed; the shortest TTL among its TTL checks, if it has any.
    Known(Option<u64>),
    Unknown,
    /// Not renewed: the leader could not take it; why.
    Failed(String),
}

async fn renew(
    ctx: &NativeContext,
    request: KeepAliveRequest,
) -> Result<KeepAliveResponse, NativeError> {
    if request.instances.iter().any(|r| r.instance_id.is_empty()) {
        return Err(NativeError::invalid("every instance needs an instance_id"));
    }
    let mut renewals = renew_all(ctx, &request.instances).await;
    if renewals.iter().any(|r| matches!(r, Renewal::Unknown)) {
        // This server may not have applied a registration made through
        // another one yet: catch up with the leader and look once more
        // before telling the client to register again.
        // Bounded: during an election the answer must not wait for a
        // leader (an instance wrongly reported is only registered again).
        let barrier = ctx.registry.read_barrier(Consistency::Default);
        if let Ok(Ok(())) = tokio::time::timeout(CATCH_UP_TIMEOUT, barrier).await {
            let missing: Vec<InstanceRef> = request
                .instances
                .iter()
                .zip(&renewals)
                .filter(|(_, r)| matches!(r, Renewal::Unknown))
                .map(|(i, _)| i.clone())
                .collect();
            let mut again = renew_all(ctx, &missing).await.into_iter();
            for renewal in renewals.iter_mut() {
                if matches!(renewal, Renewal::Unknown) {
                    if let Some(next) = again.next() {
                        *renewal = next;
                    }
                }
            }
        }
    }
    if let Some(reason) = renewals.iter().find_map(|r| match r {
        Renewal::Failed(reason) => Some(reason.clone()),
        _ => None,
    }) {
        return Err(NativeError::Registry(RegistryError::Unavailable {
            reason: format!("keep-alive not taken: {reason}"),
        }));
    }
    let mut response = KeepAliveResponse::default();
    for (instance, renewal) in request.instances.into_iter().zip(renewals) {
        match renewal {
            Renewal::Unknown => response.unknown.push(instance),
            Renewal::Known(Some(ttl_ms)) => {
                response.ttl_ms = match response.ttl_ms {
                    0 => ttl_ms,
                    shortest => shortest.min(ttl_ms),
                }
            }
            Renewal::Known(None) | Renewal::Failed(_) => {}
        }
    }
    Ok(response)
}

/// Renews each instance; the answers in the order of `instances`.
async fn renew_all(ctx: &NativeContext, instances: &[InstanceRef]) -> Vec<Renewal> {
    // Owned per renewal: the stream's futures then borrow nothing, which
    // keeps the whole response stream `Send`.
    futures::stream::iter(instances.to_vec())
        .map(|instance| {
            let ctx = ctx.clone();
            async move { renew_one(&ctx, &instance).await }
        })
        .buffered(RENEWALS_IN_FLIGHT)
        .collect()
        .await
}

async fn renew_one(ctx: &NativeContext, instance: &InstanceRef) -> Renewal {
    let ttl_checks: Vec<(String, String, u64)> = {
        let state = ctx.registry.view();
        let node = if instance.node.is_empty() {
            instance_node(&state, &ctx.registry.node().name, &instance.instance_id)
        } else {
            Some(instance.node.clone())
        };
        let catalog = state.catalog();
        let Some(node) = node.filter(|n| catalog.service(n, &instance.instance_id).is_some())
        else {
            return Renewal::Unknown;
        };
        catalog
            .checks_of_instance(&node, &instance.instance_id)
            .into_iter()
            .filter_map(|c| match c.definition.kind {
                CheckKind::Ttl { ttl_ms } => Some((node.clone(), c.id.clone(), ttl_ms)),
                _ => None,
            })
            .collect()
    };
    let mut shortest: Option<u64> = None;
    for (node, check_id, ttl_ms) in ttl_checks {
        let passed = ctx
            .health
            .ttl_update_routed(&node, &check_id, CheckStatus::Passing, "")
            .await;
        match passed {
            Ok(written) => {
                if let Some(index) = written {
                    // The instance just turned passing: let a Discover on
                    // this server see it.
                    ctx.registry.applied_here(index).await;
                }
                shortest = Some(shortest.map_or(ttl_ms, |s| s.min(ttl_ms)));
            }
            // Deregistered (or reaped) since it was looked up.
            Err(TtlUpdateError::UnknownCheck(_)) => return Renewal::Unknown,
            Err(e) => {
                tracing::debug!(check = %check_id, error = %e, "keep-alive: TTL update failed");
                return Renewal::Failed(e.to_string());
            }
        }
    }
    Renewal::Known(shortest)
}
