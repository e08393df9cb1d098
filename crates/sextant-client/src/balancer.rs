//! The load balancer: picks an endpoint of a discovery view, skipping broken
//! and ejected ones (unless too few are left: the panic threshold), limits
//! the rate, times out each try and retries within a budget.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::resilience::outlier::in_panic;
use crate::{
    BreakerConfig, BreakerState, CallError, Candidate, CircuitBreaker, Discovery, Endpoint,
    OutlierConfig, OutlierDetector, PeakEwma, Picker, RateLimiter, RetryBudget, RetryBudgetConfig,
    Strategy,
};

/// How a [`LoadBalancer`] picks, breaks, ejects and retries.
///
/// ```
/// use std::time::Duration;
/// use sextant_client::{BalancerConfig, Strategy};
///
/// let config = BalancerConfig {
///     strategy: Strategy::RoundRobin,
///     max_attempts: 2,
///     per_try_timeout: Some(Duration::from_millis(300)),
///     ..BalancerConfig::default()
/// };
/// ```
#[derive(Clone, Debug)]
pub struct BalancerConfig {
    /// How an endpoint is chosen.
    pub strategy: Strategy,
    /// Per-endpoint circuit breakers.
    pub breaker: BreakerConfig,
    /// Outlier ejection across the pool.
    pub outlier: OutlierConfig,
    /// When fewer than this fraction of the endpoints are usable, all are used.
    pub panic_threshold: f64,
    /// Tries per call, the first included (1 disables retries).
    pub max_attempts: u32,
    /// Limits retries to a share of the traffic.
    pub retry_budget: RetryBudgetConfig,
    /// How long one try may take.
    pub per_try_timeout: Option<Duration>,
    /// Calls per second and burst; `None` leaves the rate unlimited.
    pub rate_limit: Option<(f64, u32)>,
    /// Time constant of the peak-EWMA latency.
    pub ewma_decay: Duration,
    /// Latency assumed for an endpoint never measured.
    pub ewma_initial: Duration,
    /// Seeds the picker and the breakers' jitter; from the OS when `None`.
    pub seed: Option<u64>,
}

impl Default for BalancerConfig {
    /// Peak-EWMA p2c, default breaker and outlier settings, panic below
    /// 50 %, 3 attempts within a 20 % budget, 5 s per try, no rate limit.
    fn default() -> BalancerConfig {
        BalancerConfig {
            strategy: Strategy::default(),
            breaker: BreakerConfig::default(),
            outlier: OutlierConfig::default(),
            panic_threshold: 0.5,
            max_attempts: 3,
            retry_budget: RetryBudgetConfig::default(),
            per_try_timeout: Some(Duration::from_secs(5)),
            rate_limit: None,
            ewma_decay: Duration::from_secs(10),
            ewma_initial: Duration::from_millis(30),
            seed: None,
        }
    }
}

/// What the balancer knows about one endpoint, for dashboards and tests.
///
/// ```no_run
/// # fn f(lb: &sextant_client::LoadBalancer) {
/// for s in lb.stats() {
///     println!("{} ok={} failed={} {:?}", s.endpoint.id, s.successes, s.failures, s.breaker);
/// }
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct EndpointStats {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Its breaker now.
    pub breaker: BreakerState,
    /// Whether outlier detection ejected it.
    pub ejected: bool,
    /// Calls in flight.
    pub in_flight: u32,
    /// Peak-EWMA latency.
    pub latency: Duration,
    /// Successful tries.
    pub successes: u64,
    /// Failed tries (errors and timeouts).
    pub failures: u64,
}

#[derive(Debug)]
struct EndpointState {
    endpoint: Endpoint,
    breaker: CircuitBreaker,
    ewma: PeakEwma,
    in_flight: u32,
    successes: u64,
    failures: u64,
}

