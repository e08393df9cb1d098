//! etcd's Lease service. Grants and revokes go through Raft; keep-alives
//! and remaining TTLs are the lease keeper's (the leader's memory).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::Stream;
use sextant_proto::etcd::etcdserverpb::lease_server::Lease;
use sextant_proto::etcd::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use sextant_state::lease::LeaseId;
use sextant_state::{ApplyError, Op, Response as Applied};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::error::{status, EtcdError};
use super::EtcdContext;
use sextant_core::lease_keeper::KeeperRequest;
use sextant_core::registry::{now_ms, Consistency};

/// etcd's largest lease TTL, in seconds.
const MAX_LEASE_TTL_SECS: i64 = 9_000_000_000;
/// Keep-alive answers waiting for a slow client, per stream.
const KEEP_ALIVE_BUFFER: usize = 16;
/// How often a server-chosen id collides before the grant gives up.
const GRANT_ATTEMPTS: u32 = 5;

pub struct LeaseService {
    ctx: EtcdContext,
    /// Makes server-chosen ids differ within one millisecond.
    counter: AtomicU64,
}

impl LeaseService {
    pub fn new(ctx: EtcdContext) -> Self {
        Self {
            ctx,
            counter: AtomicU64::new(0),
        }
    }

    /// A fresh lease id in etcd's layout: the member's low bits on top (so
    /// members rarely collide), then time and a counter; positive, never 0.
    fn next_id(&self) -> LeaseId {
        let member = (self.ctx.registry.id() & 0x7fff) << 48;
        let time = (now_ms() & 0xffff_ffff) << 16;
        let count = self.counter.fetch_add(1, Ordering::Relaxed) & 0xffff;
        let id = (member | time | count) & (i64::MAX as u64);
        i64::try_from(id).unwrap_or(1).max(1)
    }
}

type KeepAliveStream =
    Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let req = request.into_inner();
        if req.ttl > MAX_LEASE_TTL_SECS {
            return Err(status(EtcdError::LeaseTtlTooLarge));
        }
        let ttl = req.ttl.max(self.ctx.lease_ttl_min_secs);
        let chosen = req.id != 0;
        for _ in 0..GRANT_ATTEMPTS {
            let id = if chosen { req.id } else { self.next_id() };
            let outcome = self
                .ctx
                .registry
                .write(Op::LeaseGrant { id, ttl_secs: ttl })
                .await
                .map_err(status)?;
            match outcome.response {
                Applied::Rejected(ApplyError::LeaseExists { .. }) if !chosen => continue,
                Applied::Rejected(e) => return Err(status(e)),
                _ => {
                    self.ctx.keeper.granted(id, ttl);
                    return Ok(Response::new(LeaseGrantResponse {
                        header: self.ctx.header(outcome.revision),
                        id,
                        ttl,
                        error: String::new(),
                    }));
                }
            }
        }
        Err(status(EtcdError::LeaseExists))
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let id = request.into_inner().id;
        let outcome = self
            .ctx
            .registry
            .write(Op::LeaseRevoke { id })
            .await
            .map_err(status)?;
        if let Applied::Rejected(e) = outcome.response {
            return Err(status(e));
        }
        self.ctx.keeper.revoked(id);
        Ok(Response::new(LeaseRevokeResponse {
            header: self.ctx.header(outcome.revision),
        }))
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(KEEP_ALIVE_BUFFER);
        let ctx = self.ctx.clone();
        let stop = ctx.stop.clone();
        // Ends with the client's stream, at the first failure, or on shutdown.
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    _ = sextant_core::tasks::stopped(stop.clone()) => break,
                    next = inbound.message() => next,
                };
                let id = match next {
                    Ok(Some(req)) => req.id,
                    Ok(None) | Err(_) => break,
                };
                let answer = match ctx.keeper.ask(KeeperRequest::KeepAlive { id }).await {
                    // Unknown or expired: TTL 0, not an error (etcd does the same).
                    Ok(ttl) => Ok(LeaseKeepAliveResponse {
                        header: ctx.header(ctx.revision()),
                        id,
                        ttl: ttl.unwrap_or(0),
                    }),
                    Err(e) => Err(status(e)),
                };
                let failed = answer.is_err();
                if tx.send(answer).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let req = request.into_inner();
        self.ctx
            .registry
            .read_barrier(Consistency::Default)
            .await
            .map_err(status)?;
        let found = {
            let state = self.ctx.registry.view();
            state.leases().get(req.id).map(|lease| {
                let keys: Vec<Vec<u8>> = if req.keys {
                    lease.keys.iter().cloned().collect()
                } else {
                    Vec::new()
                };
                (lease.ttl_secs, keys)
            })
        };
        let header = self.ctx.header(self.ctx.revision());
        let Some((granted_ttl, keys)) = found else {
            // etcd answers an unknown lease with TTL -1, not an error.
            return Ok(Response::new(LeaseTimeToLiveResponse {
                header,
                id: req.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            }));
        };
        let remaining = self
            .ctx
            .keeper
            .ask(KeeperRequest::Remaining { id: req.id })
            .await
            .map_err(status)?;
        Ok(Response::new(LeaseTimeToLiveResponse {
            header,
            id: req.id,
            ttl: remaining.unwrap_or(-1),
            granted_ttl,
            keys,
        }))
    }

    async fn lease_leases(
        &self,
        _request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        self.ctx
            .registry
            .read_barrier(Consistency::Default)
            .await
            .map_err(status)?;
        let leases = {
            let state = self.ctx.registry.view();
            state
                .leases()
                .iter()
                .map(|l| LeaseStatus { id: l.id })
                .collect()
        };
        Ok(Response::new(LeaseLeasesResponse {
            header: self.ctx.header(self.ctx.revision()),
            leases,
        }))
    }
}
