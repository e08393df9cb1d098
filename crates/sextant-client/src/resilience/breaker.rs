//! A per-endpoint circuit breaker: closed → open → half-open → closed.
//!
//! Closed lets every call through and counts outcomes. It opens after
//! `consecutive_failures` failures in a row, or when at least
//! `minimum_requests` calls in the last `window` failed at `failure_rate` or
//! more. Open refuses calls until its cool-down ends; the cool-down grows
//! exponentially (with jitter) each time the breaker reopens without having
//! closed. Half-open lets exactly one probe through: success closes and
//! resets the cool-down, failure reopens.

use std::collections::VecDeque;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::Backoff;

/// When a breaker opens and how long it stays open.
///
/// ```
/// use std::time::Duration;
/// use sextant_client::BreakerConfig;
///
/// let config = BreakerConfig { consecutive_failures: 3, ..BreakerConfig::default() };
/// assert_eq!(config.window, Duration::from_secs(10));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerConfig {
    /// Failures in a row that open the breaker (0 disables this trigger).
    pub consecutive_failures: u32,
    /// Fraction of failed calls within `window` that opens the breaker
    /// (above 1.0 disables this trigger).
    pub failure_rate: f64,
    /// How far back the failure rate looks.
    pub window: Duration,
    /// The failure rate is only judged over at least this many calls.
    pub minimum_requests: u32,
    /// Cool-down before the half-open probe, growing per reopen.
    pub open_backoff: Backoff,
}

impl Default for BreakerConfig {
    /// 5 in a row or 50 % of at least 20 calls in 10 s; open 1 s doubling to 30 s.
    fn default() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: 5,
            failure_rate: 0.5,
            window: Duration::from_secs(10),
            minimum_requests: 20,
            open_backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(30)),
        }
    }
}

/// Where a breaker stands.
///
/// ```
/// use sextant_client::{BreakerState, CircuitBreaker};
/// let b = CircuitBreaker::new(Default::default(), 0);
/// assert_eq!(b.state(tokio::time::Instant::now()), BreakerState::Closed);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow.
    Closed,
    /// Calls are refused until the instant given.
    Open {
        /// When the half-open probe may go.
        until: Instant,
    },
    /// The cool-down is over; one probe decides.
    HalfOpen,
}

/// One endpoint's breaker. Not thread-safe by itself: the balancer keeps it
/// under its lock; every method takes the current time so tests drive it.
///
/// ```
/// use sextant_client::{BreakerConfig, CircuitBreaker, BreakerState};
/// use tokio::time::Instant;
///
/// let config = BreakerConfig { consecutive_failures: 2, ..BreakerConfig::default() };
/// let mut breaker = CircuitBreaker::new(config, 1);
/// let now = Instant::now();
/// breaker.on_failure(now);
/// breaker.on_failure(now);
/// assert!(matches!(breaker.state(now), BreakerState::Open { .. }));
/// assert!(!breaker.try_acquire(now));
/// ```
#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: BreakerState,
    consecutive_failures: u32,
    /// Outcomes within the window, oldest first: (when, failed).
    outcomes: VecDeque<(Instant, bool)>,
    /// Opens since the last close: the backoff exponent.
    reopens: u32,
    /// Half-open admits one probe; this says it is out.
    probe_in_flight: bool,
    rng: StdRng,
}

