//! A tower layer that puts a circuit breaker in front of one service.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower::{BoxError, Layer, Service};

use crate::{BreakerConfig, CircuitBreaker};

/// The error a [`CircuitBreakerService`] returns while its breaker is open.
///
/// ```
/// # fn f(err: tower::BoxError) {
/// if err.is::<sextant_client::BreakerOpen>() {
///     println!("failed fast");
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[error("circuit breaker open")]
pub struct BreakerOpen;

/// Wraps a service (typically the client of one endpoint) in a
/// [`CircuitBreaker`]: calls fail fast with [`BreakerOpen`] while it is open.
/// Every error of the inner service counts as a failure.
///
/// ```
/// use sextant_client::{BreakerConfig, CircuitBreakerLayer};
/// use tower::{Layer, ServiceExt};
///
/// let layer = CircuitBreakerLayer::new(BreakerConfig::default());
/// let service = layer.layer(tower::service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x) }));
/// ```
#[derive(Clone, Debug)]
pub struct CircuitBreakerLayer {
    config: BreakerConfig,
}

impl CircuitBreakerLayer {
    /// A layer giving each wrapped service its own breaker.
    ///
    /// ```
    /// let layer = sextant_client::CircuitBreakerLayer::new(Default::default());
    /// ```
    pub fn new(config: BreakerConfig) -> CircuitBreakerLayer {
        CircuitBreakerLayer { config }
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreakerService<S>;

    fn layer(&self, inner: S) -> CircuitBreakerService<S> {
        CircuitBreakerService {
            inner,
            breaker: Arc::new(Mutex::new(CircuitBreaker::new(
                self.config.clone(),
                CircuitBreaker::os_seed(),
            ))),
        }
    }
}

/// The service made by [`CircuitBreakerLayer`]; clones share the breaker.
///
/// ```
/// use tower::Layer;
/// let service: sextant_client::CircuitBreakerService<_> = sextant_client::CircuitBreakerLayer::new(Default::default())
///     .layer(tower::service_fn(|x: u8| async move { Ok::<_, std::io::Error>(x) }));
/// ```
#[derive(Clone, Debug)]
pub struct CircuitBreakerService<S> {
    inner: S,
    breaker: Arc<Mutex<CircuitBreaker>>,
}

impl<S, Request> Service<Request> for CircuitBreakerService<S>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // An open breaker is reported per call, not here: a balancer drops
        // services whose readiness fails.
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let admitted = self
            .breaker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .try_acquire(Instant::now());
        if !admitted {
            return Box::pin(async { Err(BoxError::from(BreakerOpen)) });
        }
        let response = self.inner.call(request);
        let breaker = Arc::clone(&self.breaker);
        Box::pin(async move {
            let result = response.await;
            let mut breaker = breaker
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if result.is_ok() {
                breaker.on_success(Instant::now());
            } else {
                breaker.on_failure(Instant::now());
            }
            result.map_err(Into::into)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tower::ServiceExt;

    #[tokio::test(start_paused = true)]
    async fn fails_fast_while_open_and_probes_after_the_cool_down() {
        let config = BreakerConfig {
            consecutive_failures: 2,
            open_backoff: crate::Backoff::new(Duration::from_secs(1), Duration::from_secs(1))
                .with_jitter(0.0),
            ..BreakerConfig::default()
        };
        let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&healthy);
        let inner = tower::service_fn(move |_: ()| {
            let ok = flag.load(std::sync::atomic::Ordering::SeqCst);
            async move {
                if ok {
                    Ok(())
                } else {
                    Err(std::io::Error::other("down"))
                }
            }
        });
        let service = CircuitBreakerLayer::new(config).layer(inner);
        for _ in 0..2 {
            let err = service
                .clone()
                .oneshot(())
                .await
                .err()
                .map(|e| e.to_string());
            assert_eq!(err.as_deref(), Some("down"));
        }
        let err = service.clone().oneshot(()).await.err();
        assert!(err.is_some_and(|e| e.is::<BreakerOpen>()));
        healthy.store(true, std::sync::atomic::Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(
            service.clone().oneshot(()).await.is_ok(),
            "the probe closes it"
        );
        assert!(service.clone().oneshot(()).await.is_ok());
    }
}
