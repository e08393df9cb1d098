//! Nacos's v1 naming HTTP API (`/nacos/v1/ns/*`) on its own listener, for
//! the many services that discover each other with Nacos clients.
//!
//! Nothing here keeps state of its own: instances are catalog service
//! instances ([`model`] says how they map), written through Raft like every
//! other registration (acknowledged once committed and on disk on a
//! majority), and the health of an ephemeral instance is a TTL check renewed
//! by its beats on the server that owns the check. Service definitions (the
//! protection threshold, metadata) are small JSON values in the replicated
//! key/value store under [`store::SERVICE_PREFIX`].
//!
//! Reads answer from this server's applied state, like Nacos's own
//! eventually consistent naming reads; a client reads its writes from the
//! server it wrote to, because every write waits until applied here too.

mod beat;
mod error;
mod health;
mod instance;
mod list;
mod list_cache;
mod list_reply;
pub mod model;
mod params;
mod service;
mod store;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post, put};
use axum::Router;

use sextant_core::health::Health;
use sextant_core::registry::Registry;

pub use error::NacosError;

/// The Nacos naming API's timers and answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NacosConfig {
    /// How often clients are told to beat (`clientBeatInterval`; Nacos: 5 s).
    pub beat_interval: Duration,
    /// An ephemeral instance without a beat for this long turns unhealthy
    /// (Nacos: 15 s).
    pub beat_timeout: Duration,
    /// An ephemeral instance without a beat for this long is deleted
    /// (Nacos: 30 s). Not below `beat_timeout`.
    pub delete_timeout: Duration,
    /// How long clients may cache an instance list (`cacheMillis`).
    pub cache_millis: u64,
}

impl Default for NacosConfig {
    fn default() -> Self {
        Self {
            beat_interval: Duration::from_secs(5),
            beat_timeout: Duration::from_secs(15),
            delete_timeout: Duration::from_secs(30),
            cache_millis: 10_000,
        }
    }
}

impl NacosConfig {
    /// Refuses timers that cannot work (a delete before the instance is
    /// even unhealthy).
    pub fn validate(&self) -> Result<(), sextant_core::ConfigError> {
        let invalid = |field, reason: &str| sextant_core::ConfigError::Invalid {
            field,
            reason: reason.into(),
        };
        if self.beat_interval.is_zero() {
            return Err(invalid("nacos_beat_interval", "must be above zero"));
        }
        if self.beat_timeout < Duration::from_millis(1) {
            return Err(invalid("nacos_beat_timeout", "must be at least 1ms"));
        }
        if self.delete_timeout < self.beat_timeout {
            return Err(invalid(
                "nacos_delete_timeout",
                "must not be below nacos_beat_timeout",
            ));
        }
        Ok(())
    }
}

/// What every Nacos handler can reach.
#[derive(Clone)]
pub struct NacosState {
    /// The replicated catalog and key/value store.
    pub registry: Arc<Registry>,
    /// Where beats renew the TTL checks of ephemeral instances.
    pub health: Arc<Health>,
    /// Timers and answers, from the server's configuration.
    pub config: NacosConfig,
    /// Instance lists already written, reused until their service changes.
    pub lists: Arc<list_cache::ListCache>,
}

/// The routes of the naming API.
pub fn router(state: NacosState) -> Router {
    Router::new()
        .route(
            "/nacos/v1/ns/instance",
            post(instance::register)
                .delete(instance::deregister)
                .put(instance::update)
                .get(instance::detail),
        )
        .route("/nacos/v1/ns/instance/beat", put(beat::beat))
        .route("/nacos/v1/ns/instance/list", get(list::list))
        .route("/nacos/v1/ns/health/instance", put(health::update))
        .route(
            "/nacos/v1/ns/service",
            post(service::create)
                .put(service::update)
                .get(service::detail)
                .delete(service::delete),
        )
        .route("/nacos/v1/ns/service/list", get(service::list))
        // Counted and traced like the Consul API's requests (by route template).
        .layer(axum::middleware::from_fn(sextant_core::http_metrics::track))
        // A bug in one handler answers 500 to that request; the server keeps running.
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .with_state(state)
}
