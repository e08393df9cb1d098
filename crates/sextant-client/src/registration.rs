//! Keeping registered instances alive: one KeepAlive stream per client that
//! renews every instance it registered, registers again the ones a server
//! reports unknown, and survives server failures by reconnecting elsewhere.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sextant_proto::v1::{
    DeregisterRequest, InstanceRef, KeepAliveRequest, KeepAliveResponse, RegisterRequest,
};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use crate::connection::Servers;
use crate::task::TaskGuard;
use crate::{Client, Error};

/// Renewal interval when no registered instance has a TTL: the stream then
/// only serves to notice instances the registry lost.
const IDLE_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// Renewals never come faster than this, whatever the TTL.
const MIN_KEEPALIVE_INTERVAL: Duration = Duration::from_millis(50);

#[derive(Debug)]
struct Registered {
    request: RegisterRequest,
    ttl: Option<Duration>,
    /// The node the server registered it on (what renewals and the
    /// deregistration name).
    node: String,
}

#[derive(Debug, Default)]
struct Shared {
    instances: Mutex<HashMap<String, Registered>>,
    /// Woken when an instance is added, so it is renewed (and the stream
    /// opened) without waiting for the next tick.
    added: Notify,
    /// Instances being registered again right now: a renewal that reports
    /// one unknown again meanwhile starts no second registration.
    reregistering: Mutex<HashSet<String>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Registered>> {
        // The map stays consistent under every panic point (single inserts
        // and removes), so a poisoned lock is still usable.
        self.instances
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn renewal(&self) -> KeepAliveRequest {
        let instances = self
            .lock()
            .iter()
            .map(|(id, r)| InstanceRef {
                instance_id: id.clone(),
                node: r.node.clone(),
            })
            .collect();
        KeepAliveRequest { instances }
    }

    /// Claims the re-registration of `id`; false if one is under way.
    fn claim_reregistration(&self, id: &str) -> bool {
        self.reregistering
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(id.to_owned())
    }

    fn release_reregistration(&self, id: &str) {
        self.reregistering
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(id);
    }

    fn interval(&self, fixed: Option<Duration>) -> Duration {
        let shortest_ttl = self.lock().values().filter_map(|r| r.ttl).min();
        fixed
            .or(shortest_ttl.map(|ttl| ttl / 3))
            .unwrap_or(IDLE_KEEPALIVE_INTERVAL)
            .max(MIN_KEEPALIVE_INTERVAL)
    }
}

/// The client's keep-alive machinery; the stream task starts with the first
/// registration and stops with the client.
#[derive(Debug)]
pub(crate) struct KeepAlive {
    servers: Arc<Servers>,
    shared: Arc<Shared>,
    interval: Option<Duration>,
    task: Mutex<Option<TaskGuard>>,
}

impl KeepAlive {
    pub(crate) fn new(servers: Arc<Servers>, interval: Option<Duration>) -> KeepAlive {
        KeepAlive {
            servers,
            shared: Arc::new(Shared::default()),
            interval,
            task: Mutex::new(None),
        }
    }

    pub(crate) fn add(
        &self,
        id: String,
        request: RegisterRequest,
        ttl: Option<Duration>,
        node: String,
    ) {
        self.shared
            .lock()
            .insert(id, Registered { request, ttl, node });
        let mut task = self
            .task
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if task.is_none() {
            let run = run(
                Arc::clone(&self.servers),
                Arc::clone(&self.shared),
                self.interval,
            );
            *task = Some(TaskGuard(tokio::spawn(run)));
        }
        self.shared.added.notify_one();
    }

    /// Stops renewing `id`; returns the node it was registered on.
    pub(crate) fn remove(&self, id: &str) -> Option<String> {
        self.shared.lock().remove(id).map(|r| r.node)
    }

