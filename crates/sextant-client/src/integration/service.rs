//! A tower service that sends each request through the SDK's balancer:
//! any per-endpoint client (hyper, tonic, reqwest in a `service_fn`) sits
//! behind it and gets breaking, ejection, the panic threshold and latency
//! tracking.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tower::{BoxError, Service, ServiceExt};

use crate::{Endpoint, LoadBalancer};

/// Routes each request to the endpoint the [`LoadBalancer`] picks, through
/// a service made once per endpoint by `make`. One try per request; put
/// `tower::retry` on top for retries.
///
/// ```
/// use std::sync::Arc;
/// use sextant_client::{BalancedService, BalancerConfig, Discovery, Endpoint, LoadBalancer};
/// use tower::ServiceExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (_tx, rx) = tokio::sync::watch::channel(Arc::new(vec![Endpoint::new("a", "svc", "127.0.0.1", 80)]));
/// let lb = LoadBalancer::new(Discovery::from_receiver("svc", rx), BalancerConfig::default());
/// let service = BalancedService::new(lb, |endpoint: &Endpoint| {
///     let authority = endpoint.authority();
///     tower::service_fn(move |path: &'static str| {
///         let url = format!("http://{authority}{path}");
///         async move { Ok::<_, std::io::Error>(url) }
///     })
/// });
/// let url = service.oneshot("/health").await.unwrap();
/// assert_eq!(url, "http://127.0.0.1:80/health");
/// # }
/// ```
pub struct BalancedService<S, M> {
    balancer: LoadBalancer,
    make: Arc<M>,
    /// One service per endpoint key, made on first use.
    services: Arc<Mutex<HashMap<String, S>>>,
}

impl<S, M> Clone for BalancedService<S, M> {
    fn clone(&self) -> Self {
        BalancedService {
            balancer: self.balancer.clone(),
            make: Arc::clone(&self.make),
            services: Arc::clone(&self.services),
        }
    }
}

impl<S, M> std::fmt::Debug for BalancedService<S, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BalancedService")
            .field("balancer", &self.balancer)
            .finish()
    }
}

impl<S, M> BalancedService<S, M>
where
    M: Fn(&Endpoint) -> S,
{
    /// A service over `balancer`, making per-endpoint services with `make`.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use sextant_client::{BalancerConfig, Discovery, Endpoint, LoadBalancer};
    /// # let (_tx, rx) = tokio::sync::watch::channel(Arc::new(vec![]));
    /// # let lb = LoadBalancer::new(Discovery::from_receiver("svc", rx), BalancerConfig::default());
    /// let service = sextant_client::BalancedService::new(lb, |e: &Endpoint| {
    ///     let uri = e.http_uri();
    ///     tower::service_fn(move |_: ()| { let uri = uri.clone(); async move { Ok::<_, std::io::Error>(uri) } })
    /// });
    /// ```
    pub fn new(balancer: LoadBalancer, make: M) -> BalancedService<S, M> {
        BalancedService {
            balancer,
            make: Arc::new(make),
            services: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn service_for(&self, endpoint: &Endpoint) -> S
    where
        S: Clone,
    {
        let mut services = self
            .services
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let view = self.balancer.discovery().endpoints();
        if services.len() > view.len() {
            // Endpoints left the view: their clients go too.
            services.retain(|key, _| view.iter().any(|e| e.key() == *key));
        }
        services
            .entry(endpoint.key())
            .or_insert_with(|| (self.make)(endpoint))
            .clone()
    }
}

impl<S, M, Request> Service<Request> for BalancedService<S, M>
where
    M: Fn(&Endpoint) -> S,
    S: Service<Request> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    S::Response: Send + 'static,
    Request: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Readiness is per endpoint and is awaited in `call` once one is picked.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let attempt = match self.balancer.start(None) {
            Ok(attempt) => attempt,
            Err(err) => return Box::pin(async move { Err(BoxError::from(err)) }),
        };
        let service = self.service_for(attempt.endpoint());
        let timeout = self.balancer.per_try_timeout();
        Box::pin(async move {
            let call = service.oneshot(request);
            let result = match timeout {
                Some(limit) => match tokio::time::timeout(limit, call).await {
                    Ok(result) => result.map_err(Into::into),
                    Err(elapsed) => Err(BoxError::from(elapsed)),
                },
                None => call.await.map_err(Into::into),
            };
            attempt.finish(result.is_ok());
            result
        })
    }
}