#[derive(Debug)]
struct Pool {
    /// The view the states below were built from (compared by pointer).
    synced: Option<Arc<Vec<Endpoint>>>,
    /// Keys in view order, so pickers see a stable order.
    order: Vec<String>,
    states: HashMap<String, EndpointState>,
    picker: Picker,
    outlier: OutlierDetector,
    budget: RetryBudget,
    limiter: Option<RateLimiter>,
    rng: StdRng,
}

/// A balancer over the endpoints of a [`Discovery`].
///
/// ```no_run
/// # async fn run(client: sextant_client::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use sextant_client::{BalancerConfig, LoadBalancer};
///
/// let users = client.discover("user-service").await?;
/// let lb = LoadBalancer::new(users, BalancerConfig::default());
/// let http = reqwest::Client::new();
/// let body = lb
///     .call(None, |endpoint| {
///         let url = format!("{}/users/42", endpoint.http_uri());
///         let http = http.clone();
///         async move { http.get(url).send().await?.error_for_status()?.text().await }
///     })
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct LoadBalancer {
    discovery: Discovery,
    config: Arc<BalancerConfig>,
    pool: Arc<Mutex<Pool>>,
}

/// One admitted try: an endpoint with its in-flight count raised (and its
/// half-open probe taken). Finish it with [`Attempt::finish`]; dropping it
/// unfinished (the caller gave up) releases both without judging the endpoint.
///
/// ```
/// # use std::sync::Arc;
/// # use sextant_client::{BalancerConfig, Discovery, Endpoint, LoadBalancer};
/// # let (_tx, rx) = tokio::sync::watch::channel(Arc::new(vec![Endpoint::new("a", "svc", "127.0.0.1", 80)]));
/// # let lb = LoadBalancer::new(Discovery::from_receiver("svc", rx), BalancerConfig::default());
/// let attempt = lb.start(None).unwrap();
/// println!("calling {}", attempt.endpoint().authority());
/// attempt.finish(true);
/// ```
#[derive(Debug)]
pub struct Attempt {
    pool: Arc<Mutex<Pool>>,
    endpoint: Endpoint,
    started: Instant,
    finished: bool,
}

impl Attempt {
    /// The endpoint to call.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use sextant_client::{BalancerConfig, Discovery, Endpoint, LoadBalancer};
    /// # let (_tx, rx) = tokio::sync::watch::channel(Arc::new(vec![Endpoint::new("a", "svc", "127.0.0.1", 80)]));
    /// # let lb = LoadBalancer::new(Discovery::from_receiver("svc", rx), BalancerConfig::default());
    /// assert_eq!(lb.start(None).unwrap().endpoint().port, 80);
    /// ```
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Records the outcome: latency, breaker, outlier detection.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use sextant_client::{BalancerConfig, Discovery, Endpoint, LoadBalancer};
    /// # let (_tx, rx) = tokio::sync::watch::channel(Arc::new(vec![Endpoint::new("a", "svc", "127.0.0.1", 80)]));
    /// # let lb = LoadBalancer::new(Discovery::from_receiver("svc", rx), BalancerConfig::default());
    /// lb.start(None).unwrap().finish(false);
    /// assert_eq!(lb.stats()[0].failures, 1);
    /// ```
    pub fn finish(mut self, success: bool) {
        self.finished = true;
        let now = Instant::now();
        let latency = now.saturating_duration_since(self.started);
        let mut pool = lock(&self.pool);
        let pool_size = pool.order.len();
        let key = self.endpoint.key();
        let Pool {
            states, outlier, ..
        } = &mut *pool;
        if let Some(state) = states.get_mut(&key) {
            state.in_flight = state.in_flight.saturating_sub(1);
            state.ewma.observe(latency, now);
            if success {
                state.successes += 1;
                state.breaker.on_success(now);
                outlier.on_success(&key);
            } else {
                state.failures += 1;
                state.breaker.on_failure(now);
                outlier.on_failure(&key, now, pool_size);
            }
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut pool = lock(&self.pool);
        if let Some(state) = pool.states.get_mut(&self.endpoint.key()) {
            state.in_flight = state.in_flight.saturating_sub(1);
            state.breaker.cancel();
        }
    }
}

fn lock(pool: &Mutex<Pool>) -> MutexGuard<'_, Pool> {
    // Every update under this lock is a few field writes; a panic elsewhere
    // cannot leave it half-done, so a poisoned lock is still consistent.
    pool.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LoadBalancer {
    /// A balancer over `discovery`'s live view.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use sextant_client::{BalancerConfig, Discovery, Endpoint, LoadBalancer};
    ///
    /// let (_tx, rx) = tokio::sync::watch::channel(Arc::new(vec![Endpoint::new("a", "svc", "127.0.0.1", 80)]));
    /// let lb = LoadBalancer::new(Discovery::from_receiver("svc", rx), BalancerConfig::default());
    /// ```
    pub fn new(discovery: Discovery, config: BalancerConfig) -> LoadBalancer {
        let seed = config.seed.unwrap_or_else(CircuitBreaker::os_seed);
        let pool = Pool {
            synced: None,
            order: Vec::new(),
            states: HashMap::new(),
            picker: Picker::new(config.strategy, seed),
            outlier: OutlierDetector::new(config.outlier.clone()),
            budget: RetryBudget::new(config.retry_budget.clone()),
            limiter: config
                .rate_limit
                .map(|(rate, burst)| RateLimiter::new(rate, burst)),
            rng: StdRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15),
        };
        LoadBalancer {
            discovery,
            config: Arc::new(config),
            pool: Arc::new(Mutex::new(pool)),
        }
    }

