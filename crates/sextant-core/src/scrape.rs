//! What `/metrics` shows of this server's state: the gauges derived from
//! Raft and the applied state, set just before the recorder renders.

use metrics::gauge;
use sextant_state::catalog::CheckStatus;

use crate::registry::{RaftRole, Registry};
use crate::telemetry::{
    handle, HEALTH_CHECKS, LEASES, RAFT_IS_LEADER, RAFT_LAST_APPLIED_INDEX, RAFT_LAST_LOG_INDEX,
    RAFT_SNAPSHOT_INDEX, RAFT_TERM, RESIDENT_MEMORY, SERVICES, SERVICE_INSTANCES, SESSIONS,
};

/// Sets the gauges derived from Raft and the applied state, then renders.
pub fn render(registry: &Registry) -> String {
    let handle = handle();
    refresh(registry);
    handle.run_upkeep();
    handle.render()
}

fn refresh(registry: &Registry) {
    let raft = registry.status();
    gauge!(RAFT_TERM).set(raft.term as f64);
    gauge!(RAFT_IS_LEADER).set(f64::from(u8::from(raft.role == RaftRole::Leader)));
    gauge!(RAFT_LAST_LOG_INDEX).set(raft.last_log_index.unwrap_or(0) as f64);
    gauge!(RAFT_LAST_APPLIED_INDEX).set(raft.last_applied_index.unwrap_or(0) as f64);
    gauge!(RAFT_SNAPSHOT_INDEX).set(raft.snapshot_index.unwrap_or(0) as f64);

    let (checks, leases, sessions, services, instances) = {
        let machine = registry.view();
        let catalog = machine.catalog();
        let mut checks = [0u64; 4];
        for check in catalog.checks() {
            checks[status_slot(check.status)] += 1;
        }
        (
            checks,
            machine.leases().len(),
            machine.sessions().len(),
            catalog.service_names().len(),
            catalog.services().count(),
        )
    };
    for status in STATUSES {
        gauge!(HEALTH_CHECKS, "status" => status.as_str()).set(checks[status_slot(status)] as f64);
    }
    gauge!(LEASES).set(leases as f64);
    gauge!(SESSIONS).set(sessions as f64);
    gauge!(SERVICES).set(services as f64);
    gauge!(SERVICE_INSTANCES).set(instances as f64);
    if let Some(bytes) = resident_memory_bytes() {
        gauge!(RESIDENT_MEMORY).set(bytes as f64);
    }
}

const STATUSES: [CheckStatus; 4] = [
    CheckStatus::Passing,
    CheckStatus::Warning,
    CheckStatus::Critical,
    CheckStatus::Maintenance,
];

fn status_slot(status: CheckStatus) -> usize {
    match status {
        CheckStatus::Passing => 0,
        CheckStatus::Warning => 1,
        CheckStatus::Critical => 2,
        CheckStatus::Maintenance => 3,
    }
}

/// `VmRSS` from `/proc/self/status` (in kB there, so no page size is needed);
/// `None` where there is no procfs.
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_resident_memory_in_bytes() {
        let status = "Name:\tsextant\nVmPeak:\t  100 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(parse_vm_rss(status), Some(2048 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }
}
