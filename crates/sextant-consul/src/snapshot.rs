//! `GET /v1/snapshot` and `PUT /v1/snapshot`: the whole replicated state as
//! one file, and that file restored through Raft (Consul's snapshot API; the
//! file is Sextant's own format, see `sextant_core::snapshot_archive`).
//!
//! Saving encodes the state at one revision under the state lock, then
//! streams it in slices of that one buffer. Restoring checks the whole
//! file — header, length, checksum, and that it decodes to a consistent
//! state — before anything is proposed, so a bad file changes nothing; then
//! the snapshot travels as one Raft entry (`Op::RestoreSnapshot`) that every
//! server applies alike.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sextant_state::{Op, Response as Applied, StateMachine};

use super::blocking::query_headers;
use super::error::HttpError;
use super::params::Params;
use super::HttpState;
use sextant_core::peer::MAX_MESSAGE_BYTES;
use sextant_core::registry::{Consistency, Registry};
use sextant_core::snapshot_archive::{self as archive, Header, HEADER_LEN};

/// The largest snapshot file a restore accepts. The snapshot travels as one
/// Raft entry: it must fit an AppendEntries message (`MAX_MESSAGE_BYTES`,
/// half of it left for the entries sharing the message), and openraft gives
/// that message one heartbeat interval to be sent, written and fsync'd by a
/// follower (the tests restore 4 MB through a 3-server cluster; 12 MB also
/// passed there in a debug build).
pub const MAX_RESTORE_BYTES: usize = MAX_MESSAGE_BYTES / 2;
/// Bytes per slice of a streamed snapshot.
const CHUNK_BYTES: usize = 256 * 1024;

/// The snapshot routes, with a body limit of their own.
pub fn routes() -> Router<HttpState> {
    Router::new().route(
        "/v1/snapshot",
        get(save)
            .put(restore)
            .layer(DefaultBodyLimit::max(MAX_RESTORE_BYTES)),
    )
}

/// The state at this server's revision once it is as fresh as `?stale`,
/// the default or `?consistent` asks, with the archive header.
async fn take(registry: Arc<Registry>) -> Result<(Header, Vec<u8>), HttpError> {
    tokio::task::spawn_blocking(move || {
        let state = registry.view();
        let body = state
            .encode_snapshot()
            .map_err(|e| HttpError::Internal(format!("cannot encode the snapshot: {e}")))?;
        Ok((Header::for_body(state.revision(), &body), body))
    })
    .await
    .map_err(|e| HttpError::Internal(format!("snapshot task failed: {e}")))?
}

/// `GET /v1/snapshot[?stale|?consistent]`: the file, with `X-Consul-Index`
/// set to the revision it was taken at.
pub async fn save(State(http): State<HttpState>, params: Params) -> Result<Response, HttpError> {
    let consistency = params.consistency()?;
    http.registry.read_barrier(consistency).await?;
    let (header, body) = take(http.registry.clone()).await?;
    tracing::info!(
        revision = header.revision,
        bytes = header.file_len(),
        "snapshot taken"
    );
    let head = Bytes::copy_from_slice(&header.encode());
    let body = Bytes::from(body);
    // Slices share the one buffer: no copy is made while streaming.
    let slices = (0..body.len())
        .step_by(CHUNK_BYTES)
        .map(move |at| body.slice(at..(at + CHUNK_BYTES).min(body.len())));
    let stream = futures::stream::iter(
        std::iter::once(head)
            .chain(slices)
            .map(Ok::<Bytes, std::convert::Infallible>),
    );
    let mut headers = query_headers(&http.registry, header.revision, consistency);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(header.file_len()));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok((StatusCode::OK, headers, Body::from_stream(stream)).into_response())
}

/// `PUT /v1/snapshot`: replaces the state on every server with the file's.
/// Answers 400 with the reason, changing nothing, for a file that is not a
/// whole, intact snapshot; otherwise 200 once this server applied it, with
/// `X-Consul-Index` set to the restore's revision.
pub async fn restore(State(http): State<HttpState>, file: Bytes) -> Result<Response, HttpError> {
    let (header, _) = archive::open(&file)
        .map_err(|e| HttpError::bad_request(format!("invalid snapshot: {e}")))?;
    let snapshot = file.slice(HEADER_LEN..);
    let checked = snapshot.clone();
    tokio::task::spawn_blocking(move || StateMachine::decode_snapshot(&checked).map(drop))
        .await
        .map_err(|e| HttpError::Internal(format!("snapshot check failed: {e}")))?
        .map_err(|e| HttpError::bad_request(format!("invalid snapshot: {}", error_chain(&e))))?;
    drop(file);
    tracing::info!(
        taken_at = header.revision,
        bytes = header.file_len(),
        "restoring a snapshot"
    );
    let outcome = http
        .registry
        .write(Op::RestoreSnapshot {
            snapshot: snapshot.to_vec(),
        })
        .await?;
    if let Applied::Rejected(e) = outcome.response {
        return Err(HttpError::bad_request(e.to_string()));
    }
    http.registry.applied_here(outcome.revision).await;
    tracing::info!(revision = outcome.revision, "snapshot restored");
    let headers = query_headers(&http.registry, outcome.revision, Consistency::Default);
    Ok((StatusCode::OK, headers).into_response())
}

/// An error with its causes: "snapshot is corrupt: io error: …".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
