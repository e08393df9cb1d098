//! Durable Raft log storage.
//!
//! [`LogStore`] implements openraft's `RaftLogStorage` (storage-v2) on a purpose-built
//! segmented append-only log:
//!
//! - `record`: framing and checksum of one record,
//! - `segment`: one segment file (scan, append, truncate),
//! - `meta_file`: atomically replaced small files (vote, purged id, committed id),
//! - `writer`: the group-commit writer thread that owns the files,
//! - `recovery`: scanning and trimming the directory on open,
//! - `mem_log`: the live log kept in memory, encoded, for reads,
//! - `log_store`: the openraft trait implementations,
//! - `failpoints`: test-only storage faults for the safety harness.
//!
//! Directory layout: `log-<first_index:020>.seg` segment files, `vote.meta`, `purged.meta`,
//! `committed.meta`.

mod error;
mod failpoints;
mod log_store;
mod mem_log;
mod meta_file;
mod record;
mod recovery;
mod segment;
mod writer;

pub mod atomic_file;
pub mod metric_names;

pub use error::OpenError;
pub use failpoints::{FailpointError, Failpoints, FAIL_FSYNC_FILE};
pub use log_store::LogReader;
pub use log_store::LogStore;
pub use log_store::LogStoreConfig;
pub use log_store::LogStoreStats;
#[doc(hidden)]
pub use log_store::WriterPause;
