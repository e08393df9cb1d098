//! The Rust client SDK for Sextant.
//!
//! A service registers itself and stays registered; a consumer discovers
//! the healthy instances of a service, balances across them and stops
//! calling the broken ones.
//!
//! - [`Client`] talks to the Sextant servers over the native gRPC API
//!   (`sextant.v1.Registry`), failing over between them with backoff and
//!   following leader hints.
//! - [`Client::register`] returns a [`Registration`] kept alive over one
//!   KeepAlive stream per client, registered again whenever a server no
//!   longer knows it, and deregistered on [`Registration::shutdown`] or drop.
//! - [`Client::discover`] returns a [`Discovery`]: a live view fed by the
//!   Watch stream (no polling), resumed from the last revision after a reconnect.
//! - [`LoadBalancer`] picks endpoints ([`Strategy`]: round-robin, random,
//!   weighted, peak-EWMA or least-request power-of-two-choices, consistent
//!   hashing) behind per-endpoint [`CircuitBreaker`]s, [`OutlierDetector`]
//!   ejection with a cap, a panic threshold, a [`RetryBudget`], per-try
//!   timeouts and a [`RateLimiter`].
//! - At tower's edges: [`Discovery::changes`] / [`Discovery::services`]
//!   implement `tower::discover::Discover`, [`CircuitBreakerLayer`] and
//!   [`BalancedService`] put any tonic or hyper client behind the SDK, and
//!   [`Discovery::balanced_channel`] is a ready-made tonic `Channel`.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use sextant_client::{BalancerConfig, Client, Instance, LoadBalancer};
//!
//! let client = Client::connect(["10.0.0.1:2379", "10.0.0.2:2379", "10.0.0.3:2379"]).await?;
//! let me = client
//!     .register(Instance::new("orders", "10.0.0.7", 8080).ttl(Duration::from_secs(10)))
//!     .await?;
//! let users = LoadBalancer::new(client.discover("user-service").await?, BalancerConfig::default());
//! let http = reqwest::Client::new();
//! let user = users
//!     .call(None, |e| {
//!         let request = http.get(format!("{}/users/7", e.http_uri()));
//!         async move { request.send().await?.error_for_status()?.text().await }
//!     })
//!     .await?;
//! me.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! The crate depends on the protocol crate only, never on the server.

#![warn(missing_docs)]

mod backoff;
mod balance;
mod balancer;
mod client;
mod connection;
mod discovery;
mod endpoint;
mod error;
mod instance;
mod integration;
mod registration;
mod resilience;
mod task;

pub use backoff::Backoff;
pub use balance::ewma::PeakEwma;
pub use balance::hash_ring::HashRing;
pub use balance::{Candidate, Picker, Strategy};
pub use balancer::{Attempt, BalancerConfig, EndpointStats, LoadBalancer};
pub use client::{Client, ClientBuilder};
pub use connection::LEADER_HINT_METADATA;
pub use discovery::{Closed, Discovery, Query};
pub use endpoint::{Endpoint, Health};
pub use error::{CallError, Error};
pub use instance::{HealthCheck, Instance};
pub use integration::breaker_layer::{BreakerOpen, CircuitBreakerLayer, CircuitBreakerService};
pub use integration::discover::{EndpointChanges, ServiceChanges};
pub use integration::service::BalancedService;
pub use registration::Registration;
pub use resilience::breaker::{BreakerConfig, BreakerState, CircuitBreaker};
pub use resilience::outlier::{in_panic, OutlierConfig, OutlierDetector};
pub use resilience::rate_limit::RateLimiter;
pub use resilience::retry_budget::{RetryBudget, RetryBudgetConfig};
