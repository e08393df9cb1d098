//! Polling a condition with a deadline: the only way tests wait.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

/// How often conditions are polled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Polls `probe` every [`POLL_INTERVAL`] until it returns `Ok`, and returns
/// that value. `Err` means "not yet" and carries why; the last reason is put
/// in the panic message when `timeout` passes, after `what` (the condition
/// awaited, in words).
///
/// The probe is a closure returning a future; capture references, not owned
/// state, e.g. `let c = &client; wait_for("x", t, || async move { c.get().await })`.
pub async fn wait_for<T, E, F, Fut>(what: &str, timeout: Duration, probe: F) -> T
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    match poll_until(timeout, probe).await {
        Ok(value) => value,
        Err((elapsed, reason)) => {
            panic!("timed out after {elapsed:?} waiting for {what}; last observation: {reason}")
        }
    }
}

/// Like [`wait_for`] but hands the timeout back to the caller, who can add
/// context (log tails) before panicking. The error is the elapsed time and the
/// last reason.
pub(crate) async fn poll_until<T, E, F, Fut>(
    timeout: Duration,
    mut probe: F,
) -> Result<T, (Duration, String)>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let start = Instant::now();
    loop {
        let reason = match probe().await {
            Ok(value) => return Ok(value),
            Err(reason) => reason.to_string(),
        };
        if start.elapsed() >= timeout {
            return Err((start.elapsed(), reason));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
