//! Outlier ejection across a pool, bounded by a maximum ejected percentage,
//! and the panic threshold that ignores ejections when too few remain.
//!
//! A breaker protects one endpoint from calls; ejection takes an endpoint
//! out of the pool for a while, and the pool-wide cap keeps a bad day (or a
//! bug in the caller) from ejecting everything.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// When an endpoint is ejected and for how long.
///
/// ```
/// let config = sextant_client::OutlierConfig::default();
/// assert_eq!(config.max_ejected_percent, 50);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct OutlierConfig {
    /// Failures in a row that eject an endpoint (0 disables ejection).
    pub consecutive_failures: u32,
    /// Ejection length the first time; it grows linearly with every ejection.
    pub base_ejection: Duration,
    /// No ejection is longer than this.
    pub max_ejection: Duration,
    /// At most this percentage of the pool (rounded down, but at least one
    /// endpoint) is ejected at once.
    pub max_ejected_percent: u32,
}

impl Default for OutlierConfig {
    /// 5 failures in a row; 30 s growing to 5 min; at most half the pool.
    fn default() -> OutlierConfig {
        OutlierConfig {
            consecutive_failures: 5,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            max_ejected_percent: 50,
        }
    }
}

#[derive(Debug, Default)]
struct Record {
    consecutive_failures: u32,
    ejections: u32,
    ejected_until: Option<Instant>,
}

/// Tracks failures per endpoint key and decides ejections.
///
/// ```
/// use sextant_client::{OutlierConfig, OutlierDetector};
/// use tokio::time::Instant;
///
/// let mut d = OutlierDetector::new(OutlierConfig { consecutive_failures: 1, ..Default::default() });
/// let now = Instant::now();
/// d.on_failure("a", now, 4);
/// assert!(d.is_ejected("a", now));
/// ```
#[derive(Debug)]
pub struct OutlierDetector {
    config: OutlierConfig,
    records: HashMap<String, Record>,
}

impl OutlierDetector {
    /// A detector with nothing ejected.
    ///
    /// ```
    /// let d = sextant_client::OutlierDetector::new(Default::default());
    /// assert_eq!(d.ejected_count(tokio::time::Instant::now()), 0);
    /// ```
    pub fn new(config: OutlierConfig) -> OutlierDetector {
        OutlierDetector {
            config,
            records: HashMap::new(),
        }
    }

    /// Records a success: the endpoint's failure streak ends.
    ///
    /// ```
    /// let mut d = sextant_client::OutlierDetector::new(Default::default());
    /// d.on_success("a");
    /// ```
    pub fn on_success(&mut self, key: &str) {
        if let Some(record) = self.records.get_mut(key) {
            record.consecutive_failures = 0;
        }
    }

    /// Records a failure of `key` in a pool of `pool_size` endpoints; returns
    /// whether it ejected the endpoint. An endpoint that reaches the streak
    /// while the cap is full stays in and is ejected by a later failure once
    /// there is room.
    ///
    /// ```
    /// use sextant_client::{OutlierConfig, OutlierDetector};
    /// let mut d = OutlierDetector::new(OutlierConfig { consecutive_failures: 2, ..Default::default() });
    /// let now = tokio::time::Instant::now();
    /// assert!(!d.on_failure("a", now, 3));
    /// assert!(d.on_failure("a", now, 3));
    /// ```
    pub fn on_failure(&mut self, key: &str, now: Instant, pool_size: usize) -> bool {
        if self.config.consecutive_failures == 0 {
            return false;
        }
        let ejected = self.ejected_count(now);
        let allowed = (pool_size * self.config.max_ejected_percent as usize / 100).max(1);
        let record = self.records.entry(key.to_owned()).or_default();
        if record.ejected_until.is_some_and(|until| until > now) {
            return false;
        }
        record.consecutive_failures = record.consecutive_failures.saturating_add(1);
        if record.consecutive_failures < self.config.consecutive_failures || ejected >= allowed {
            return false;
        }
        record.ejections = record.ejections.saturating_add(1);
        let length = self
            .config
            .base_ejection
            .saturating_mul(record.ejections)
            .min(self.config.max_ejection);
        record.ejected_until = Some(now + length);
        record.consecutive_failures = 0;
        tracing::info!(endpoint = key, ejection = ?length, "endpoint ejected");
        true
    }