impl CircuitBreaker {
    /// A closed breaker; `seed` drives the jitter of its cool-downs.
    ///
    /// ```
    /// let b = sextant_client::CircuitBreaker::new(Default::default(), 42);
    /// assert_eq!(b.state(tokio::time::Instant::now()), sextant_client::BreakerState::Closed);
    /// ```
    pub fn new(config: BreakerConfig, seed: u64) -> CircuitBreaker {
        CircuitBreaker {
            config,
            state: BreakerState::Closed,
            consecutive_failures: 0,
            outcomes: VecDeque::new(),
            reopens: 0,
            probe_in_flight: false,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// The state at `now` (an open breaker whose cool-down ended reads as half-open).
    ///
    /// ```
    /// let b = sextant_client::CircuitBreaker::new(Default::default(), 0);
    /// assert!(b.allows(tokio::time::Instant::now()));
    /// ```
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.state {
            BreakerState::Open { until } if now >= until => BreakerState::HalfOpen,
            state => state,
        }
    }

    /// Whether a call at `now` would be admitted, without taking the probe.
    ///
    /// ```
    /// let b = sextant_client::CircuitBreaker::new(Default::default(), 0);
    /// assert!(b.allows(tokio::time::Instant::now()));
    /// ```
    pub fn allows(&self, now: Instant) -> bool {
        match self.state(now) {
            BreakerState::Closed => true,
            BreakerState::Open { .. } => false,
            BreakerState::HalfOpen => !self.probe_in_flight,
        }
    }

    /// Admits a call at `now`: always when closed, never when open, and only
    /// the one probe when half-open.
    ///
    /// ```
    /// let mut b = sextant_client::CircuitBreaker::new(Default::default(), 0);
    /// assert!(b.try_acquire(tokio::time::Instant::now()));
    /// ```
    pub fn try_acquire(&mut self, now: Instant) -> bool {
        if let BreakerState::Open { until } = self.state {
            if now >= until {
                self.state = BreakerState::HalfOpen;
                self.probe_in_flight = false;
            }
        }
        match self.state {
            BreakerState::Closed => true,
            BreakerState::Open { .. } => false,
            BreakerState::HalfOpen if self.probe_in_flight => false,
            BreakerState::HalfOpen => {
                self.probe_in_flight = true;
                true
            }
        }
    }

    /// Records a successful call; a half-open breaker closes.
    ///
    /// ```
    /// let mut b = sextant_client::CircuitBreaker::new(Default::default(), 0);
    /// b.on_success(tokio::time::Instant::now());
    /// ```
    pub fn on_success(&mut self, now: Instant) {
        self.consecutive_failures = 0;
        match self.state {
            BreakerState::Closed => self.record(now, false),
            BreakerState::HalfOpen | BreakerState::Open { .. } => {
                tracing::info!("circuit breaker closed");
                self.state = BreakerState::Closed;
                self.reopens = 0;
                self.probe_in_flight = false;
                self.outcomes.clear();
            }
        }
    }

    /// Records a failed call; may open (or reopen) the breaker.
    ///
    /// ```
    /// let mut b = sextant_client::CircuitBreaker::new(Default::default(), 0);
    /// b.on_failure(tokio::time::Instant::now());
    /// ```
    pub fn on_failure(&mut self, now: Instant) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        match self.state {
            BreakerState::Closed => {
                self.record(now, true);
                if self.should_trip() {
                    self.open(now);
                }
            }
            // A failure reported by a call admitted before the breaker opened
            // must not extend the cool-down.
            BreakerState::Open { .. } if !self.probe_in_flight => {}
            BreakerState::HalfOpen | BreakerState::Open { .. } => self.open(now),
        }
    }

    /// Gives back a half-open probe whose call was abandoned without an
    /// outcome, so the next call can probe instead.
    ///
    /// ```
    /// let mut b = sextant_client::CircuitBreaker::new(Default::default(), 0);
    /// b.cancel();
    /// ```
    pub fn cancel(&mut self) {
        if self.state == BreakerState::HalfOpen {
            self.probe_in_flight = false;
        }
    }

    /// The current cool-down length an opening at this point would get, without jitter.
    ///
    /// ```
    /// let b = sextant_client::CircuitBreaker::new(Default::default(), 0);
    /// assert_eq!(b.next_open_base(), std::time::Duration::from_secs(1));
    /// ```
    pub fn next_open_base(&self) -> Duration {
        self.config.open_backoff.base(self.reopens)
    }

    fn open(&mut self, now: Instant) {
        let cool_down = self.config.open_backoff.delay(self.reopens, &mut self.rng);
        tracing::info!(
            ?cool_down,
            reopens = self.reopens,
            consecutive_failures = self.consecutive_failures,
            "circuit breaker open"
        );
        self.reopens = self.reopens.saturating_add(1);
        self.state = BreakerState::Open {
            until: now + cool_down,
        };
        self.probe_in_flight = false;
        self.outcomes.clear();
    }

    fn record(&mut self, now: Instant, failed: bool) {
        self.outcomes.push_back((now, failed));
        while let Some(&(at, _)) = self.outcomes.front() {
            if now.duration_since(at) >= self.config.window {
                self.outcomes.pop_front();
            } else {
                break;
            }
        }
    }

    fn should_trip(&self) -> bool {
        let consecutive = self.config.consecutive_failures;
        if consecutive > 0 && self.consecutive_failures >= consecutive {
            return true;
        }
        let total = self.outcomes.len();
        if total == 0 || total < self.config.minimum_requests as usize {
            return false;
        }
        let failed = self.outcomes.iter().filter(|(_, failed)| *failed).count();
        failed as f64 / total as f64 >= self.config.failure_rate
    }

