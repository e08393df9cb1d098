//! The catalog, seen through etcd: a read-only projection of every service
//! instance under `/sextant/services/<service>/<node>/<service id>`, whose
//! value is JSON of the instance, its node and its health. Range and Watch
//! include it, so a service registered through the Consul API can be
//! discovered with an etcd get or watch on the prefix. Writes under the
//! prefix are refused (`permission denied`).
//!
//! The projection has no history of its own: it is built from the current
//! catalog. Its revisions come from the catalog's stamps: `create_revision`
//! is the instance's registration, `mod_revision` the newest stamp among the
//! instance, its node and their checks, and `version` counts from 1 at
//! registration so that etcd's "version 1 means created" rule holds.

use std::collections::BTreeMap;

use serde::Serialize;
use sextant_state::catalog::{Catalog, ServiceInstance};
use sextant_state::kv::KeyValue;
use sextant_state::txn::in_range;

/// Where the catalog appears in the etcd key space.
pub const PREFIX: &str = "/sextant/services/";

/// The first key after every key under `PREFIX`.
fn prefix_end() -> Vec<u8> {
    let mut end = PREFIX.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

/// Whether the single key (with an empty `end`) lies under the prefix.
pub fn covers(key: &[u8], end: &[u8]) -> bool {
    end.is_empty() && key.starts_with(PREFIX.as_bytes())
}

/// Whether the etcd range `[start, end)` shares a key with the prefix.
pub fn overlaps(start: &[u8], end: &[u8]) -> bool {
    let (lo, hi) = (PREFIX.as_bytes(), prefix_end());
    match end {
        [] => covers(start, end),
        // From `start` on: overlaps unless it starts past the prefix.
        [0] => start < hi.as_slice(),
        _ => start < hi.as_slice() && end > lo,
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CheckView<'a> {
    #[serde(rename = "CheckID")]
    check_id: &'a str,
    name: &'a str,
    status: &'static str,
    output: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct InstanceView<'a> {
    node: &'a str,
    address: &'a str,
    #[serde(rename = "ServiceID")]
    service_id: &'a str,
    service_name: &'a str,
    service_address: &'a str,
    service_port: u16,
    service_tags: &'a [String],
    service_meta: &'a BTreeMap<String, String>,
    /// The instance's health: the worst of its checks and its node's.
    status: &'static str,
    checks: Vec<CheckView<'a>>,
}

fn key_of(instance: &ServiceInstance<'_>) -> Vec<u8> {
    format!(
        "{PREFIX}{}/{}/{}",
        instance.service.name, instance.node.name, instance.service.id
    )
    .into_bytes()
}

fn project(instance: &ServiceInstance<'_>) -> KeyValue {
    let view = InstanceView {
        node: &instance.node.name,
        address: &instance.node.address,
        service_id: &instance.service.id,
        service_name: &instance.service.name,
        service_address: &instance.service.address,
        service_port: instance.service.port,
        service_tags: &instance.service.tags,
        service_meta: &instance.service.meta,
        status: instance.status().as_str(),
        checks: instance
            .checks
            .iter()
            .map(|c| CheckView {
                check_id: &c.id,
                name: &c.name,
                status: c.status.as_str(),
                output: &c.output,
            })
            .collect(),
    };
    let create = instance.service.create_index;
    let modified = instance
        .checks
        .iter()
        .map(|c| c.modify_index)
        .chain([instance.service.modify_index, instance.node.modify_index])
        .max()
        .unwrap_or(create)
        .max(create);
    KeyValue {
        key: key_of(instance),
        value: serde_json::to_vec(&view).unwrap_or_default(),
        create_revision: create,
        mod_revision: modified,
        version: modified - create + 1,
        ..KeyValue::default()
    }
}

/// The projected instances of one service, by key.
pub fn service(catalog: &Catalog, name: &str) -> BTreeMap<Vec<u8>, KeyValue> {
    catalog
        .instances(name)
        .iter()
        .map(project)
        .map(|kv| (kv.key.clone(), kv))
        .collect()
}

/// The projected instances whose keys fall in `[start, end)`, by key.
pub fn range(catalog: &Catalog, start: &[u8], end: &[u8]) -> Vec<KeyValue> {
    if !overlaps(start, end) {
        return Vec::new();
    }
    let mut kvs: Vec<KeyValue> = catalog
        .service_names()
        .into_keys()
        .flat_map(|name| service(catalog, name).into_values())
        .filter(|kv| in_range(&kv.key, start, end) || (start == [0] && end == [0]))
        .collect();
    kvs.sort_by(|a, b| a.key.cmp(&b.key));
    kvs
}

/// The service a projected key belongs to.
pub fn service_of(key: &[u8]) -> Option<&str> {
    let rest = key.strip_prefix(PREFIX.as_bytes())?;
    let name = rest.split(|b| *b == b'/').next()?;
    std::str::from_utf8(name).ok()
}

/// The keys a watcher of `[start, end)` must hear about for service `name`:
/// whether any key of that service could fall in the range.
pub fn watches_service(start: &[u8], end: &[u8], name: &str) -> bool {
    let service_prefix = format!("{PREFIX}{name}/").into_bytes();
    let mut service_end = service_prefix.clone();
    if let Some(last) = service_end.last_mut() {
        *last += 1;
    }
    match end {
        [] => start.starts_with(&service_prefix),
        [0] => start < service_end.as_slice(),
        _ => start < service_end.as_slice() && end > service_prefix.as_slice(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_follows_etcd_range_conventions() {
        assert!(overlaps(b"/sextant/services/web/n1/w1", b""));
        assert!(overlaps(b"/sextant/", b"/sextant0"));
        assert!(overlaps(b"\0", b"\0"));
        assert!(!overlaps(b"/sextant/t", b"\0"));
        assert!(!overlaps(b"/a", b"/b"));
        assert!(watches_service(
            b"/sextant/services/web/",
            b"/sextant/services/web0",
            "web"
        ));
        assert!(!watches_service(
            b"/sextant/services/web/",
            b"/sextant/services/web0",
            "db"
        ));
        assert_eq!(service_of(b"/sextant/services/web/n1/w1"), Some("web"));
    }
}
