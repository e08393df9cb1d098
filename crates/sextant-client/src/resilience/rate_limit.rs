//! A token-bucket rate limiter for outgoing calls.

use std::time::Duration;

use tokio::time::Instant;

/// Allows `rate_per_second` calls on average with bursts of up to `burst`.
///
/// ```
/// use sextant_client::RateLimiter;
/// use tokio::time::Instant;
///
/// let mut limiter = RateLimiter::new(10.0, 2);
/// let now = Instant::now();
/// assert!(limiter.try_acquire(now));
/// assert!(limiter.try_acquire(now));
/// assert!(!limiter.try_acquire(now));
/// ```
#[derive(Debug)]
pub struct RateLimiter {
    rate_per_second: f64,
    burst: f64,
    tokens: f64,
    refilled_at: Option<Instant>,
}

impl RateLimiter {
    /// A full bucket. A rate of 0 (or less) refills nothing; a burst of 0 is treated as 1.
    ///
    /// ```
    /// let limiter = sextant_client::RateLimiter::new(100.0, 10);
    /// ```
    pub fn new(rate_per_second: f64, burst: u32) -> RateLimiter {
        let burst = f64::from(burst.max(1));
        RateLimiter {
            rate_per_second: if rate_per_second.is_finite() {
                rate_per_second.max(0.0)
            } else {
                0.0
            },
            burst,
            tokens: burst,
            refilled_at: None,
        }
    }

    /// Takes a token if one is there.
    ///
    /// ```
    /// let mut limiter = sextant_client::RateLimiter::new(1.0, 1);
    /// assert!(limiter.try_acquire(tokio::time::Instant::now()));
    /// ```
    pub fn try_acquire(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 - 1e-9 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until a token is available (zero if one is there now);
    /// `None` if the bucket never refills.
    ///
    /// ```
    /// let mut limiter = sextant_client::RateLimiter::new(2.0, 1);
    /// let now = tokio::time::Instant::now();
    /// limiter.try_acquire(now);
    /// assert_eq!(limiter.wait_time(now), Some(std::time::Duration::from_millis(500)));
    /// ```
    pub fn wait_time(&mut self, now: Instant) -> Option<Duration> {
        self.refill(now);
        if self.tokens >= 1.0 - 1e-9 {
            Some(Duration::ZERO)
        } else if self.rate_per_second == 0.0 {
            None
        } else {
            Some(Duration::from_secs_f64(
                (1.0 - self.tokens) / self.rate_per_second,
            ))
        }
    }

    fn refill(&mut self, now: Instant) {
        if let Some(at) = self.refilled_at {
            let elapsed = now.saturating_duration_since(at).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate_per_second).min(self.burst);
        }
        self.refilled_at = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn refills_at_the_rate_up_to_the_burst() {
        let mut limiter = RateLimiter::new(4.0, 2);
        assert!(limiter.try_acquire(Instant::now()));
        assert!(limiter.try_acquire(Instant::now()));
        assert!(!limiter.try_acquire(Instant::now()));
        assert_eq!(
            limiter.wait_time(Instant::now()),
            Some(Duration::from_millis(250))
        );
        tokio::time::advance(Duration::from_millis(249)).await;
        assert!(!limiter.try_acquire(Instant::now()));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(limiter.try_acquire(Instant::now()));
        // A long pause refills only up to the burst.
        tokio::time::advance(Duration::from_secs(60)).await;
        let admitted = (0..10)
            .filter(|_| limiter.try_acquire(Instant::now()))
            .count();
        assert_eq!(admitted, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_rate_never_refills() {
        let mut limiter = RateLimiter::new(0.0, 1);
        assert!(limiter.try_acquire(Instant::now()));
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(!limiter.try_acquire(Instant::now()));
        assert_eq!(limiter.wait_time(Instant::now()), None);
    }
}
