//! A retry budget: retries may add at most a fixed share of the traffic,
//! plus a small floor per second so a quiet client can still retry.
//!
//! Every request deposits `retry_ratio` of a token; every retry withdraws a
//! whole one. Deposits expire after `ttl`, so the budget follows recent
//! traffic. The floor is `min_retries_per_second × ttl` tokens that are
//! always available within a `ttl` (withdrawals count against it as well).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// How much retrying is allowed.
///
/// ```
/// let c = sextant_client::RetryBudgetConfig::default();
/// assert_eq!(c.retry_ratio, 0.2);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RetryBudgetConfig {
    /// How long a request's deposit (and a retry's withdrawal) counts.
    pub ttl: Duration,
    /// Retries allowed per second regardless of traffic.
    pub min_retries_per_second: u32,
    /// Retries allowed per request (0.2: retries add at most 20 %).
    pub retry_ratio: f64,
}

impl Default for RetryBudgetConfig {
    /// 20 % of the requests of the last 10 s, plus 10 per second.
    fn default() -> RetryBudgetConfig {
        RetryBudgetConfig {
            ttl: Duration::from_secs(10),
            min_retries_per_second: 10,
            retry_ratio: 0.2,
        }
    }
}

/// The budget. Time is passed in so tests are exact.
///
/// ```
/// use std::time::Duration;
/// use sextant_client::{RetryBudget, RetryBudgetConfig};
/// use tokio::time::Instant;
///
/// let mut budget = RetryBudget::new(RetryBudgetConfig {
///     ttl: Duration::from_secs(1),
///     min_retries_per_second: 0,
///     retry_ratio: 0.5,
/// });
/// let now = Instant::now();
/// budget.deposit(now);
/// budget.deposit(now);
/// assert!(budget.try_withdraw(now));
/// assert!(!budget.try_withdraw(now));
/// ```
#[derive(Debug)]
pub struct RetryBudget {
    config: RetryBudgetConfig,
    /// (when, +ratio for a request or -1 for a retry), oldest first, in
    /// thousandths of a retry (whole numbers, so the running sum is exact).
    entries: VecDeque<(Instant, i64)>,
    /// The sum of `entries`, so no call adds the whole window up again.
    balance: i64,
}

/// Thousandths of a retry in one retry.
const WHOLE: i64 = 1000;

impl RetryBudget {
    /// An empty budget (only the floor is available).
    ///
    /// ```
    /// let b = sextant_client::RetryBudget::new(Default::default());
    /// assert_eq!(b.available(tokio::time::Instant::now()), 100);
    /// ```
    pub fn new(config: RetryBudgetConfig) -> RetryBudget {
        RetryBudget {
            config,
            entries: VecDeque::new(),
            balance: 0,
        }
    }

    /// Counts one request (call this for every request, retried or not).
    ///
    /// ```
    /// let mut b = sextant_client::RetryBudget::new(Default::default());
    /// b.deposit(tokio::time::Instant::now());
    /// ```
    pub fn deposit(&mut self, now: Instant) {
        self.expire(now);
        self.push(now, (self.config.retry_ratio * WHOLE as f64).round() as i64);
    }

    /// Takes one retry if the budget allows it.
    ///
    /// ```
    /// let mut b = sextant_client::RetryBudget::new(Default::default());
    /// assert!(b.try_withdraw(tokio::time::Instant::now()));
    /// ```
    pub fn try_withdraw(&mut self, now: Instant) -> bool {
        self.expire(now);
        if self.available(now) == 0 {
            return false;
        }
        self.push(now, -WHOLE);
        true
    }

    fn push(&mut self, now: Instant, amount: i64) {
        self.entries.push_back((now, amount));
        self.balance += amount;
    }

    /// Whole retries available at `now`.
    ///
    /// ```
    /// let b = sextant_client::RetryBudget::new(Default::default());
    /// assert!(b.available(tokio::time::Instant::now()) > 0);
    /// ```
    pub fn available(&self, now: Instant) -> u64 {
        let floor = (f64::from(self.config.min_retries_per_second)
            * self.config.ttl.as_secs_f64()
            * WHOLE as f64)
            .round() as i64;
        // Entries past the TTL not expired yet (only a deposit or withdrawal
        // expires them): the oldest ones, so only those are looked at.
        let stale: i64 = self
            .entries
            .iter()
            .take_while(|(at, _)| now.duration_since(*at) >= self.config.ttl)
            .map(|(_, amount)| amount)
            .sum();
        let total = floor + self.balance - stale;
        u64::try_from(total / WHOLE).unwrap_or(0)
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(at, _)) = self.entries.front() {
            if now.duration_since(at) >= self.config.ttl {
                if let Some((_, amount)) = self.entries.pop_front() {
                    self.balance -= amount;
                }
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(min_per_second: u32) -> RetryBudget {
        RetryBudget::new(RetryBudgetConfig {
            ttl: Duration::from_secs(10),
            min_retries_per_second: min_per_second,
            retry_ratio: 0.2,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn allowance_is_ratio_of_requests_plus_floor() {
        let mut b = budget(1);
        let now = Instant::now();
        assert_eq!(b.available(now), 10, "floor: 1/s over 10 s");
        for _ in 0..100 {
            b.deposit(now);
        }
        assert_eq!(b.available(now), 30, "10 + 20 % of 100");
        for _ in 0..30 {
            assert!(b.try_withdraw(now));
        }
        assert!(!b.try_withdraw(now), "budget spent");
        assert_eq!(b.available(now), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn deposits_and_withdrawals_expire_after_the_ttl() {
        let mut b = budget(0);
        for _ in 0..10 {
            b.deposit(Instant::now());
        }
        assert_eq!(b.available(Instant::now()), 2);
        assert!(b.try_withdraw(Instant::now()));
        tokio::time::advance(Duration::from_secs(5)).await;
        for _ in 0..5 {
            b.deposit(Instant::now());
        }
        assert_eq!(b.available(Instant::now()), 2, "2 + 1 - 1");
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(
            b.available(Instant::now()),
            1,
            "only the later 5 requests remain"
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(b.available(Instant::now()), 0);
        assert!(!b.try_withdraw(Instant::now()));
    }
}
