//! The bodies of the Consul API's fuzz targets, kept in the crate so that the
//! same code runs under libFuzzer (`fuzz/`) and, on stable Rust, in the
//! ordinary test suite with seeded random inputs (sextant-server's
//! `tests/fuzz_targets.rs`).
//!
//! Not part of the crate's API: it is exported (hidden) only because the
//! fuzz crate lives outside the workspace, and it reaches the private
//! decoders it exercises without widening their modules' visibility.
//! Every function takes raw fuzzer bytes and panics only when it finds a bug.

mod consul_filter;
mod consul_json;

pub use consul_filter::consul_filter;
pub use consul_json::consul_json;
