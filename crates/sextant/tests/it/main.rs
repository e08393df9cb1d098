//! The sextant binary's integration tests, in one test binary: each module
//! drives real `sextant` processes (and real clients) over loopback. One
//! binary instead of one per file keeps a rebuild to a single link.
//!
//! Run one module with `cargo nextest run -p sextant --test it MODULE::`.

mod bad_input;
mod blocking;
mod cluster_formation;
mod consul_compat;
mod crash_durability;
mod dashboard;
mod dns;
mod etcd_compat;
mod failover;
mod internal_headers;
mod lease_forwarding;
mod malformed_input;
mod membership;
mod metrics;
mod nacos;
mod native_api;
mod readme;
mod snapshot_cli;
mod snapshots;
mod storage_faults;
mod tracing;
mod ui;
