//! Exponential backoff with jitter: how long to wait before the next attempt.

use std::time::Duration;

use rand::Rng;

/// Delays that grow by `multiplier` per attempt from `initial` up to `max`,
/// each shortened by a random fraction of at most `jitter` so that many
/// clients failing together do not retry together.
///
/// ```
/// use std::time::Duration;
/// use sextant_client::Backoff;
///
/// let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).with_jitter(0.0);
/// assert_eq!(backoff.base(0), Duration::from_millis(100));
/// assert_eq!(backoff.base(3), Duration::from_millis(800));
/// assert_eq!(backoff.base(10), Duration::from_secs(1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// The delay before the second attempt.
    pub initial: Duration,
    /// No delay is longer than this.
    pub max: Duration,
    /// Growth per attempt (2.0 doubles).
    pub multiplier: f64,
    /// Fraction in `0.0..=1.0` of the delay that is randomly taken off; 0 is
    /// deterministic (tests), 1 is "full jitter".
    pub jitter: f64,
}

impl Backoff {
    /// Doubling delays from `initial` to `max` with 20 % jitter.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let backoff = sextant_client::Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
    /// assert_eq!(backoff.multiplier, 2.0);
    /// ```
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max: max.max(initial),
            multiplier: 2.0,
            jitter: 0.2,
        }
    }

    /// The same backoff with another jitter fraction (clamped to `0.0..=1.0`).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let b = sextant_client::Backoff::new(Duration::from_millis(1), Duration::from_secs(1)).with_jitter(2.0);
    /// assert_eq!(b.jitter, 1.0);
    /// ```
    pub fn with_jitter(mut self, jitter: f64) -> Backoff {
        self.jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        self
    }

    /// The same backoff with another growth factor (at least 1).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let b = sextant_client::Backoff::new(Duration::from_millis(10), Duration::from_secs(1))
    ///     .with_multiplier(3.0)
    ///     .with_jitter(0.0);
    /// assert_eq!(b.base(2), Duration::from_millis(90));
    /// ```
    pub fn with_multiplier(mut self, multiplier: f64) -> Backoff {
        self.multiplier = if multiplier.is_finite() {
            multiplier.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// The delay after `attempt` failures (0 = after the first), without jitter.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let b = sextant_client::Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    /// assert_eq!(b.base(1), Duration::from_secs(2));
    /// ```
    pub fn base(&self, attempt: u32) -> Duration {
        let factor = self.multiplier.powi(attempt.min(64) as i32);
        let secs = self.initial.as_secs_f64() * factor;
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// The delay after `attempt` failures, with jitter drawn from `rng`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// use rand::SeedableRng;
    /// let b = sextant_client::Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    /// let d = b.delay(0, &mut rng);
    /// assert!(d <= Duration::from_secs(1) && d >= Duration::from_millis(800));
    /// ```
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let base = self.base(attempt);
        if self.jitter == 0.0 {
            return base;
        }
        let cut = self.jitter * rng.random::<f64>();
        base.mul_f64(1.0 - cut)
    }
}

impl Default for Backoff {
    /// 100 ms doubling up to 10 s, 20 % jitter.
    fn default() -> Backoff {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn base_sequence_doubles_then_caps() {
        let b =
            Backoff::new(Duration::from_millis(100), Duration::from_millis(1000)).with_jitter(0.0);
        let seq: Vec<u128> = (0..7).map(|a| b.base(a).as_millis()).collect();
        assert_eq!(seq, vec![100, 200, 400, 800, 1000, 1000, 1000]);
        assert_eq!(b.base(u32::MAX), Duration::from_millis(1000));
    }

    #[test]
    fn zero_jitter_is_exact() {
        let b = Backoff::new(Duration::from_millis(30), Duration::from_secs(1)).with_jitter(0.0);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for attempt in 0..10 {
            assert_eq!(b.delay(attempt, &mut rng), b.base(attempt));
        }
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let seed = rand::random::<u64>();
        println!("seed = {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10)).with_jitter(0.5);
        for attempt in 0..8 {
            let d = b.delay(attempt, &mut rng);
            assert!(
                d <= b.base(attempt) && d >= b.base(attempt).mul_f64(0.5),
                "{d:?}"
            );
        }
    }
}
