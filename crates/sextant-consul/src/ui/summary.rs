//! The two summaries the UI's overview pages poll, each one blocking query
//! instead of one request per service or node.
//!
//! `GET /v1/sextant/ui/services`: every service with its tags and how many
//! of its instances are passing, warning or critical (maintenance counts as
//! critical). `GET /v1/sextant/ui/nodes`: every node with its address, the
//! health of its own checks and how many instances it runs. Both take the
//! usual `?index=&wait=`, `?stale` and `?consistent`, and wake when a node,
//! an instance or a check changes.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use sextant_state::catalog::{Catalog, CheckStatus};

use super::super::blocking::{self, Indexed};
use super::super::error::HttpError;
use super::super::params::Params;
use super::super::HttpState;

/// How many things are in each health state.
#[derive(Serialize, Default, Debug, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct HealthCounts {
    passing: usize,
    warning: usize,
    critical: usize,
}

impl HealthCounts {
    fn add(&mut self, status: CheckStatus) {
        match status {
            CheckStatus::Passing => self.passing += 1,
            CheckStatus::Warning => self.warning += 1,
            CheckStatus::Critical | CheckStatus::Maintenance => self.critical += 1,
        }
    }
}

/// One line of the services page.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceSummary {
    name: String,
    tags: BTreeSet<String>,
    instances: usize,
    /// Instances by their health: the worst of their own and their node's checks.
    health: HealthCounts,
}

/// One line of the nodes page.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct NodeSummary {
    node: String,
    address: String,
    /// The worst of the node's own checks (not its services').
    status: &'static str,
    services: usize,
}

/// The last revision at which anything a summary shows changed.
fn catalog_index(catalog: &Catalog) -> u64 {
    catalog
        .nodes_index()
        .max(catalog.services_index())
        .max(catalog.checks_index())
}

fn service_summaries(catalog: &Catalog) -> Vec<ServiceSummary> {
    catalog
        .service_names()
        .into_iter()
        .map(|(name, tags)| {
            let instances = catalog.instances(name);
            let mut health = HealthCounts::default();
            for instance in &instances {
                health.add(instance.status());
            }
            ServiceSummary {
                name: name.to_owned(),
                tags: tags.into_iter().map(str::to_owned).collect(),
                instances: instances.len(),
                health,
            }
        })
        .collect()
}

fn node_summaries(catalog: &Catalog) -> Vec<NodeSummary> {
    catalog
        .nodes()
        .map(|node| NodeSummary {
            node: node.name.clone(),
            address: node.address.clone(),
            status: catalog.node_status(&node.name).as_str(),
            services: catalog.node_services(&node.name).count(),
        })
        .collect()
}

/// `GET /v1/sextant/ui/services`: a [`ServiceSummary`] per service, by name.
pub async fn services(
    State(http): State<HttpState>,
    params: Params,
) -> Result<Response, HttpError> {
    let Indexed { value, headers } = blocking::query(&http.registry, &params, |machine| {
        let catalog = machine.catalog();
        (catalog_index(catalog), service_summaries(catalog))
    })
    .await?;
    Ok((headers, Json(value)).into_response())
}

/// `GET /v1/sextant/ui/nodes`: a [`NodeSummary`] per node, by name.
pub async fn nodes(State(http): State<HttpState>, params: Params) -> Result<Response, HttpError> {
    let Indexed { value, headers } = blocking::query(&http.registry, &params, |machine| {
        let catalog = machine.catalog();
        (catalog_index(catalog), node_summaries(catalog))
    })
    .await?;
    Ok((headers, Json(value)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maintenance_counts_as_critical() {
        let mut counts = HealthCounts::default();
        for status in [
            CheckStatus::Passing,
            CheckStatus::Passing,
            CheckStatus::Warning,
            CheckStatus::Critical,
            CheckStatus::Maintenance,
        ] {
            counts.add(status);
        }
        assert_eq!(
            counts,
            HealthCounts {
                passing: 2,
                warning: 1,
                critical: 2
            }
        );
    }

    #[test]
    fn an_empty_catalog_has_no_services_or_nodes() {
        let catalog = Catalog::new();
        assert!(service_summaries(&catalog).is_empty());
        assert!(node_summaries(&catalog).is_empty());
        assert_eq!(catalog_index(&catalog), 1);
    }
}
