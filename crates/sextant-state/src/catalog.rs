//! The catalog: nodes, the service instances on them, and health checks.
//!
//! Besides the records, the catalog keeps what blocking queries need to wake
//! only when their answer changed: a last-change index per table (nodes,
//! services, checks) and per service name, where a service name's index moves
//! whenever anything in `instances(name)` changes — an instance, one of its
//! checks, or its node and that node's own checks. An index by service name
//! makes listing one service's instances independent of the catalog's size.
//!
//! Records that are written again unchanged keep their indexes, and move no
//! index at all: agents re-register on every restart and anti-entropy pass,
//! and each such write must not wake every watcher of the service.

mod check;
mod invariants;
mod node;
mod read;
mod restore;
mod service;
mod table;
mod write;

pub use check::{Check, CheckDefinition, CheckKind, CheckStatus, HttpProbe, UnknownCheckStatus};
pub use node::Node;
pub use read::ServiceInstance;
pub use service::{Service, Weights};
pub(crate) use write::CatalogChanges;

use table::{Keyed, Table};

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// A record carrying the revisions that created it and last changed it.
trait Stamped: Clone + PartialEq {
    fn stamps(&self) -> (u64, u64);
    fn set_stamps(&mut self, create_index: u64, modify_index: u64);
}

/// `new` stamped for a write at `revision` over `old`; `None` when it differs
/// from `old` in nothing but its stamps, so the write must change nothing.
fn stamp<T: Stamped>(new: &T, old: Option<&T>, revision: u64) -> Option<T> {
    let mut record = new.clone();
    match old {
        Some(old) => {
            let (create_index, modify_index) = old.stamps();
            record.set_stamps(create_index, modify_index);
            if record == *old {
                return None;
            }
            record.set_stamps(create_index, revision);
        }
        None => record.set_stamps(revision, revision),
    }
    Some(record)
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Catalog {
    nodes: BTreeMap<String, Node>,
    /// node → service id → instance. No empty tables, so that equal
    /// catalogs are equal values with equal snapshots.
    services: BTreeMap<String, Table<Service>>,
    /// node → check id → check. No empty tables.
    checks: BTreeMap<String, Table<Check>>,
    /// service name → its instances as (node, service id).
    by_service_name: BTreeMap<String, BTreeSet<(String, String)>>,
    /// service name → the last revision at which its `instances` changed.
    /// Same keys as `by_service_name`: a name's entry goes with its last
    /// instance, and it then falls back to `services_index`, which moved then.
    service_name_indexes: BTreeMap<String, u64>,
    nodes_index: u64,
    services_index: u64,
    checks_index: u64,
}

impl Keyed for Service {
    fn key(&self) -> &str {
        &self.id
    }
}

impl Keyed for Check {
    fn key(&self) -> &str {
        &self.id
    }
}

impl Catalog {
    pub fn new() -> Self {
        Self::default()
    }
}
