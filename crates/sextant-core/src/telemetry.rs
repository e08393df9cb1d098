//! Prometheus metrics: the names of the families and the recorder. The
//! gauges refreshed from this server's state when `/metrics` is scraped are
//! set by [`crate::scrape`].
//!
//! The recorder is process-global (the `metrics` macros write to one global
//! recorder), installed once by the first server in the process. Tests that
//! run several servers in one process therefore share counters; the gauges
//! derived from state are set by whichever server is scraped, just before it
//! renders, so a scrape shows the scraped server's state.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

pub const RAFT_TERM: &str = "sextant_raft_term";
pub const RAFT_IS_LEADER: &str = "sextant_raft_is_leader";
pub const RAFT_LEADER_CHANGES: &str = "sextant_raft_leader_changes_total";
pub const RAFT_LAST_LOG_INDEX: &str = "sextant_raft_last_log_index";
pub const RAFT_LAST_APPLIED_INDEX: &str = "sextant_raft_last_applied_index";
pub const RAFT_SNAPSHOT_INDEX: &str = "sextant_raft_snapshot_index";
/// From `Registry::write` to the entry applied here (or to the forwarded
/// answer): commit and apply latency as a client sees it.
pub const RAFT_WRITE_SECONDS: &str = "sextant_raft_write_seconds";
pub use sextant_storage::metric_names::{
    STORAGE_BYTES_WRITTEN, STORAGE_FSYNCS, STORAGE_FSYNC_SECONDS,
};
pub const HTTP_REQUESTS: &str = "sextant_http_requests_total";
pub const HTTP_REQUEST_SECONDS: &str = "sextant_http_request_duration_seconds";
/// Calls on the client gRPC port by method path and status code name.
pub const GRPC_REQUESTS: &str = "sextant_grpc_requests_total";
/// A call's time to its status: for a stream, its whole life.
pub const GRPC_REQUEST_SECONDS: &str = "sextant_grpc_request_duration_seconds";
pub const BLOCKING_QUERIES: &str = "sextant_blocking_queries_in_flight";
pub const ETCD_WATCHERS: &str = "sextant_etcd_watchers_in_flight";
pub const HEALTH_CHECKS: &str = "sextant_health_checks";
pub const HEALTH_PROBE_SECONDS: &str = "sextant_health_probe_duration_seconds";
pub const LEASES: &str = "sextant_leases";
pub const SESSIONS: &str = "sextant_sessions";
pub const SERVICES: &str = "sextant_services";
pub const SERVICE_INSTANCES: &str = "sextant_service_instances";
pub const RESIDENT_MEMORY: &str = "sextant_process_resident_memory_bytes";

/// Buckets for request, write and probe latencies: 0.5 ms to 60 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];
/// Buckets for fsync: 50 µs to 5 s.
const FSYNC_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    5.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use. If another recorder was
/// installed first (an embedding program's), the handle still renders, but
/// only what was recorded through it: nothing.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        // Only fails on an empty bucket list, which the constants are not.
        let builder = builder().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "metrics buckets rejected; histograms become summaries");
            PrometheusBuilder::new()
        });
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics stays empty");
        }
        register_families();
        handle
    })
}

fn builder() -> Result<PrometheusBuilder, BuildError> {
    let latency = [
        RAFT_WRITE_SECONDS,
        HTTP_REQUEST_SECONDS,
        GRPC_REQUEST_SECONDS,
        HEALTH_PROBE_SECONDS,
    ];
    let mut builder = PrometheusBuilder::new();
    for name in latency {
        builder =
            builder.set_buckets_for_metric(Matcher::Full(name.to_owned()), LATENCY_BUCKETS)?;
    }
    builder.set_buckets_for_metric(
        Matcher::Full(STORAGE_FSYNC_SECONDS.to_owned()),
        FSYNC_BUCKETS,
    )
}

/// Registers the unlabelled families, so that every family appears in the
/// first scrape, before anything was observed.
fn register_families() {
    for name in [RAFT_LEADER_CHANGES, STORAGE_FSYNCS, STORAGE_BYTES_WRITTEN] {
        counter!(name).absolute(0);
    }
    for name in [
        RAFT_WRITE_SECONDS,
        STORAGE_FSYNC_SECONDS,
        HEALTH_PROBE_SECONDS,
    ] {
        let _ = histogram!(name);
    }
    for name in [BLOCKING_QUERIES, ETCD_WATCHERS] {
        gauge!(name).increment(0.0);
    }
}

/// Observes the time since it was made into a latency histogram.
pub fn observe_seconds(name: &'static str, elapsed: Duration) {
    histogram!(name).record(elapsed.as_secs_f64());
}

/// Counts one thing in flight (a blocking query, a watcher) for as long as it
/// lives, whichever way it ends.
pub struct InFlight(&'static str);

impl InFlight {
    pub fn new(name: &'static str) -> Self {
        gauge!(name).increment(1.0);
        InFlight(name)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        gauge!(self.0).decrement(1.0);
    }
}