    pub(crate) fn node_of(&self, id: &str) -> Option<String> {
        self.shared.lock().get(id).map(|r| r.node.clone())
    }
}

/// How one stream session ended.
enum SessionEnd {
    /// Nothing left to keep alive: close the stream and wait for a registration.
    Idle,
    /// The stream broke; try another server.
    Lost(Option<Status>),
}

/// The keep-alive task: one stream at a time, on the current server.
async fn run(servers: Arc<Servers>, shared: Arc<Shared>, interval: Option<Duration>) {
    let mut attempt: u32 = 0;
    // Registrations again run beside the stream, so a slow one holds up
    // neither the renewals of every other instance nor the stream itself;
    // they end with this task.
    let mut reregistrations = JoinSet::new();
    loop {
        if shared.lock().is_empty() {
            shared.added.notified().await;
            continue;
        }
        let (index, mut client) = servers.current();
        let (tx, rx) = mpsc::channel::<KeepAliveRequest>(4);
        // Queued before the call so the server gets a renewal as soon as the stream opens.
        if tx.try_send(shared.renewal()).is_err() {
            continue;
        }
        let end = match client.keep_alive(ReceiverStream::new(rx)).await {
            Ok(response) => {
                session(
                    &servers,
                    &shared,
                    interval,
                    tx,
                    response.into_inner(),
                    &mut attempt,
                    &mut reregistrations,
                )
                .await
            }
            Err(status) => SessionEnd::Lost(Some(status)),
        };
        match end {
            SessionEnd::Idle => continue,
            SessionEnd::Lost(status) => {
                tracing::warn!(
                    server = %servers.authority(index),
                    status = ?status.as_ref().map(|s| s.to_string()),
                    "keep-alive stream lost; reconnecting"
                );
                servers.fail_over(index, status.as_ref());
                tokio::time::sleep(servers.backoff(attempt)).await;
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

async fn session(
    servers: &Arc<Servers>,
    shared: &Arc<Shared>,
    interval: Option<Duration>,
    tx: mpsc::Sender<KeepAliveRequest>,
    mut inbound: Streaming<KeepAliveResponse>,
    attempt: &mut u32,
    reregistrations: &mut JoinSet<()>,
) -> SessionEnd {
    let mut next = Instant::now() + shared.interval(interval);
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next) => {
                if shared.lock().is_empty() {
                    return SessionEnd::Idle;
                }
                if tx.send(shared.renewal()).await.is_err() {
                    return SessionEnd::Lost(None);
                }
                next = Instant::now() + shared.interval(interval);
            }
            () = shared.added.notified() => {
                if tx.send(shared.renewal()).await.is_err() {
                    return SessionEnd::Lost(None);
                }
                next = Instant::now() + shared.interval(interval);
            }
            message = inbound.message() => match message {
                Ok(Some(response)) => {
                    *attempt = 0;
                    while reregistrations.try_join_next().is_some() {}
                    for unknown in response.unknown {
                        if !shared.claim_reregistration(&unknown.instance_id) {
                            continue;
                        }
                        let (servers, shared) = (Arc::clone(servers), Arc::clone(shared));
                        reregistrations.spawn(async move {
                            let id = unknown.instance_id.clone();
                            register_again(&servers, &shared, unknown).await;
                            shared.release_reregistration(&id);
                        });
                    }
                }
                Ok(None) => return SessionEnd::Lost(None),
                Err(status) => return SessionEnd::Lost(Some(status)),
            },
        }
    }
}

/// Registers an instance the registry no longer holds (a restart that lost
/// it, a lapsed TTL, a deregistration by its checks).
async fn register_again(servers: &Servers, shared: &Shared, unknown: InstanceRef) {
    let request = {
        let instances = shared.lock();
        match instances.get(&unknown.instance_id) {
            // An answer about an older registration (already re-registered elsewhere).
            Some(r) if !unknown.node.is_empty() && r.node != unknown.node => return,
            Some(r) => r.request.clone(),
            None => return,
        }
    };
    let sent = request.clone();
    let result = servers
        .unary("Register", move |mut c| {
            let request = sent.clone();
            async move { c.register(request).await }
        })
        .await;
    match result {
        Ok(response) => {
            let still_registered = match shared.lock().get_mut(&unknown.instance_id) {
                Some(r) => {
                    r.node = response.node.clone();
                    true
                }
                None => false,
            };
            if still_registered {
                tracing::info!(instance = %unknown.instance_id, node = %response.node, "registered again");
                return;
            }
            // Deregistered while this registration was on its way: undo it,
            // or the instance would stay registered with no one renewing or
            // removing it.
            let request = DeregisterRequest {
                instance_id: unknown.instance_id.clone(),
                node: response.node,
            };
            let undone = servers
                .unary("Deregister", move |mut c| {
                    let request = request.clone();
                    async move { c.deregister(request).await }
                })
                .await;
            if let Err(err) = undone {
                tracing::warn!(instance = %unknown.instance_id, error = %err, "undoing a late registration failed");
            }
        }
        // The next renewal reports it unknown again, and this is retried.
        Err(err) => {
            tracing::warn!(instance = %unknown.instance_id, error = %err, "registering again failed")
        }
    }
}

async fn deregister(client: &Client, id: &str) -> Result<(), Error> {
    let Some(node) = client.keepalive().remove(id) else {
        return Ok(());
    };
    let request = DeregisterRequest {
        instance_id: id.to_owned(),
        node,
    };
    client
        .servers()
        .unary("Deregister", move |mut c| {
            let request = request.clone();
            async move { c.deregister(request).await }
        })
        .await?;
    tracing::info!(instance = %id, "deregistered");
    Ok(())
}

/// A registered instance, kept alive in the background. [`Registration::shutdown`]
/// deregisters it and waits for the answer; dropping the handle deregisters
/// it on a spawned task, best effort.
///
/// ```no_run
/// # async fn run(client: sextant_client::Client) -> Result<(), sextant_client::Error> {
/// use std::time::Duration;
/// let registration = client
///     .register(sextant_client::Instance::new("api", "10.0.0.5", 80).ttl(Duration::from_secs(5)))
///     .await?;
/// tokio::signal::ctrl_c().await.ok();
/// registration.shutdown().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Registration {
    client: Client,
    id: String,
    /// False once shut down, so drop does not deregister twice.
    active: bool,
}

impl Registration {
    pub(crate) fn new(client: Client, id: String) -> Registration {
        Registration {
            client,
            id,
            active: true,
        }
    }

