//! Passing a request on to the server that must answer it: a TTL update to
//! the owner of the check, a session renewal to the leader. Both keep state
//! in one server's memory, so the request has to reach that server.

use axum::body::Body;
use axum::http::{HeaderName, StatusCode};
use axum::response::Response;

/// Marks a request that was passed on once: it is never passed on again,
/// so two servers with different views cannot bounce it between them.
pub const FORWARDED: &str = "x-sextant-forwarded";
/// The node of the check a forwarded TTL update is for (the receiving
/// server's own node is another one).
pub const CHECK_NODE: &str = "x-sextant-check-node";
/// The revision the passing server had applied when it passed the request
/// on. The receiver waits until it has applied that much too, so a check
/// registered through one server can be updated through it at once even
/// when another server owns the check (and has not applied it yet).
pub const SEEN_REVISION: &str = "x-sextant-seen-revision";

/// Escapes a path segment (check and session ids may hold anything).
pub fn escape_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' | b'@' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// PUTs `body` to `path_and_query` on the server whose HTTP address is
/// `http_addr`, and relays its answer. `Err` means the request may not have
/// reached it (the caller can answer itself instead).
pub async fn put(
    client: &reqwest::Client,
    http_addr: &str,
    path_and_query: &str,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
) -> Result<Response, String> {
    let mut request = client
        .put(format!("http://{http_addr}{path_and_query}"))
        .header(FORWARDED, "1")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    let answer = request.send().await.map_err(|e| e.to_string())?;
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut relayed = Response::builder().status(status);
    for (name, value) in answer.headers() {
        let name = name.as_str();
        if name.starts_with("x-consul-") || name == "content-type" {
            if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
                relayed = relayed.header(name, value.as_bytes());
            }
        }
    }
    let bytes = answer.bytes().await.map_err(|e| e.to_string())?;
    relayed.body(Body::from(bytes)).map_err(|e| e.to_string())
}

/// The revision the passing server had applied, if the request was passed on.
pub fn seen_revision(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers
        .get(SEEN_REVISION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Whether this request was already passed on by another server.
pub fn was_forwarded(headers: &axum::http::HeaderMap) -> bool {
    headers.contains_key(FORWARDED)
}
