//! Probing one check once: HTTP, TCP and the gRPC health protocol. Each
//! probe turns into a status and an output text; no probe ever fails in any
//! other way (a probe that cannot even start is a critical result that says
//! why).

mod grpc;
mod http;
mod tcp;

use std::time::Duration;

use sextant_state::catalog::{CheckKind, CheckStatus};

/// Consul caps a check's output (and the HTTP body it quotes) at 4 KB.
pub const OUTPUT_LIMIT: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeResult {
    pub status: CheckStatus,
    pub output: String,
}

impl ProbeResult {
    fn new(status: CheckStatus, output: String) -> Self {
        Self {
            status,
            output: truncate(output, OUTPUT_LIMIT),
        }
    }
}

/// Shared probing resources (HTTP connection pools), one per server.
#[derive(Clone)]
pub struct Prober {
    http: http::HttpProber,
}

impl Prober {
    pub fn new() -> Result<Self, String> {
        Ok(Self {
            http: http::HttpProber::new()?,
        })
    }

    /// Runs one probe of `kind` bounded by `timeout`; `None` for the kinds
    /// that are not probed (TTL, external).
    pub async fn probe(&self, kind: &CheckKind, timeout: Duration) -> Option<ProbeResult> {
        let timeout = timeout.max(Duration::from_millis(1));
        let started = tokio::time::Instant::now();
        let result = self.probe_kind(kind, timeout).await;
        if result.is_some() {
            crate::telemetry::observe_seconds(
                crate::telemetry::HEALTH_PROBE_SECONDS,
                started.elapsed(),
            );
        }
        result
    }

    async fn probe_kind(&self, kind: &CheckKind, timeout: Duration) -> Option<ProbeResult> {
        match kind {
            CheckKind::Http(http) => Some(
                self.http
                    .probe(
                        &http.url,
                        &http.method,
                        &http.headers,
                        &http.body,
                        http.tls_skip_verify,
                        timeout,
                    )
                    .await,
            ),
            CheckKind::Tcp { address } => Some(tcp::probe(address, timeout).await),
            CheckKind::Grpc { target, use_tls } => {
                Some(grpc::probe(target, *use_tls, timeout).await)
            }
            CheckKind::Ttl { .. } | CheckKind::External => None,
        }
    }
}

/// Cuts `text` to at most `limit` bytes on a character boundary.
pub fn truncate(mut text: String, limit: usize) -> String {
    if text.len() > limit {
        let mut end = limit;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("héllo".into(), 2), "h");
        assert_eq!(truncate("abc".into(), 10), "abc");
    }
}
