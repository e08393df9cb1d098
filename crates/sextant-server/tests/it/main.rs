//! sextant-server's integration tests, in one test binary: servers started
//! in this process (the etcd API, compaction, Raft batching), the fuzz
//! target bodies with seeded inputs, and the crates' layering rules.

mod common;
mod compaction;
mod etcd_api;
mod etcd_watch_lag;
mod fuzz_targets;
mod layering;
mod raft_batching;
