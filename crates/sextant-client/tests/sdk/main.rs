//! The SDK against real `sextant agent` processes (started by testkit) and
//! real `user-service` example processes.
//!
//! Needs the `sextant` binary in the target directory: a workspace build or
//! test run builds it; otherwise run `cargo build -p sextant` first (or point
//! `SEXTANT_BIN` at one). The examples are built by `cargo test` itself.

mod processes;

mod t10_dev;
mod t20_cluster;
mod t40_integration;
