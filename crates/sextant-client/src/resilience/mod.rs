//! The resilience pieces the balancer combines: circuit breaker, outlier
//! ejection and panic threshold, retry budget, rate limiter. Each is a plain
//! state machine that takes the current time, so tests drive it exactly.

pub mod breaker;
pub mod outlier;
pub mod rate_limit;
pub mod retry_budget;
