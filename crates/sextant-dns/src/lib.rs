//! Consul's DNS interface: `NAME.service.consul`, `TAG.NAME.service.consul`,
//! `_NAME._TAG.service.consul` (SRV) and `NODE.node.consul`, over UDP and TCP
//! on `dns_addr`. Answers come from this server's applied catalog (stale
//! reads), so every server answers, followers included.
//!
//! `resolve` turns a question into records (pure); `server` owns the sockets,
//! the wire format (hickory-proto) and the response codes.

pub mod config;
pub mod resolve;
pub mod server;

pub use config::DnsConfig;
pub use server::{bind, serve, Listeners};
