//! Discovery: a live view of a service's instances, fed by the Watch stream
//! and resumed from the last revision seen after any reconnect.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use sextant_proto::v1::{watch_event, WatchEvent, WatchRequest};
use tokio::sync::{oneshot, watch};
use tonic::Status;

use crate::connection::{is_retryable, Servers};
use crate::task::TaskGuard;
use crate::{Endpoint, Error, Health};

/// Which instances to discover: a service, optionally narrowed by tags and
/// metadata. A `&str` converts into a query for all healthy instances.
///
/// ```
/// use sextant_client::Query;
/// let q = Query::new("user-service").tag("v2").meta("zone", "eu-1");
/// let all: Query = "user-service".into();
/// assert_eq!(all.service(), "user-service");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    service: String,
    tags: Vec<String>,
    meta: BTreeMap<String, String>,
    include_unhealthy: bool,
}

impl Query {
    /// The healthy instances of `service`.
    ///
    /// ```
    /// let q = sextant_client::Query::new("db");
    /// ```
    pub fn new(service: impl Into<String>) -> Query {
        Query {
            service: service.into(),
            tags: Vec::new(),
            meta: BTreeMap::new(),
            include_unhealthy: false,
        }
    }

    /// Only instances carrying this tag (every tag given must be present).
    ///
    /// ```
    /// let q = sextant_client::Query::new("db").tag("primary");
    /// ```
    pub fn tag(mut self, tag: impl Into<String>) -> Query {
        self.tags.push(tag.into());
        self
    }

    /// Only instances whose metadata has exactly this pair.
    ///
    /// ```
    /// let q = sextant_client::Query::new("db").meta("zone", "eu-1");
    /// ```
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Query {
        self.meta.insert(key.into(), value.into());
        self
    }

    /// Also instances whose checks are not passing (their [`Endpoint::health`] says which).
    ///
    /// ```
    /// let q = sextant_client::Query::new("db").include_unhealthy();
    /// ```
    pub fn include_unhealthy(mut self) -> Query {
        self.include_unhealthy = true;
        self
    }

    /// The service name.
    ///
    /// ```
    /// assert_eq!(sextant_client::Query::new("db").service(), "db");
    /// ```
    pub fn service(&self) -> &str {
        &self.service
    }

    fn request(&self, after_revision: u64) -> WatchRequest {
        WatchRequest {
            service: self.service.clone(),
            tags: self.tags.clone(),
            meta: self.meta.clone().into_iter().collect(),
            include_unhealthy: self.include_unhealthy,
            after_revision,
        }
    }
}

impl From<&str> for Query {
    fn from(service: &str) -> Query {
        Query::new(service)
    }
}

impl From<String> for Query {
    fn from(service: String) -> Query {
        Query::new(service)
    }
}

/// The live set of instances of a service. Clones share one watch stream,
/// which stops when the last clone is dropped (receivers taken with
/// [`Discovery::receiver`] then report the channel closed).
///
/// ```no_run
/// # async fn run(client: sextant_client::Client) -> Result<(), sextant_client::Error> {
/// let mut users = client.discover("user-service").await?;
/// for endpoint in users.endpoints().iter() {
///     println!("{} at {}", endpoint.id, endpoint.authority());
/// }
/// users.changed().await.ok();
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Discovery {
    service: String,
    rx: watch::Receiver<Arc<Vec<Endpoint>>>,
    _task: Option<Arc<TaskGuard>>,
}

/// [`Discovery::changed`] found the view closed: its watch task is gone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (tx, rx) = tokio::sync::watch::channel(std::sync::Arc::new(vec![]));
/// let mut view = sextant_client::Discovery::from_receiver("svc", rx);
/// drop(tx);
/// assert!(view.changed().await.is_err());
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[error("the discovery view is closed")]
pub struct Closed;

impl Discovery {
    /// A view fed by someone else's receiver (a static list, a test, another
    /// discovery system); the SDK's balancers work the same on it.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use sextant_client::{Discovery, Endpoint};
    ///
    /// let (tx, rx) = tokio::sync::watch::channel(Arc::new(vec![Endpoint::new("a", "svc", "127.0.0.1", 80)]));
    /// let view = Discovery::from_receiver("svc", rx);
    /// assert_eq!(view.endpoints().len(), 1);
    /// # drop(tx);
    /// ```
    pub fn from_receiver(
        service: impl Into<String>,
        rx: watch::Receiver<Arc<Vec<Endpoint>>>,
    ) -> Discovery {
        Discovery {
            service: service.into(),
            rx,
            _task: None,
        }
    }

