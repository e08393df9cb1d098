//! The middleware in front of every HTTP API (Consul's and Nacos's): it
//! counts each request by method, route and status, observes its latency
//! and runs it in a span.
//!
//! Requests are labelled with the matched route template
//! (`/v1/kv/{*key}`), never the raw path, so the number of series stays
//! bounded whatever clients ask for.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{counter, histogram};
use tracing::field::Empty;
use tracing::Instrument;

use crate::telemetry;

/// The label of a request that matched no route.
const UNMATCHED: &str = "unmatched";

/// Counts the request and observes its latency, by route template, and
/// runs it in a `debug` span (off unless asked for: a span is no log line).
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = route_label(request.extensions().get::<MatchedPath>());
    let span = tracing::debug_span!(
        "http.request",
        otel.kind = "server",
        http.request.method = method,
        http.route = route.as_str(),
        http.response.status_code = Empty,
    );
    let response = next.run(request).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    let status = response.status().as_u16().to_string();
    counter!(
        telemetry::HTTP_REQUESTS,
        "method" => method,
        "route" => route.clone(),
        "status" => status,
    )
    .increment(1);
    histogram!(
        telemetry::HTTP_REQUEST_SECONDS,
        "method" => method,
        "route" => route,
    )
    .record(started.elapsed().as_secs_f64());
    response
}

fn route_label(matched: Option<&MatchedPath>) -> String {
    matched.map_or_else(|| UNMATCHED.to_owned(), |m| m.as_str().to_owned())
}

/// Standard methods by name; anything else (extension methods are
/// unbounded) as `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use axum::Router;

    #[tokio::test]
    async fn labels_requests_with_the_route_template_not_the_path() {
        let handle = telemetry::handle();
        let app = Router::new()
            .route("/v1/kv/{*key}", get(|| async { "kv" }))
            .route("/v1/health/service/{name}", get(|| async { "health" }))
            .layer(axum::middleware::from_fn(track));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::new();
        for path in [
            "/v1/kv/secret-path-a/b/c?recurse",
            "/v1/health/service/web-7f3a",
            "/no/such/route/123",
        ] {
            client
                .get(format!("http://{addr}{path}"))
                .send()
                .await
                .expect("request");
        }
        client
            .request(
                Method::from_bytes(b"PURGE").expect("method"),
                format!("http://{addr}/v1/kv/x"),
            )
            .send()
            .await
            .expect("request");

        let text = handle.render();
        let requests: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(telemetry::HTTP_REQUESTS))
            .collect();
        let has = |parts: &[&str]| requests.iter().any(|l| parts.iter().all(|p| l.contains(p)));
        assert!(
            has(&[
                r#"route="/v1/kv/{*key}""#,
                r#"method="GET""#,
                r#"status="200""#
            ]),
            "{requests:#?}"
        );
        assert!(
            has(&[r#"route="/v1/health/service/{name}""#]),
            "{requests:#?}"
        );
        assert!(
            has(&[r#"route="unmatched""#, r#"status="404""#]),
            "{requests:#?}"
        );
        assert!(
            has(&[r#"method="other""#, r#"route="/v1/kv/{*key}""#]),
            "{requests:#?}"
        );
        for raw in ["secret-path-a", "web-7f3a", "/no/such", "PURGE"] {
            assert!(!text.contains(raw), "raw {raw} leaked into labels:\n{text}");
        }
    }
}
