//! Instance lists already written as JSON, reused until their service
//! changes.
//!
//! Clients poll the instance list of the services they call every few
//! seconds, and almost every poll finds it unchanged. Building it means
//! converting each catalog instance, writing its JSON and hashing it for the
//! checksum; measured under 64 polling clients of a 10-instance service,
//! that was most of the server's CPU. So the hosts' JSON and checksum are
//! kept per (service, clusters, healthyOnly), tagged with the catalog's
//! revision of the service's instances (`Catalog::service_index`, which
//! moves on every change to an instance, its node or its checks) and the
//! protection threshold they were selected with. A list whose tags still
//! match is served from here; the rest of the reply (`lastRefTime`, ...) is
//! written fresh every time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::value::RawValue;

use super::model::ServiceKey;

/// Lists kept at most; past it the cache starts again empty, so a client
/// asking for ever new cluster filters cannot grow it without bound.
const MAX_LISTS: usize = 4096;

/// What a list is looked up by: everything in the request that selects hosts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ListKey {
    pub service: ServiceKey,
    pub clusters: String,
    pub healthy_only: bool,
}

/// The state a list was built from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ListVersion {
    /// `Catalog::service_index` of the service when its instances were read.
    pub service_index: u64,
    pub threshold: f64,
}

/// The selected hosts of one list, as they appear in the reply.
#[derive(Debug)]
pub struct CachedHosts {
    pub version: ListVersion,
    /// The `hosts` array, as JSON.
    pub json: Box<RawValue>,
    pub checksum: String,
    pub reached_threshold: bool,
}

#[derive(Default)]
pub struct ListCache {
    lists: Mutex<HashMap<ListKey, Arc<CachedHosts>>>,
}

impl ListCache {
    /// The list for `key`, if one built at `version` is kept.
    pub fn get(&self, key: &ListKey, version: ListVersion) -> Option<Arc<CachedHosts>> {
        let lists = self.lists.lock().unwrap_or_else(|e| e.into_inner());
        lists
            .get(key)
            .filter(|cached| cached.version == version)
            .cloned()
    }

    /// Keeps `hosts` for `key`, replacing an older list. Of two requests that
    /// built the list at once the later insert wins; both built it from the
    /// version they tag it with, so either is right.
    pub fn insert(&self, key: ListKey, hosts: Arc<CachedHosts>) {
        let mut lists = self.lists.lock().unwrap_or_else(|e| e.into_inner());
        if lists.len() >= MAX_LISTS && !lists.contains_key(&key) {
            lists.clear();
        }
        lists.insert(key, hosts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(clusters: &str) -> ListKey {
        ListKey {
            service: ServiceKey {
                namespace: "public".into(),
                group: "DEFAULT_GROUP".into(),
                name: "svc".into(),
            },
            clusters: clusters.into(),
            healthy_only: true,
        }
    }

    fn hosts(version: ListVersion, json: &str) -> Arc<CachedHosts> {
        Arc::new(CachedHosts {
            version,
            json: RawValue::from_string(json.into()).expect("valid JSON"),
            checksum: "0".into(),
            reached_threshold: false,
        })
    }

    const V1: ListVersion = ListVersion {
        service_index: 7,
        threshold: 0.0,
    };

    #[test]
    fn a_list_is_served_only_at_the_version_it_was_built_from() {
        let cache = ListCache::default();
        cache.insert(key(""), hosts(V1, "[1]"));
        assert_eq!(cache.get(&key(""), V1).expect("kept").json.get(), "[1]");
        let changed = ListVersion {
            service_index: 8,
            ..V1
        };
        assert!(cache.get(&key(""), changed).is_none());
        let new_threshold = ListVersion {
            threshold: 0.5,
            ..V1
        };
        assert!(cache.get(&key(""), new_threshold).is_none());
        assert!(cache.get(&key("A"), V1).is_none(), "another filter");
    }

    #[test]
    fn the_cache_never_holds_more_than_its_bound() {
        let cache = ListCache::default();
        for i in 0..MAX_LISTS + 10 {
            cache.insert(key(&i.to_string()), hosts(V1, "[]"));
        }
        let held = cache.lists.lock().expect("not poisoned").len();
        assert!(held <= MAX_LISTS, "{held}");
        assert!(cache.get(&key(&(MAX_LISTS + 9).to_string()), V1).is_some());
    }
}