    /// The service discovered.
    ///
    /// ```
    /// # let (_tx, rx) = tokio::sync::watch::channel(std::sync::Arc::new(vec![]));
    /// let view = sextant_client::Discovery::from_receiver("svc", rx);
    /// assert_eq!(view.service(), "svc");
    /// ```
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The instances now, sorted by `node/id`.
    ///
    /// ```
    /// # let (_tx, rx) = tokio::sync::watch::channel(std::sync::Arc::new(vec![]));
    /// let view = sextant_client::Discovery::from_receiver("svc", rx);
    /// assert!(view.endpoints().is_empty());
    /// ```
    pub fn endpoints(&self) -> Arc<Vec<Endpoint>> {
        Arc::clone(&self.rx.borrow())
    }

    /// Waits until the set changes after the last call (or since this handle
    /// was made).
    ///
    /// ```no_run
    /// # async fn f(mut view: sextant_client::Discovery) {
    /// while view.changed().await.is_ok() {
    ///     println!("{} instances", view.endpoints().len());
    /// }
    /// # }
    /// ```
    pub async fn changed(&mut self) -> Result<Arc<Vec<Endpoint>>, Closed> {
        self.rx.changed().await.map_err(|_| Closed)?;
        Ok(Arc::clone(&self.rx.borrow_and_update()))
    }

    /// A receiver of the view, for code that speaks `tokio::sync::watch`.
    ///
    /// ```
    /// # let (_tx, rx) = tokio::sync::watch::channel(std::sync::Arc::new(vec![]));
    /// let view = sextant_client::Discovery::from_receiver("svc", rx);
    /// let rx = view.receiver();
    /// ```
    pub fn receiver(&self) -> watch::Receiver<Arc<Vec<Endpoint>>> {
        self.rx.clone()
    }
}

/// Starts the watch task and returns once the first full set arrived.
pub(crate) async fn start(servers: Arc<Servers>, query: Query) -> Result<Discovery, Error> {
    let (tx, mut rx) = watch::channel(Arc::new(Vec::new()));
    let (ready_tx, ready_rx) = oneshot::channel();
    let service = query.service.clone();
    let deadline = servers.config.retry_deadline;
    let task = TaskGuard(tokio::spawn(run(servers, query, tx, ready_tx)));
    match tokio::time::timeout(deadline, ready_rx).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(status))) => return Err(Error::Rejected(status)),
        Ok(Err(_)) | Err(_) => {
            return Err(Error::Unavailable {
                attempts: 0,
                last: Status::unavailable(format!(
                    "no server started a watch of {service} within {deadline:?}"
                )),
            })
        }
    }
    rx.borrow_and_update();
    Ok(Discovery {
        service,
        rx,
        _task: Some(Arc::new(task)),
    })
}

/// What the watch task holds between events.
struct View {
    query: Query,
    /// Instances by `node/id`.
    endpoints: BTreeMap<String, Endpoint>,
    /// The last revision seen: where a reconnect resumes.
    revision: u64,
}

impl View {
    /// Applies one event; returns whether the set changed.
    fn apply(&mut self, event: WatchEvent) -> bool {
        self.revision = self.revision.max(event.revision);
        let before = self.endpoints.clone();
        match event.event {
            Some(watch_event::Event::Reset(reset)) => {
                self.endpoints = reset
                    .instances
                    .into_iter()
                    .filter_map(Endpoint::from_state)
                    .map(|e| (e.key(), e))
                    .collect();
            }
            Some(watch_event::Event::Add(state)) | Some(watch_event::Event::Update(state)) => {
                if let Some(endpoint) = Endpoint::from_state(state) {
                    self.endpoints.insert(endpoint.key(), endpoint);
                }
            }
            Some(watch_event::Event::Remove(removed)) => {
                self.endpoints
                    .remove(&format!("{}/{}", removed.node, removed.instance_id));
            }
            None => {}
        }
        if !self.query.include_unhealthy {
            // The server filters already; this keeps the promise if an
            // Update reports a critical instance anyway.
            self.endpoints.retain(|_, e| e.health != Health::Critical);
        }
        before != self.endpoints
    }

    fn snapshot(&self) -> Arc<Vec<Endpoint>> {
        Arc::new(self.endpoints.values().cloned().collect())
    }
}

