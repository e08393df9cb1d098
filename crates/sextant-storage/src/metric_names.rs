//! The Prometheus families the log store records into. The recorder that
//! renders them (with their buckets) is the server's telemetry.

pub const STORAGE_FSYNC_SECONDS: &str = "sextant_storage_fsync_seconds";
pub const STORAGE_FSYNCS: &str = "sextant_storage_fsyncs_total";
pub const STORAGE_BYTES_WRITTEN: &str = "sextant_storage_bytes_written_total";
