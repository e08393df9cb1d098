//! Test harness that runs real `sextant agent` processes on loopback.
//!
//! A [`Server`] is one child process with its own temporary data directory
//! (kept across restarts), every listener on `127.0.0.1:0`, and its stdout and
//! stderr captured to `stdout.log` / `stderr.log` inside that directory. A
//! [`Cluster`] starts N servers that bootstrap together and waits until they
//! agree on a leader. [`HttpClient`] speaks the Consul-compatible HTTP API and
//! the native `/v1/sextant/raft` endpoint. Faults are real signals: SIGKILL,
//! SIGTERM, SIGSTOP and SIGCONT. A server can also listen on another address
//! and run through a launcher ([`ServerOpts::bind_ip`],
//! [`ServerOpts::launcher`]): `sextant-chaos` puts each server in its own
//! network namespace that way, to partition them.
//!
//! Rules the harness keeps so tests stay reproducible and clean:
//! - nothing waits by sleeping for luck: [`wait_for`] and [`Cluster::wait_for`]
//!   poll a condition with a deadline and panic naming what was awaited, with
//!   the servers' log tails;
//! - everything random derives from one printed seed ([`test_rng`]);
//! - every child process is killed when its [`Server`] is dropped, also when a
//!   test panics, and a tiny shell watchdog kills it if the test process itself
//!   dies without unwinding.
//!
//! [`compat`] records what real clients' compatibility suites found and keeps
//! the README's compatibility matrices generated from those runs.
//!
//! This crate knows the binary only by its command line and its HTTP API; it
//! depends on no server crate.

mod binary;
mod cli;
mod cluster;
pub mod compat;
mod http;
mod process;
mod seed;
mod server;
mod wait;

pub use binary::sextant_beside_me;
pub use cli::{run_cli, CliOutput};
pub use cluster::{Cluster, ClusterOpts};
pub use http::{
    compare_kv, Consistency, HttpClient, KvEntry, Member, RaftConfiguration, RaftRole, RaftServer,
    RaftState, Reply, ReplyMeta,
};
pub use seed::{random_value, test_rng, TEST_SEED_ENV};
pub use server::{Addresses, Server, ServerOpts};
pub use wait::{wait_for, POLL_INTERVAL};
