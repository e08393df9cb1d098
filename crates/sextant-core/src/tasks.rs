//! The server's background tasks: each one named, owned by the server, and
//! stopped with it when the stop signal (a `watch` turning `true`) fires.

use std::future::Future;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A named task, for the server to wait on at shutdown.
pub type Task = (&'static str, JoinHandle<()>);

/// Resolves once the server is told to stop (or its stop signal is gone).
pub async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Spawns `work`, cut short when the server stops.
pub fn until_stopped(
    name: &'static str,
    stop: &watch::Receiver<bool>,
    work: impl Future<Output = ()> + Send + 'static,
) -> Task {
    let stop = stop.clone();
    let handle = tokio::spawn(async move {
        tokio::select! {
            _ = work => {}
            _ = stopped(stop) => {}
        }
    });
    (name, handle)
}