    /// The instance id.
    ///
    /// ```no_run
    /// # fn f(r: &sextant_client::Registration) {
    /// println!("registered as {}", r.id());
    /// # }
    /// ```
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The registry node the instance is registered on now (it changes if
    /// the instance had to be registered again through another server).
    ///
    /// ```no_run
    /// # fn f(r: &sextant_client::Registration) {
    /// println!("on node {:?}", r.node());
    /// # }
    /// ```
    pub fn node(&self) -> Option<String> {
        self.client.keepalive().node_of(&self.id)
    }

    /// Stops renewing and deregisters the instance.
    ///
    /// ```no_run
    /// # async fn f(r: sextant_client::Registration) -> Result<(), sextant_client::Error> {
    /// r.shutdown().await?;
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(mut self) -> Result<(), Error> {
        self.active = false;
        deregister(&self.client, &self.id).await
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if !self.active {
            return;
        }
        let client = self.client.clone();
        let id = std::mem::take(&mut self.id);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(err) = deregister(&client, &id).await {
                        tracing::warn!(instance = %id, error = %err, "deregistering on drop failed");
                    }
                });
            }
            // Without a runtime nothing can be sent; stop renewing so the
            // TTL (or the checks) remove the instance.
            Err(_) => {
                client.keepalive().remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_reregistration_per_instance_at_a_time() {
        let shared = Shared::default();
        assert!(shared.claim_reregistration("a"));
        assert!(!shared.claim_reregistration("a"), "claimed twice");
        assert!(shared.claim_reregistration("b"));
        shared.release_reregistration("a");
        assert!(shared.claim_reregistration("a"));
    }
}