    /// The view this balancer follows.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use sextant_client::{BalancerConfig, Discovery, Endpoint, LoadBalancer};
    /// # let (_tx, rx) = tokio::sync::watch::channel(Arc::new(vec![Endpoint::new("a", "svc", "127.0.0.1", 80)]));
    /// # let lb = LoadBalancer::new(Discovery::from_receiver("svc", rx), BalancerConfig::default());
    /// assert_eq!(lb.discovery().service(), "svc");
    /// ```
    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    pub(crate) fn per_try_timeout(&self) -> Option<Duration> {
        self.config.per_try_timeout
    }

    /// Calls `call` on a chosen endpoint and retries failures (errors and
    /// per-try timeouts) on other endpoints while attempts and the retry
    /// budget last. `request_key` feeds consistent hashing.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use sextant_client::{BalancerConfig, Discovery, Endpoint, LoadBalancer};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let (_tx, rx) = tokio::sync::watch::channel(Arc::new(vec![Endpoint::new("a", "svc", "127.0.0.1", 80)]));
    /// let lb = LoadBalancer::new(Discovery::from_receiver("svc", rx), BalancerConfig::default());
    /// let port = lb
    ///     .call(None, |e| { let port = e.port; async move { Ok::<_, std::io::Error>(port) } })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(port, 80);
    /// # }
    /// ```
    pub async fn call<T, E, F, Fut>(
        &self,
        request_key: Option<&[u8]>,
        mut call: F,
    ) -> Result<T, CallError<E>>
    where
        F: FnMut(&Endpoint) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.admit()?;
        let mut tried: Vec<String> = Vec::new();
        let mut attempts: u32 = 0;
        loop {
            let attempt = self.begin(request_key, &tried)?;
            attempts += 1;
            let endpoint = attempt.endpoint().clone();
            let outcome = match self.config.per_try_timeout {
                Some(limit) => tokio::time::timeout(limit, call(&endpoint)).await.ok(),
                None => Some(call(&endpoint).await),
            };
            let error = match outcome {
                Some(Ok(value)) => {
                    attempt.finish(true);
                    return Ok(value);
                }
                Some(Err(source)) => CallError::Failed {
                    endpoint: endpoint.authority(),
                    source,
                },
                None => CallError::Timeout {
                    endpoint: endpoint.authority(),
                    timeout: self.config.per_try_timeout.unwrap_or_default(),
                },
            };
            attempt.finish(false);
            if attempts >= self.config.max_attempts || !self.withdraw_retry() {
                return Err(error);
            }
            tracing::debug!(endpoint = %endpoint.authority(), attempts, "retrying on another endpoint");
            tried.push(endpoint.key());
        }
    }

    /// Admits one call (rate limit, retry-budget deposit) and picks its
    /// endpoint, for callers that drive the request themselves (the tower
    /// service does). Retries are then up to the caller.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use sextant_client::{BalancerConfig, Discovery, Endpoint, LoadBalancer};
    /// # let (_tx, rx) = tokio::sync::watch::channel(Arc::new(vec![Endpoint::new("a", "svc", "127.0.0.1", 80)]));
    /// let lb = LoadBalancer::new(Discovery::from_receiver("svc", rx), BalancerConfig::default());
    /// let attempt = lb.start(None).unwrap();
    /// assert_eq!(attempt.endpoint().id, "a");
    /// attempt.finish(true);
    /// ```
    pub fn start(
        &self,
        request_key: Option<&[u8]>,
    ) -> Result<Attempt, CallError<std::convert::Infallible>> {
        self.admit().map_err(retype)?;
        self.begin(request_key, &[]).map_err(retype)
    }

    /// Per-endpoint counters and states, in view order.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use sextant_client::{BalancerConfig, Discovery, Endpoint, LoadBalancer};
    /// # let (_tx, rx) = tokio::sync::watch::channel(Arc::new(vec![Endpoint::new("a", "svc", "127.0.0.1", 80)]));
    /// let lb = LoadBalancer::new(Discovery::from_receiver("svc", rx), BalancerConfig::default());
    /// assert_eq!(lb.stats().len(), 1);
    /// ```
    pub fn stats(&self) -> Vec<EndpointStats> {
        let now = Instant::now();
        let mut pool = lock(&self.pool);
        self.sync(&mut pool, now);
        pool.order
            .iter()
            .filter_map(|key| {
                let s = pool.states.get(key)?;
                Some(EndpointStats {
                    endpoint: s.endpoint.clone(),
                    breaker: s.breaker.state(now),
                    ejected: pool.outlier.is_ejected(key, now),
                    in_flight: s.in_flight,
                    latency: s.ewma.estimate(now),
                    successes: s.successes,
                    failures: s.failures,
                })
            })
            .collect()
    }

    fn admit<E>(&self) -> Result<(), CallError<E>> {
        let now = Instant::now();
        let mut pool = lock(&self.pool);
        if let Some(limiter) = pool.limiter.as_mut() {
            if !limiter.try_acquire(now) {
                return Err(CallError::RateLimited {
                    service: self.discovery.service().to_owned(),
                });
            }
        }
        pool.budget.deposit(now);
        Ok(())
    }

    fn withdraw_retry(&self) -> bool {
        lock(&self.pool).budget.try_withdraw(Instant::now())
    }

    /// Brings the endpoint states in line with the current view.
    fn sync(&self, pool: &mut Pool, now: Instant) {
        let view = self.discovery.endpoints();
        if pool.synced.as_ref().is_some_and(|s| Arc::ptr_eq(s, &view)) {
            return;
        }
        let mut states = std::mem::take(&mut pool.states);
        pool.order.clear();
        for endpoint in view.iter() {
            let key = endpoint.key();
            let state = match states.remove(&key) {
                Some(mut state) => {
                    state.endpoint = endpoint.clone();
                    state
                }
                None => EndpointState {
                    endpoint: endpoint.clone(),
                    breaker: CircuitBreaker::new(self.config.breaker.clone(), pool.rng.random()),
                    ewma: PeakEwma::new(self.config.ewma_decay, self.config.ewma_initial, now),
                    in_flight: 0,
                    successes: 0,
                    failures: 0,
                },
            };
            pool.order.push(key.clone());
            pool.states.insert(key, state);
        }
        let Pool {
            outlier,
            states: kept,
            ..
        } = pool;
        outlier.retain(|key| kept.contains_key(key));
        pool.synced = Some(view);
    }

    /// Picks an endpoint, preferring ones not tried yet in this call.
    fn begin<E>(
        &self,
        request_key: Option<&[u8]>,
        tried: &[String],
    ) -> Result<Attempt, CallError<E>> {
        let now = Instant::now();
        let mut guard = lock(&self.pool);
        self.sync(&mut guard, now);
        let Pool {
            order,
            states,
            picker,
            outlier,
            ..
        } = &mut *guard;
        let service = || self.discovery.service().to_owned();
        if order.is_empty() {
            return Err(CallError::NoEndpoints { service: service() });
        }
        let usable: Vec<&String> = order
            .iter()
            .filter(|key| {
                !outlier.is_ejected(key, now)
                    && states.get(*key).is_some_and(|s| s.breaker.allows(now))
            })
            .collect();
        let panic = in_panic(usable.len(), order.len(), self.config.panic_threshold);
        let pool_keys: Vec<&String> = if panic {
            tracing::debug!(
                usable = usable.len(),
                total = order.len(),
                "panic threshold: using every endpoint"
            );
            order.iter().collect()
        } else {
            usable
        };
        let untried: Vec<&String> = pool_keys
            .iter()
            .copied()
            .filter(|k| !tried.contains(k))
            .collect();
        let keys = if untried.is_empty() {
            pool_keys
        } else {
            untried
        };
        let candidates: Vec<Candidate<'_>> = keys
            .iter()
            .filter_map(|key| {
                let s = states.get(*key)?;
                Some(Candidate {
                    key: key.as_str(),
                    weight: s.endpoint.weight,
                    in_flight: s.in_flight,
                    cost: s.ewma.cost(s.in_flight, now),
                })
            })
            .collect();
        let Some(index) = picker.pick(&candidates, request_key) else {
            return Err(CallError::AllBroken { service: service() });
        };
        let key = candidates[index].key.to_owned();
        let Some(state) = states.get_mut(&key) else {
            return Err(CallError::NoEndpoints { service: service() });
        };
        // In panic every endpoint is called, open breakers included: taking
        // a probe is only meaningful when the breaker decides.
        if !panic {
            state.breaker.try_acquire(now);
        }
        state.in_flight += 1;
        Ok(Attempt {
            pool: Arc::clone(&self.pool),
            endpoint: state.endpoint.clone(),
            started: now,
            finished: false,
        })
    }
}

