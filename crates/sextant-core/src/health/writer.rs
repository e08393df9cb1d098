//! Proposes the scheduler's writes in order, one at a time. A write that
//! fails is only logged: the scheduler compares every probe result with the
//! replicated state, so it proposes the change again if it did not land.

use std::sync::Arc;

use sextant_state::Op;
use tokio::sync::mpsc;

use crate::registry::Registry;

pub async fn run(registry: Arc<Registry>, mut writes: mpsc::Receiver<Op>) {
    while let Some(op) = writes.recv().await {
        if let Err(e) = registry.write(op).await {
            tracing::debug!(error = %e, "health write failed; it will be proposed again");
        }
    }
}