    /// A breaker seed from the OS, for breakers nobody replays.
    pub(crate) fn os_seed() -> u64 {
        rand::rng().random()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(consecutive: u32) -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: consecutive,
            failure_rate: 2.0,
            window: Duration::from_secs(10),
            minimum_requests: 4,
            open_backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(8))
                .with_jitter(0.0),
        }
    }

    fn is_open(b: &CircuitBreaker) -> bool {
        matches!(b.state(Instant::now()), BreakerState::Open { .. })
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_and_a_success_resets_the_count() {
        let mut b = CircuitBreaker::new(config(3), 0);
        b.on_failure(Instant::now());
        b.on_failure(Instant::now());
        b.on_success(Instant::now());
        b.on_failure(Instant::now());
        b.on_failure(Instant::now());
        assert_eq!(b.state(Instant::now()), BreakerState::Closed);
        b.on_failure(Instant::now());
        assert_eq!(
            b.state(Instant::now()),
            BreakerState::Open {
                until: Instant::now() + Duration::from_secs(1)
            }
        );
        assert!(!b.try_acquire(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_failure_rate_over_the_window_only() {
        let mut cfg = config(0);
        cfg.failure_rate = 0.5;
        let mut b = CircuitBreaker::new(cfg, 0);
        // Two old failures fall out of the window before the rate is judged.
        b.on_failure(Instant::now());
        b.on_failure(Instant::now());
        tokio::time::advance(Duration::from_secs(10)).await;
        b.on_success(Instant::now());
        b.on_success(Instant::now());
        b.on_failure(Instant::now());
        assert_eq!(
            b.state(Instant::now()),
            BreakerState::Closed,
            "3 calls < minimum 4"
        );
        b.on_success(Instant::now());
        assert_eq!(
            b.state(Instant::now()),
            BreakerState::Closed,
            "1 of 4 failed"
        );
        b.on_failure(Instant::now());
        assert!(!is_open(&b), "2 of 5 failed");
        b.on_failure(Instant::now());
        assert!(is_open(&b), "3 of 6 failed reaches 50 %");
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_admits_one_probe_and_backoff_grows_to_its_cap() {
        let mut b = CircuitBreaker::new(config(1), 0);
        b.on_failure(Instant::now());
        // Cool-downs 1, 2, 4, 8, 8 s: each reopen without a close doubles, capped.
        for expected in [1u64, 2, 4, 8, 8] {
            let cool_down = Duration::from_secs(expected);
            tokio::time::advance(cool_down - Duration::from_millis(1)).await;
            assert!(
                !b.try_acquire(Instant::now()),
                "still open before {expected}s"
            );
            tokio::time::advance(Duration::from_millis(1)).await;
            assert_eq!(b.state(Instant::now()), BreakerState::HalfOpen);
            assert!(b.try_acquire(Instant::now()), "the probe");
            assert!(!b.try_acquire(Instant::now()), "only one probe");
            b.on_failure(Instant::now());
            assert!(is_open(&b), "a failed probe reopens");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn successful_probe_closes_and_resets_the_backoff() {
        let mut b = CircuitBreaker::new(config(2), 0);
        b.on_failure(Instant::now());
        b.on_failure(Instant::now());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(b.try_acquire(Instant::now()));
        b.on_failure(Instant::now());
        assert_eq!(b.next_open_base(), Duration::from_secs(4));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(b.try_acquire(Instant::now()));
        b.on_success(Instant::now());
        assert_eq!(b.state(Instant::now()), BreakerState::Closed);
        assert_eq!(b.next_open_base(), Duration::from_secs(1));
        // Closed again: it takes the full consecutive count to reopen.
        b.on_failure(Instant::now());
        assert_eq!(b.state(Instant::now()), BreakerState::Closed);
        b.on_failure(Instant::now());
        assert!(is_open(&b));
    }

    #[tokio::test(start_paused = true)]
    async fn late_failures_of_calls_admitted_before_opening_do_not_extend_it() {
        let mut b = CircuitBreaker::new(config(1), 0);
        b.on_failure(Instant::now());
        let opened = b.state(Instant::now());
        tokio::time::advance(Duration::from_millis(500)).await;
        b.on_failure(Instant::now());
        assert_eq!(b.state(Instant::now()), opened);
    }
}
