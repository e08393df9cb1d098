//! Which instances of a service a Discover or a Watch asks for, evaluated
//! as `/v1/health/service/:name` does: the catalog's instances with their
//! aggregated health (node checks included), passing only unless
//! unhealthy ones are asked for, every tag present, every metadata pair
//! equal.

use std::collections::{BTreeMap, HashMap};

use sextant_proto::v1::InstanceState;
use sextant_state::catalog::{Catalog, CheckStatus, ServiceInstance};

use super::convert::instance_state;
use super::error::NativeError;

/// An instance's key in a matching set: (node, instance id).
pub type InstanceKey = (String, String);

/// The matching instances, by key.
pub type Matching = BTreeMap<InstanceKey, InstanceState>;

#[derive(Clone, Debug)]
pub struct Selection {
    pub service: String,
    tags: Vec<String>,
    meta: HashMap<String, String>,
    include_unhealthy: bool,
}

impl Selection {
    /// Refuses an empty service name.
    pub fn new(
        service: String,
        tags: Vec<String>,
        meta: HashMap<String, String>,
        include_unhealthy: bool,
    ) -> Result<Self, NativeError> {
        if service.is_empty() {
            return Err(NativeError::invalid("service must not be empty"));
        }
        Ok(Self {
            service,
            tags,
            meta,
            include_unhealthy,
        })
    }

    fn matches(&self, instance: &ServiceInstance<'_>) -> bool {
        (self.include_unhealthy || instance.status() == CheckStatus::Passing)
            && self.tags.iter().all(|t| instance.service.tags.contains(t))
            && self
                .meta
                .iter()
                .all(|(k, v)| instance.service.meta.get(k) == Some(v))
    }

    /// The matching instances now, and the service's revision (its index:
    /// the last revision at which any of its instances or their checks changed).
    pub fn evaluate(&self, catalog: &Catalog) -> (u64, Matching) {
        let matching = catalog
            .instances(&self.service)
            .iter()
            .filter(|i| self.matches(i))
            .map(|i| {
                (
                    (i.node.name.clone(), i.service.id.clone()),
                    instance_state(i),
                )
            })
            .collect();
        (catalog.service_index(&self.service), matching)
    }
}