async fn run(
    servers: Arc<Servers>,
    query: Query,
    tx: watch::Sender<Arc<Vec<Endpoint>>>,
    ready: oneshot::Sender<Result<(), Status>>,
) {
    let mut ready = Some(ready);
    let mut view = View {
        query,
        endpoints: BTreeMap::new(),
        revision: 0,
    };
    let mut attempt: u32 = 0;
    loop {
        let (index, mut client) = servers.current();
        let request = view.query.request(view.revision);
        let opened = tokio::select! {
            opened = client.watch(request) => opened,
            () = tx.closed() => return,
        };
        let status = match opened {
            Err(status) => Some(status),
            Ok(response) => {
                let mut events = response.into_inner();
                loop {
                    let message = tokio::select! {
                        message = events.message() => message,
                        () = tx.closed() => return,
                    };
                    match message {
                        Ok(Some(event)) => {
                            attempt = 0;
                            let reset = matches!(event.event, Some(watch_event::Event::Reset(_)));
                            let changed = view.apply(event);
                            if let Some(ready) = ready.take_if(|_| reset) {
                                tx.send_replace(view.snapshot());
                                let _ = ready.send(Ok(()));
                            } else if changed {
                                tracing::debug!(service = %view.query.service, revision = view.revision, instances = view.endpoints.len(), "discovery view changed");
                                tx.send_replace(view.snapshot());
                            }
                        }
                        Ok(None) => break None,
                        Err(status) => break Some(status),
                    }
                }
            }
        };
        if let Some(status) = status.as_ref().filter(|s| !is_retryable(s)) {
            if let Some(ready) = ready.take() {
                // The query itself is refused (an empty service name, say).
                let _ = ready.send(Err(status.clone()));
                return;
            }
        }
        tracing::warn!(
            service = %view.query.service,
            server = %servers.authority(index),
            status = ?status.as_ref().map(|s| s.to_string()),
            resume_after = view.revision,
            "watch stream lost; resuming"
        );
        servers.fail_over(index, status.as_ref());
        tokio::time::sleep(servers.backoff(attempt)).await;
        attempt = attempt.saturating_add(1);
    }
}

/// The difference between two views, as (added or changed, removed keys).
pub(crate) fn diff(before: &[Endpoint], after: &[Endpoint]) -> (Vec<Endpoint>, Vec<String>) {
    let old: BTreeMap<String, &Endpoint> = before.iter().map(|e| (e.key(), e)).collect();
    let new_keys: HashSet<String> = after.iter().map(Endpoint::key).collect();
    let upserts = after
        .iter()
        .filter(|e| old.get(&e.key()).is_none_or(|o| *o != *e))
        .cloned()
        .collect();
    let removed = old.into_keys().filter(|k| !new_keys.contains(k)).collect();
    (upserts, removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_proto::v1;

    fn state(id: &str, status: v1::HealthStatus) -> v1::InstanceState {
        v1::InstanceState {
            instance: Some(v1::Instance {
                id: id.to_owned(),
                service: "svc".to_owned(),
                address: "127.0.0.1".to_owned(),
                port: 80,
                ..Default::default()
            }),
            node: "n1".to_owned(),
            status: status as i32,
            revision: 1,
        }
    }

    fn event(event: watch_event::Event, revision: u64) -> WatchEvent {
        WatchEvent {
            event: Some(event),
            revision,
        }
    }

    #[test]
    fn applies_reset_add_update_remove_and_tracks_the_revision() {
        let mut view = View {
            query: Query::new("svc"),
            endpoints: BTreeMap::new(),
            revision: 0,
        };
        let passing = v1::HealthStatus::Passing;
        let reset = v1::Reset {
            instances: vec![state("a", passing), state("b", passing)],
        };
        assert!(view.apply(event(watch_event::Event::Reset(reset), 5)));
        assert!(view.apply(event(watch_event::Event::Add(state("c", passing)), 6)));
        assert!(
            !view.apply(event(watch_event::Event::Update(state("c", passing)), 7)),
            "same content"
        );
        let removed = v1::Removed {
            instance_id: "a".to_owned(),
            node: "n1".to_owned(),
        };
        assert!(view.apply(event(watch_event::Event::Remove(removed), 8)));
        // A critical update drops the instance from a healthy-only view.
        assert!(view.apply(event(
            watch_event::Event::Update(state("b", v1::HealthStatus::Critical)),
            9
        )));
        let ids: Vec<String> = view.snapshot().iter().map(|e| e.id.clone()).collect();
        assert_eq!(ids, vec!["c"]);
        assert_eq!(view.revision, 9);
        assert_eq!(view.query.request(view.revision).after_revision, 9);
    }

    #[test]
    fn diff_reports_upserts_and_removals() {
        let a = Endpoint::new("a", "svc", "h", 1);
        let b = Endpoint::new("b", "svc", "h", 2);
        let mut b2 = b.clone();
        b2.weight = 5;
        let c = Endpoint::new("c", "svc", "h", 3);
        let (upserts, removed) = diff(&[a.clone(), b], &[b2.clone(), c.clone()]);
        assert_eq!(upserts, vec![b2, c]);
        assert_eq!(removed, vec![a.key()]);
    }
}
