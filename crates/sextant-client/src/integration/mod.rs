//! The SDK at tower's edges: discovery as a `tower::discover::Discover`, a
//! circuit-breaker layer, a tower service that routes through the SDK's
//! balancer, and a balanced tonic `Channel`.

pub mod breaker_layer;
pub mod channel;
pub mod discover;
pub mod service;