    /// Whether `key` is ejected at `now`.
    ///
    /// ```
    /// let d = sextant_client::OutlierDetector::new(Default::default());
    /// assert!(!d.is_ejected("a", tokio::time::Instant::now()));
    /// ```
    pub fn is_ejected(&self, key: &str, now: Instant) -> bool {
        self.records
            .get(key)
            .and_then(|r| r.ejected_until)
            .is_some_and(|until| until > now)
    }

    /// How many endpoints are ejected at `now`.
    ///
    /// ```
    /// let d = sextant_client::OutlierDetector::new(Default::default());
    /// assert_eq!(d.ejected_count(tokio::time::Instant::now()), 0);
    /// ```
    pub fn ejected_count(&self, now: Instant) -> usize {
        self.records
            .values()
            .filter(|r| r.ejected_until.is_some_and(|until| until > now))
            .count()
    }

    /// Forgets endpoints not in `keys` (they left the discovery view).
    pub(crate) fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.records.retain(|key, _| keep(key));
    }
}

/// Whether the pool is in panic: fewer than `threshold` (a fraction) of its
/// `total` endpoints are usable, so the balancer should use all of them, as
/// Envoy and Nacos do, rather than pile every call onto the few left.
///
/// ```
/// use sextant_client::in_panic;
/// assert!(in_panic(1, 4, 0.5));
/// assert!(!in_panic(2, 4, 0.5));
/// assert!(!in_panic(0, 0, 0.5));
/// ```
pub fn in_panic(usable: usize, total: usize, threshold: f64) -> bool {
    total > 0 && (usable as f64) < threshold * total as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector(percent: u32) -> OutlierDetector {
        OutlierDetector::new(OutlierConfig {
            consecutive_failures: 2,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(25),
            max_ejected_percent: percent,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn max_ejected_percent_caps_ejections() {
        let mut d = detector(50);
        let now = Instant::now();
        for key in ["a", "b", "c", "d"] {
            d.on_failure(key, now, 4);
            d.on_failure(key, now, 4);
        }
        assert_eq!(d.ejected_count(now), 2, "50 % of 4");
        assert!(d.is_ejected("a", now) && d.is_ejected("b", now));
        assert!(!d.is_ejected("c", now) && !d.is_ejected("d", now));
        // Once "a" is back, "c"'s next failure takes the free slot.
        tokio::time::advance(Duration::from_secs(10)).await;
        let now = Instant::now();
        assert!(!d.is_ejected("a", now));
        assert!(d.on_failure("c", now, 4));
    }

    #[tokio::test(start_paused = true)]
    async fn ejection_grows_linearly_up_to_the_max_and_success_ends_a_streak() {
        let mut d = detector(100);
        let mut lengths = Vec::new();
        for _ in 0..4 {
            let start = Instant::now();
            d.on_failure("a", start, 2);
            assert!(d.on_failure("a", start, 2));
            let mut waited = Duration::ZERO;
            while d.is_ejected("a", Instant::now()) {
                tokio::time::advance(Duration::from_secs(1)).await;
                waited += Duration::from_secs(1);
            }
            lengths.push(waited.as_secs());
        }
        assert_eq!(lengths, vec![10, 20, 25, 25]);
        d.on_failure("a", Instant::now(), 2);
        d.on_success("a");
        assert!(!d.on_failure("a", Instant::now(), 2));
    }

    #[test]
    fn a_pool_of_one_may_still_eject_its_endpoint() {
        let mut d = detector(10);
        let now = Instant::now();
        d.on_failure("a", now, 1);
        assert!(d.on_failure("a", now, 1));
    }

    #[test]
    fn panic_threshold() {
        assert!(!in_panic(3, 3, 0.5));
        assert!(!in_panic(2, 3, 0.5));
        assert!(in_panic(1, 3, 0.5));
        assert!(in_panic(0, 3, 0.5));
        assert!(!in_panic(0, 3, 0.0), "threshold 0 never panics");
    }
}
