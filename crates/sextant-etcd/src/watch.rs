//! etcd's Watch service: one task per client stream multiplexes its
//! watchers (see `watch_stream`), reading client requests, hub batches and
//! the progress ticker in one loop so that their effects are ordered.

use std::pin::Pin;

use futures::Stream;
use sextant_proto::etcd::etcdserverpb::watch_server::Watch;
use sextant_proto::etcd::etcdserverpb::{watch_request, WatchRequest, WatchResponse};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::watch_stream::{Gone, WatchStream};
use super::EtcdContext;

/// Responses waiting for a slow client, per stream (etcd's `chanBufLen`).
const STREAM_BUFFER: usize = 128;

pub struct WatchService {
    ctx: EtcdContext,
}

impl WatchService {
    pub fn new(ctx: EtcdContext) -> Self {
        Self { ctx }
    }
}

type WatchResponseStream =
    Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = WatchResponseStream;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let ctx = self.ctx.clone();
        // Ends when the client goes, or on shutdown.
        tokio::spawn(run(ctx, inbound, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

async fn run(
    ctx: EtcdContext,
    mut inbound: Streaming<WatchRequest>,
    tx: mpsc::Sender<Result<WatchResponse, Status>>,
) {
    // Subscribed before any history is read: see `watch_stream`.
    let mut batches = ctx.registry.hub().subscribe_kv();
    let stop = ctx.stop.clone();
    let mut ticker = tokio::time::interval(ctx.config.progress_notify_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.reset();
    let mut stream = WatchStream::new(ctx, tx);
    loop {
        let step: Result<(), Gone> = tokio::select! {
            _ = sextant_core::tasks::stopped(stop.clone()) => return,
            request = inbound.message() => match request {
                Ok(Some(request)) => handle(&mut stream, &mut batches, request).await,
                Ok(None) | Err(_) => return,
            },
            batch = batches.recv() => match batch {
                Ok(batch) => stream.deliver(&batch).await,
                Err(RecvError::Lagged(_)) => stream.resync().await,
                Err(RecvError::Closed) => return,
            },
            _ = ticker.tick() => {
                let mark = stream.progress_mark();
                match drain(&mut stream, &mut batches).await {
                    Ok(()) => stream.progress_tick(mark).await,
                    Err(gone) => Err(gone),
                }
            }
        };
        if step.is_err() {
            return;
        }
    }
}

async fn handle(
    stream: &mut WatchStream,
    batches: &mut tokio::sync::broadcast::Receiver<
        std::sync::Arc<sextant_core::watch_hub::AppliedBatch>,
    >,
    request: WatchRequest,
) -> Result<(), Gone> {
    match request.request_union {
        Some(watch_request::RequestUnion::CreateRequest(create)) => stream.create(create).await,
        Some(watch_request::RequestUnion::CancelRequest(cancel)) => {
            stream.cancel(cancel.watch_id).await
        }
        Some(watch_request::RequestUnion::ProgressRequest(_)) => {
            let mark = stream.progress_mark();
            drain(stream, batches).await?;
            stream.progress(mark).await
        }
        // etcd ignores what it does not understand and keeps the stream.
        None => Ok(()),
    }
}

/// Handles every batch already queued, so a progress report that follows
/// covers them.
async fn drain(
    stream: &mut WatchStream,
    batches: &mut tokio::sync::broadcast::Receiver<
        std::sync::Arc<sextant_core::watch_hub::AppliedBatch>,
    >,
) -> Result<(), Gone> {
    loop {
        match batches.try_recv() {
            Ok(batch) => stream.deliver(&batch).await?,
            Err(TryRecvError::Lagged(_)) => stream.resync().await?,
            Err(TryRecvError::Empty) | Err(TryRecvError::Closed) => return Ok(()),
        }
    }
}
