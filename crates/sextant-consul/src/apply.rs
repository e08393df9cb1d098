//! Writes that this server has applied before it answers.
//!
//! `Registry::write` returns once the leader applied the entry; this server
//! (a follower, perhaps) may apply it a moment later. Consul's agent API
//! reads its own state right after a write (`register` then
//! `/v1/agent/services`), so registration handlers wait until the write is
//! applied here too: a client reads its writes from the server it wrote to.

use sextant_state::{Op, Response as Applied};

use super::error::HttpError;
use super::HttpState;

/// Proposes `op`, waits until this server applied it, and refuses (400) a
/// command the state machine rejected.
pub async fn write(http: &HttpState, op: Op) -> Result<Applied, HttpError> {
    let outcome = http.registry.write(op).await?;
    http.registry.applied_here(outcome.revision).await;
    match outcome.response {
        Applied::Rejected(e) => Err(HttpError::bad_request(e.to_string())),
        response => Ok(response),
    }
}
