//! A TTL check's status as a linearizable Consul read sees it: how every
//! TTL holder (a Consul check, a Nacos instance, a native instance — all
//! three are catalog checks underneath) tells "expired" from "renewed".
//!
//! Only a consistent read may find a check expired: a follower's or a
//! deposed leader's own state may lag behind the write that made it passing,
//! and would report an expiry that never happened.

use std::net::SocketAddr;
use std::time::Duration;

use crate::clients::ClientError;
use crate::workload::Endpoint;

/// What a consistent read found of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckState {
    Passing,
    /// Critical or warning: expired, for a TTL check.
    NotPassing,
    /// Not registered (never, or reaped after being critical too long).
    Absent,
}

impl CheckState {
    /// Whether the read found check `check_id` expired. `reaped`: the
    /// holder registered it to be removed a while after it went critical,
    /// so gone means expired too; otherwise gone is no answer at all.
    pub fn expired(self, check_id: &str, reaped: bool) -> Result<bool, ClientError> {
        match self {
            CheckState::Passing => Ok(false),
            CheckState::NotPassing => Ok(true),
            CheckState::Absent if reaped => Ok(true),
            CheckState::Absent => Err(ClientError::Unexpected(format!(
                "{check_id} is not registered"
            ))),
        }
    }
}

/// An HTTP client whose every request gives up after `op_timeout`.
pub fn http_client(op_timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(op_timeout)
        .connect_timeout(op_timeout)
        .build()?)
}

/// Reads checks' statuses through any server's Consul HTTP API.
pub struct CheckReader {
    http: reqwest::Client,
    servers: Vec<SocketAddr>,
}

#[derive(serde::Deserialize)]
struct CheckStatus {
    #[serde(rename = "CheckID")]
    check_id: String,
    #[serde(rename = "Status")]
    status: String,
}

impl CheckReader {
    pub fn new(endpoints: &[Endpoint], op_timeout: Duration) -> anyhow::Result<CheckReader> {
        Ok(CheckReader {
            http: http_client(op_timeout)?,
            servers: endpoints.iter().map(|e| e.http).collect(),
        })
    }

    /// The client the reads go through, for the holders' own requests.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `server`'s Consul HTTP base URL.
    pub fn base(&self, server: usize) -> String {
        format!("http://{}", self.servers[server])
    }

    /// The status of check `check_id` of catalog service `service`, read
    /// through `server` with `?consistent`.
    pub async fn state(
        &self,
        server: usize,
        service: &str,
        check_id: &str,
    ) -> Result<CheckState, ClientError> {
        let checks: Vec<CheckStatus> = self
            .http
            .get(format!(
                "{}/v1/health/checks/{service}?consistent",
                self.base(server)
            ))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(
            match checks
                .iter()
                .find(|c| c.check_id == check_id)
                .map(|c| c.status.as_str())
            {
                Some("passing") => CheckState::Passing,
                Some(_) => CheckState::NotPassing,
                None => CheckState::Absent,
            },
        )
    }
}
