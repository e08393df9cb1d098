//! Discovery as a stream of `tower::discover::Change`, which is what
//! `tower::discover::Discover` (and so `tower::balance`) consumes.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use tower::discover::Change;

use crate::discovery::diff;
use crate::{Discovery, Endpoint};

/// Inserts and removals of endpoints, keyed by `node/id`: first an insert
/// for every endpoint in the view, then one change per difference.
/// Implements `tower::discover::Discover`.
///
/// ```
/// use std::sync::Arc;
/// use futures::StreamExt;
/// use sextant_client::{Discovery, Endpoint};
/// use tower::discover::Change;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (tx, rx) = tokio::sync::watch::channel(Arc::new(vec![Endpoint::new("a", "svc", "127.0.0.1", 80)]));
/// let mut changes = Discovery::from_receiver("svc", rx).changes();
/// assert!(matches!(changes.next().await, Some(Ok(Change::Insert(key, _))) if key == "/a"));
/// tx.send(Arc::new(vec![])).unwrap();
/// assert!(matches!(changes.next().await, Some(Ok(Change::Remove(key))) if key == "/a"));
/// # }
/// ```
pub struct EndpointChanges {
    inner: BoxStream<'static, Result<Change<String, Endpoint>, Infallible>>,
}

impl std::fmt::Debug for EndpointChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EndpointChanges")
    }
}

impl Stream for EndpointChanges {
    type Item = Result<Change<String, Endpoint>, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

/// Like [`EndpointChanges`] with each endpoint made into a service `S` (a
/// client for that endpoint). Implements `tower::discover::Discover`, so it
/// feeds `tower::balance::p2c::Balance` directly.
///
/// ```
/// use std::sync::Arc;
/// use sextant_client::{Discovery, Endpoint};
///
/// let (_tx, rx) = tokio::sync::watch::channel(Arc::new(vec![Endpoint::new("a", "svc", "127.0.0.1", 80)]));
/// let services = Discovery::from_receiver("svc", rx).services(|e: &Endpoint| e.http_uri());
/// ```
pub struct ServiceChanges<S> {
    inner: BoxStream<'static, Result<Change<String, S>, Infallible>>,
}

impl<S> std::fmt::Debug for ServiceChanges<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceChanges")
    }
}

impl<S> Stream for ServiceChanges<S> {
    type Item = Result<Change<String, S>, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

struct State {
    view: Discovery,
    previous: Arc<Vec<Endpoint>>,
    pending: VecDeque<Change<String, Endpoint>>,
    first: bool,
}

impl Discovery {
    /// The view as a stream of changes; see [`EndpointChanges`].
    ///
    /// ```
    /// # let (_tx, rx) = tokio::sync::watch::channel(std::sync::Arc::new(vec![]));
    /// let changes = sextant_client::Discovery::from_receiver("svc", rx).changes();
    /// ```
    pub fn changes(&self) -> EndpointChanges {
        let state = State {
            view: self.clone(),
            previous: Arc::new(Vec::new()),
            pending: VecDeque::new(),
            first: true,
        };
        let stream = futures::stream::unfold(state, |mut state| async move {
            loop {
                if let Some(change) = state.pending.pop_front() {
                    return Some((Ok(change), state));
                }
                let current = if state.first {
                    state.first = false;
                    state.view.endpoints()
                } else {
                    state.view.changed().await.ok()?
                };
                let (upserts, removed) = diff(&state.previous, &current);
                state
                    .pending
                    .extend(removed.into_iter().map(Change::Remove));
                state
                    .pending
                    .extend(upserts.into_iter().map(|e| Change::Insert(e.key(), e)));
                state.previous = current;
            }
        });
        EndpointChanges {
            inner: stream.boxed(),
        }
    }

    /// The view as a stream of services made by `make`; see [`ServiceChanges`].
    ///
    /// ```
    /// # let (_tx, rx) = tokio::sync::watch::channel(std::sync::Arc::new(vec![]));
    /// let uris = sextant_client::Discovery::from_receiver("svc", rx).services(|e| e.http_uri());
    /// ```
    pub fn services<S, M>(&self, make: M) -> ServiceChanges<S>
    where
        M: Fn(&Endpoint) -> S + Send + 'static,
        S: Send + 'static,
    {
        let stream = self.changes().map(move |change| {
            Ok(match change {
                Ok(Change::Insert(key, endpoint)) => Change::Insert(key, make(&endpoint)),
                Ok(Change::Remove(key)) => Change::Remove(key),
                Err(never) => match never {},
            })
        });
        ServiceChanges {
            inner: stream.boxed(),
        }
    }
}
