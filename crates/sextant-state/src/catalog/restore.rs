//! The catalog of a restored snapshot, stamped for the restore's revision.
//!
//! A record the snapshot holds exactly as the current catalog does keeps
//! its indexes; any other record is stamped as written at the restore's
//! revision, so no index goes backwards and none comes from the future
//! (the snapshot may come from a cluster further along). Every table and
//! service name index moves to the restore revision: a restore may change
//! anything, and every blocking query must look again.

use std::collections::{BTreeMap, BTreeSet};

use super::{stamp, Catalog, Stamped};

/// `saved`'s records, each stamped against its namesake in `current`.
fn restamp<K: Ord + Clone, T: Stamped>(
    saved: BTreeMap<K, T>,
    current: Option<&BTreeMap<K, T>>,
    revision: u64,
) -> BTreeMap<K, T> {
    saved
        .into_iter()
        .map(|(key, record)| {
            let old = current.and_then(|c| c.get(&key));
            let record = stamp(&record, old, revision)
                .or_else(|| old.cloned())
                .unwrap_or(record);
            (key, record)
        })
        .collect()
}

impl Catalog {
    /// Replaces this catalog with `saved`, restamped for `revision`; adds
    /// to `names` every service name whose instances may have changed
    /// (every name before and after).
    pub(crate) fn restore_from(
        &mut self,
        saved: Catalog,
        revision: u64,
        names: &mut BTreeSet<String>,
    ) {
        names.extend(self.by_service_name.keys().cloned());
        names.extend(saved.by_service_name.keys().cloned());
        let nodes = restamp(saved.nodes, Some(&self.nodes), revision);
        let services = saved
            .services
            .into_iter()
            .map(|(node, table)| {
                let table = restamp(table, self.services.get(&node), revision);
                (node, table)
            })
            .collect();
        let checks = saved
            .checks
            .into_iter()
            .map(|(node, table)| {
                let table = restamp(table, self.checks.get(&node), revision);
                (node, table)
            })
            .collect();
        let service_name_indexes = saved
            .by_service_name
            .keys()
            .map(|name| (name.clone(), revision))
            .collect();
        *self = Catalog {
            nodes,
            services,
            checks,
            by_service_name: saved.by_service_name,
            service_name_indexes,
            nodes_index: revision,
            services_index: revision,
            checks_index: revision,
        };
    }
}
