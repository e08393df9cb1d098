//! The catalog of a restored snapshot, stamped for the restore's revision.
//!
//! A record the snapshot holds exactly as the current catalog does keeps
//! its indexes; any other record is stamped as written at the restore's
//! revision, so no index goes backwards and none comes from the future
//! (the snapshot may come from a cluster further along). Every table and
//! service name index moves to the restore revision: a restore may change
//! anything, and every blocking query must look again.

use std::collections::{BTreeMap, BTreeSet};

use super::{stamp, Catalog, Keyed, Stamped, Table};

/// `record` stamped against `old`, its namesake in the current catalog.
fn restamp<T: Stamped>(record: T, old: Option<&T>, revision: u64) -> T {
    stamp(&record, old, revision)
        .or_else(|| old.cloned())
        .unwrap_or(record)
}

/// `saved`'s tables, each record stamped against its namesake in `current`.
fn restamp_tables<T: Stamped + Keyed>(
    saved: BTreeMap<String, Table<T>>,
    current: &BTreeMap<String, Table<T>>,
    revision: u64,
) -> BTreeMap<String, Table<T>> {
    saved
        .into_iter()
        .map(|(node, table)| {
            let old_table = current.get(&node);
            let table = table
                .into_values()
                .map(|record| {
                    let old = old_table.and_then(|t| t.get(record.key()));
                    restamp(record, old, revision)
                })
                .collect();
            (node, table)
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
        let nodes = saved
            .nodes
            .into_iter()
            .map(|(name, node)| {
                let node = restamp(node, self.nodes.get(&name), revision);
                (name, node)
            })
            .collect();
        let services = restamp_tables(saved.services, &self.services, revision);
        let checks = restamp_tables(saved.checks, &self.checks, revision);
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
