//! Peak-EWMA latency: an average that jumps up to any slower sample at once
//! and decays towards faster ones (and, while idle, towards zero) with time
//! constant `tau`. Multiplied by the requests in flight it is the cost the
//! power-of-two-choices balancer compares.

use std::time::Duration;

use tokio::time::Instant;

/// One endpoint's latency estimate.
///
/// ```
/// use std::time::Duration;
/// use sextant_client::PeakEwma;
/// use tokio::time::Instant;
///
/// let now = Instant::now();
/// let mut ewma = PeakEwma::new(Duration::from_secs(10), Duration::from_millis(20), now);
/// ewma.observe(Duration::from_millis(100), now);
/// assert_eq!(ewma.estimate(now), Duration::from_millis(100));
/// ```
#[derive(Clone, Debug)]
pub struct PeakEwma {
    tau_secs: f64,
    estimate_secs: f64,
    updated_at: Instant,
}

impl PeakEwma {
    /// Starts at `initial`: a guess for endpoints never measured, so a new
    /// endpoint is not flooded because it looks infinitely fast.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let now = tokio::time::Instant::now();
    /// let e = sextant_client::PeakEwma::new(Duration::from_secs(1), Duration::from_millis(5), now);
    /// assert_eq!(e.estimate(now), Duration::from_millis(5));
    /// ```
    pub fn new(tau: Duration, initial: Duration, now: Instant) -> PeakEwma {
        PeakEwma {
            tau_secs: tau.as_secs_f64().max(1e-9),
            estimate_secs: initial.as_secs_f64(),
            updated_at: now,
        }
    }

    /// Takes one latency sample measured at `now`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let now = tokio::time::Instant::now();
    /// let mut e = sextant_client::PeakEwma::new(Duration::from_secs(1), Duration::ZERO, now);
    /// e.observe(Duration::from_millis(7), now);
    /// assert_eq!(e.estimate(now), Duration::from_millis(7));
    /// ```
    pub fn observe(&mut self, latency: Duration, now: Instant) {
        let sample = latency.as_secs_f64();
        let current = self.decayed(now);
        self.estimate_secs = if sample > current {
            sample
        } else {
            let weight = self.weight(now);
            current * weight + sample * (1.0 - weight)
        };
        self.updated_at = now;
    }

    /// The estimate at `now`, decayed since the last sample.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let now = tokio::time::Instant::now();
    /// let e = sextant_client::PeakEwma::new(Duration::from_secs(1), Duration::from_millis(3), now);
    /// assert!(e.estimate(now + Duration::from_secs(1)) < Duration::from_millis(3));
    /// ```
    pub fn estimate(&self, now: Instant) -> Duration {
        Duration::from_secs_f64(self.decayed(now).max(0.0))
    }

    /// `estimate × (in_flight + 1)`: what p2c compares, in seconds.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let now = tokio::time::Instant::now();
    /// let e = sextant_client::PeakEwma::new(Duration::from_secs(1), Duration::from_secs(2), now);
    /// assert_eq!(e.cost(1, now), 4.0);
    /// ```
    pub fn cost(&self, in_flight: u32, now: Instant) -> f64 {
        self.decayed(now) * f64::from(in_flight.saturating_add(1))
    }

    fn weight(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.updated_at).as_secs_f64();
        (-elapsed / self.tau_secs).exp()
    }

    fn decayed(&self, now: Instant) -> f64 {
        self.estimate_secs * self.weight(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(d: Duration) -> f64 {
        d.as_secs_f64() * 1000.0
    }

    #[tokio::test(start_paused = true)]
    async fn peaks_immediately_and_averages_down_with_time() {
        let tau = Duration::from_secs(10);
        let mut e = PeakEwma::new(tau, Duration::from_millis(10), Instant::now());
        e.observe(Duration::from_millis(100), Instant::now());
        assert_eq!(millis(e.estimate(Instant::now())), 100.0);
        // A faster sample right away barely moves it (weight e^0 = 1).
        e.observe(Duration::from_millis(20), Instant::now());
        assert_eq!(millis(e.estimate(Instant::now())), 100.0);
        // One tau later: the old value decayed by e^-1 and the sample blends in.
        tokio::time::advance(tau).await;
        let decayed = 100.0 * (-1.0f64).exp();
        assert!((millis(e.estimate(Instant::now())) - decayed).abs() < 1e-6);
        e.observe(Duration::from_millis(20), Instant::now());
        let w = (-1.0f64).exp();
        let expected = decayed * w + 20.0 * (1.0 - w);
        assert!((millis(e.estimate(Instant::now())) - expected).abs() < 1e-6);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_estimate_decays_towards_zero() {
        let tau = Duration::from_secs(1);
        let e = PeakEwma::new(tau, Duration::from_millis(50), Instant::now());
        let start = Instant::now();
        for secs in [0u64, 1, 2, 5] {
            let expected = 50.0 * (-(secs as f64)).exp();
            let got = millis(e.estimate(start + Duration::from_secs(secs)));
            assert!(
                (got - expected).abs() < 1e-6,
                "{secs}s: {got} vs {expected}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn cost_multiplies_by_load() {
        let now = Instant::now();
        let e = PeakEwma::new(Duration::from_secs(1), Duration::from_millis(10), now);
        assert!((e.cost(0, now) - 0.010).abs() < 1e-12);
        assert!((e.cost(4, now) - 0.050).abs() < 1e-12);
    }
}