fn retype<E>(error: CallError<std::convert::Infallible>) -> CallError<E> {
    match error {
        CallError::NoEndpoints { service } => CallError::NoEndpoints { service },
        CallError::AllBroken { service } => CallError::AllBroken { service },
        CallError::RateLimited { service } => CallError::RateLimited { service },
        CallError::Timeout { endpoint, timeout } => CallError::Timeout { endpoint, timeout },
        CallError::Failed { source, .. } => match source {},
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tokio::sync::watch;

    use super::*;
    use crate::Backoff;

    fn seed() -> u64 {
        let seed = rand::random::<u64>();
        println!("seed = {seed}");
        seed
    }

    /// Breakers that open after 2 failures for exactly 10 s; no outlier
    /// ejection; no retries unless a test asks.
    fn config() -> BalancerConfig {
        BalancerConfig {
            strategy: Strategy::RoundRobin,
            breaker: BreakerConfig {
                consecutive_failures: 2,
                failure_rate: 2.0,
                open_backoff: Backoff::new(Duration::from_secs(10), Duration::from_secs(10))
                    .with_jitter(0.0),
                ..BreakerConfig::default()
            },
            outlier: OutlierConfig {
                consecutive_failures: 0,
                ..OutlierConfig::default()
            },
            max_attempts: 1,
            seed: Some(seed()),
            ..BalancerConfig::default()
        }
    }

    fn balancer(
        ids: &[&str],
        config: BalancerConfig,
    ) -> (watch::Sender<Arc<Vec<Endpoint>>>, LoadBalancer) {
        let endpoints = ids
            .iter()
            .map(|id| Endpoint::new(id, "svc", "127.0.0.1", 80))
            .collect();
        let (tx, rx) = watch::channel(Arc::new(endpoints));
        (
            tx,
            LoadBalancer::new(Discovery::from_receiver("svc", rx), config),
        )
    }

    /// One call that fails on the `failing` endpoints; returns the endpoint tried last.
    async fn call(lb: &LoadBalancer, failing: &[&str]) -> Result<String, CallError<String>> {
        lb.call(None, |e| {
            let id = e.id.clone();
            let fails = failing.contains(&id.as_str());
            async move {
                if fails {
                    Err(id)
                } else {
                    Ok(id)
                }
            }
        })
        .await
    }

    async fn tally(lb: &LoadBalancer, failing: &[&str], calls: usize) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for _ in 0..calls {
            let id = match call(lb, failing).await {
                Ok(id) => id,
                Err(CallError::Failed { source, .. }) => source,
                Err(other) => format!("{other}"),
            };
            *counts.entry(id).or_default() += 1;
        }
        counts
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_breaker_takes_its_endpoint_out_until_the_probe() {
        let (_tx, lb) = balancer(&["a", "b", "c"], config());
        // Round robin: b fails on calls 2 and 5, then its breaker is open.
        let counts = tally(&lb, &["b"], 12).await;
        assert_eq!(
            counts,
            BTreeMap::from([("a".into(), 5), ("b".into(), 2), ("c".into(), 5)])
        );
        let b = lb
            .stats()
            .into_iter()
            .find(|s| s.endpoint.id == "b")
            .map(|s| s.breaker);
        assert!(matches!(b, Some(BreakerState::Open { .. })), "{b:?}");
        // After the cool-down one probe goes to b; it succeeds and b is back.
        tokio::time::advance(Duration::from_secs(10)).await;
        let counts = tally(&lb, &[], 30).await;
        assert_eq!(counts.get("b"), Some(&10), "{counts:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn retries_go_to_endpoints_not_tried_yet() {
        let mut cfg = config();
        cfg.max_attempts = 3;
        cfg.breaker.consecutive_failures = 0;
        let (_tx, lb) = balancer(&["a", "b", "c"], cfg);
        // a and b fail, c answers: whichever is tried first, no endpoint is tried twice.
        assert_eq!(call(&lb, &["a", "b"]).await.ok().as_deref(), Some("c"));
        for s in lb.stats() {
            assert!(
                s.successes + s.failures <= 1,
                "{} tried twice",
                s.endpoint.id
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_retry_budget_allows_exactly_its_share() {
        let mut cfg = config();
        cfg.max_attempts = 10;
        cfg.breaker.consecutive_failures = 0;
        cfg.retry_budget = RetryBudgetConfig {
            ttl: Duration::from_secs(10),
            min_retries_per_second: 0,
            retry_ratio: 0.5,
        };
        let (_tx, lb) = balancer(&["a"], cfg);
        // Each call deposits half a retry: calls alternate 1 and 2 tries.
        let mut tries = Vec::new();
        for _ in 0..4 {
            let before = lb.stats()[0].failures;
            assert!(call(&lb, &["a"]).await.is_err());
            tries.push(lb.stats()[0].failures - before);
        }
        assert_eq!(tries, vec![1, 2, 1, 2]);
        // The deposits expire with the budget's TTL.
        tokio::time::advance(Duration::from_secs(10)).await;
        let before = lb.stats()[0].failures;
        assert!(call(&lb, &["a"]).await.is_err());
        assert_eq!(lb.stats()[0].failures - before, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn panic_threshold_uses_every_endpoint_when_too_few_are_usable() {
        let mut cfg = config();
        cfg.panic_threshold = 0.5;
        let (_tx, lb) = balancer(&["a", "b", "c", "d"], cfg);
        // Open b's and c's breakers (2 failures each): 2 of 4 usable, no panic.
        tally(&lb, &["b", "c"], 8).await;
        let counts = tally(&lb, &["b", "c"], 8).await;
        assert_eq!(counts, BTreeMap::from([("a".into(), 4), ("d".into(), 4)]));
        // Open d's as well: 1 of 4 usable < 50 % → panic: every endpoint is
        // called, the broken ones included (they keep failing, so it lasts).
        tally(&lb, &["b", "c", "d"], 4).await;
        let counts = tally(&lb, &["b", "c", "d"], 40).await;
        assert_eq!(counts.len(), 4, "all endpoints in panic: {counts:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn outlier_ejection_stops_at_the_max_percent() {
        let mut cfg = config();
        cfg.breaker.consecutive_failures = 0;
        cfg.panic_threshold = 0.0;
        cfg.outlier = OutlierConfig {
            consecutive_failures: 2,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(30),
            max_ejected_percent: 50,
        };
        let (_tx, lb) = balancer(&["a", "b", "c", "d"], cfg);
        tally(&lb, &["a", "b", "c"], 12).await;
        let ejected: Vec<String> = lb
            .stats()
            .into_iter()
            .filter(|s| s.ejected)
            .map(|s| s.endpoint.id)
            .collect();
        assert_eq!(ejected.len(), 2, "half of 4: {ejected:?}");
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(lb.stats().iter().all(|s| !s.ejected), "ejections end");
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limit_refuses_beyond_the_burst_until_refilled() {
        let mut cfg = config();
        cfg.rate_limit = Some((2.0, 2));
        let (_tx, lb) = balancer(&["a"], cfg);
        assert!(call(&lb, &[]).await.is_ok());
        assert!(call(&lb, &[]).await.is_ok());
        assert!(matches!(
            call(&lb, &[]).await,
            Err(CallError::RateLimited { .. })
        ));
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(call(&lb, &[]).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_try_times_out_and_counts_as_a_failure() {
        let mut cfg = config();
        cfg.per_try_timeout = Some(Duration::from_secs(1));
        let (_tx, lb) = balancer(&["a"], cfg);
        let result = lb
            .call(None, |_| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok::<_, String>(())
            })
            .await;
        assert!(
            matches!(result, Err(CallError::Timeout { .. })),
            "{result:?}"
        );
        assert_eq!(lb.stats()[0].failures, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn empty_view_and_view_changes() {
        let (tx, lb) = balancer(&[], config());
        assert!(matches!(
            call(&lb, &[]).await,
            Err(CallError::NoEndpoints { .. })
        ));
        tx.send_replace(Arc::new(vec![Endpoint::new("z", "svc", "127.0.0.1", 80)]));
        assert_eq!(call(&lb, &[]).await.ok().as_deref(), Some("z"));
    }

    #[tokio::test(start_paused = true)]
    async fn least_request_avoids_endpoints_with_calls_in_flight() {
        let mut cfg = config();
        cfg.strategy = Strategy::LeastRequest;
        let (_tx, lb) = balancer(&["a", "b"], cfg);
        let held = lb.start(None).expect("an attempt");
        let busy = held.endpoint().id.clone();
        for _ in 0..20 {
            let attempt = lb.start(None).expect("an attempt");
            assert_ne!(attempt.endpoint().id, busy);
            attempt.finish(true);
        }
        // An abandoned attempt gives its slot back.
        drop(held);
        assert!(lb.stats().iter().all(|s| s.in_flight == 0));
    }

    #[tokio::test(start_paused = true)]
    async fn consistent_hash_keeps_a_key_on_one_endpoint() {
        let mut cfg = config();
        cfg.strategy = Strategy::ConsistentHash { virtual_nodes: 100 };
        let (_tx, lb) = balancer(&["a", "b", "c"], cfg);
        let first = lb
            .start(Some(b"user-7"))
            .expect("attempt")
            .endpoint()
            .id
            .clone();
        for _ in 0..20 {
            let attempt = lb.start(Some(b"user-7")).expect("attempt");
            assert_eq!(attempt.endpoint().id, first);
            attempt.finish(true);
        }
    }
}
