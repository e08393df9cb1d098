//! A span, a count and a latency for every call on the client-facing gRPC
//! port (etcd v3 and whatever else is served there), as a tower layer in
//! front of all its services.
//!
//! A call ends with its response: a unary call with its trailers, a stream
//! (Watch, LeaseKeepAlive) when it closes. Its status is `grpc-status`, in the
//! headers of a trailers-only response (how tonic answers errors) or in the
//! trailers. A call whose response is dropped before either (the client went
//! away) counts as `Cancelled`.
//!
//! Calls are labelled by their method path; a path no service knows (answered
//! `Unimplemented`) is labelled `unmatched`, so clients cannot grow the
//! number of series.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use metrics::{counter, histogram};
use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::telemetry;

/// The label of a call to a method no service serves.
const UNMATCHED: &str = "unmatched";
const CANCELLED: i32 = 1;
const UNKNOWN: i32 = 2;
const UNIMPLEMENTED: i32 = 12;

/// Wraps every gRPC service of a server (`Server::builder().layer(..)`).
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcSpanLayer;

impl<S> tower::Layer<S> for GrpcSpanLayer {
    type Service = GrpcSpan<S>;

    fn layer(&self, inner: S) -> GrpcSpan<S> {
        GrpcSpan { inner }
    }
}

/// The service [`GrpcSpanLayer`] makes.
#[derive(Clone, Debug)]
pub struct GrpcSpan<S> {
    inner: S,
}

impl<S, RequestBody, ResponseBody> tower::Service<Request<RequestBody>> for GrpcSpan<S>
where
    S: tower::Service<Request<RequestBody>, Response = Response<ResponseBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResponseBody: Send + 'static,
{
    type Response = Response<TracedBody<ResponseBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
        let call = Call::start(request.uri().path());
        let response = {
            let _entered = call.span.enter();
            self.inner.call(request)
        };
        let span = call.span.clone();
        Box::pin(
            async move {
                let response = response.await?;
                let (parts, body) = response.into_parts();
                let call = match status(&parts.headers) {
                    Some(code) => {
                        call.finish(code);
                        None
                    }
                    None => Some(call),
                };
                Ok(Response::from_parts(
                    parts,
                    TracedBody { inner: body, call },
                ))
            }
            .instrument(span),
        )
    }
}

/// A response body that ends its call when the trailers (or the end) pass.
#[derive(Debug)]
pub struct TracedBody<B> {
    inner: B,
    /// `None` once the call has ended.
    call: Option<Call>,
}

impl<B> Body for TracedBody<B>
where
    B: Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(Some(Ok(frame))) => frame
                .trailers_ref()
                .map(|trailers| status(trailers).unwrap_or(UNKNOWN)),
            Poll::Ready(Some(Err(_))) | Poll::Ready(None) => Some(UNKNOWN),
            Poll::Pending => None,
        };
        if let Some(code) = ended {
            if let Some(call) = this.call.take() {
                call.finish(code);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// One call in progress; its span closes when it is dropped.
#[derive(Debug)]
struct Call {
    span: Span,
    path: String,
    started: Instant,
    ended: bool,
}

impl Call {
    fn start(path: &str) -> Self {
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or(("", path));
        let span = tracing::debug_span!(
            "grpc.request",
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
            rpc.grpc.status_code = Empty,
        );
        Call {
            span,
            path: path.to_owned(),
            started: Instant::now(),
            ended: false,
        }
    }

    fn finish(mut self, code: i32) {
        self.record(code);
        self.ended = true;
    }

    fn record(&mut self, code: i32) {
        self.span.record("rpc.grpc.status_code", code);
        let method = if code == UNIMPLEMENTED {
            UNMATCHED.to_owned()
        } else {
            std::mem::take(&mut self.path)
        };
        counter!(
            telemetry::GRPC_REQUESTS,
            "method" => method.clone(),
            "code" => code_name(code),
        )
        .increment(1);
        histogram!(telemetry::GRPC_REQUEST_SECONDS, "method" => method)
            .record(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.ended {
            self.record(CANCELLED);
        }
    }
}

/// The `grpc-status` of a header or trailer map.
fn status(headers: &HeaderMap) -> Option<i32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// gRPC's names for its status codes, as gRPC's own Prometheus exporters
/// label them.
fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "Canceled",
        2 => "Unknown",
        3 => "InvalidArgument",
        4 => "DeadlineExceeded",
        5 => "NotFound",
        6 => "AlreadyExists",
        7 => "PermissionDenied",
        8 => "ResourceExhausted",
        9 => "FailedPrecondition",
        10 => "Aborted",
        11 => "OutOfRange",
        12 => "Unimplemented",
        13 => "Internal",
        14 => "Unavailable",
        15 => "DataLoss",
        16 => "Unauthenticated",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_status_from_headers_or_trailers() {
        let mut headers = HeaderMap::new();
        assert_eq!(status(&headers), None);
        headers.insert("grpc-status", http::HeaderValue::from_static("5"));
        assert_eq!(status(&headers), Some(5));
        assert_eq!(code_name(5), "NotFound");
        headers.insert("grpc-status", http::HeaderValue::from_static("five"));
        assert_eq!(status(&headers), None);
        assert_eq!(code_name(99), "Unknown");
    }
}
