//! A Nacos ephemeral instance kept alive by beats, held like the etcd lease
//! ([`crate::ttl_check::hold`]).
//!
//! Its health is a TTL check underneath: unhealthy one beat timeout after
//! the last beat, deleted later. The instance's metadata makes the beat
//! timeout the harness's TTL (Nacos's 15 s default would never run out
//! between faults) and the deletion ten TTLs later, so that an expired
//! instance is still there to be seen unhealthy.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::check_state::CheckReader;
use crate::clients::ClientError;
use crate::ttl_check::Renewable;
use crate::workload::Endpoint;

const SERVICE: &str = "chaos-nacos";
/// The catalog's name of the service: Nacos's default group, `@@`, the name.
const GROUPED_SERVICE: &str = "DEFAULT_GROUP@@chaos-nacos";
/// Instances are told apart by port: a new one for each creation.
const IP: &str = "192.0.2.1";
const FIRST_PORT: u64 = 20_000;

/// Nacos's answer codes to a beat.
const BEAT_RENEWED: u64 = 10200;
const BEAT_UNKNOWN_INSTANCE: u64 = 20404;

pub struct NacosInstance {
    /// Each server's Nacos HTTP address.
    nacos: Vec<SocketAddr>,
    /// Health is read through the Consul API: the Nacos list reads the
    /// server's own state, which may lag.
    reader: CheckReader,
    /// The instance's metadata: its beat and delete timeouts.
    metadata: String,
    generation: u64,
}

#[derive(Deserialize)]
struct BeatAnswer {
    code: u64,
}

impl NacosInstance {
    pub fn new(
        endpoints: &[Endpoint],
        ttl: Duration,
        op_timeout: Duration,
    ) -> anyhow::Result<NacosInstance> {
        let metadata = serde_json::json!({
            "preserved.heart.beat.timeout": ttl.as_millis().to_string(),
            "preserved.ip.delete.timeout": (ttl * 10).as_millis().to_string(),
        });
        Ok(NacosInstance {
            nacos: endpoints.iter().map(|e| e.nacos).collect(),
            reader: CheckReader::new(endpoints, op_timeout)?,
            metadata: metadata.to_string(),
            generation: 0,
        })
    }

    fn port(&self) -> String {
        (FIRST_PORT + self.generation).to_string()
    }

    /// The parameters naming the instance, which registration and beats share.
    fn params(&self) -> [(&'static str, String); 5] {
        [
            ("serviceName", SERVICE.to_owned()),
            ("ip", IP.to_owned()),
            ("port", self.port()),
            ("ephemeral", "true".to_owned()),
            ("metadata", self.metadata.clone()),
        ]
    }

    /// Sends the instance's parameters to `path` of `server`'s naming API.
    async fn call(
        &self,
        method: reqwest::Method,
        server: usize,
        path: &str,
    ) -> Result<reqwest::Response, ClientError> {
        let url = format!("http://{}/nacos/v1/ns/{path}", self.nacos[server]);
        Ok(self
            .reader
            .http()
            .request(method, url)
            .form(&self.params())
            .send()
            .await?
            .error_for_status()?)
    }
}

impl Renewable for NacosInstance {
    const KIND: &'static str = "Nacos instance";

    async fn create(&mut self, server: usize) -> Result<(), ClientError> {
        // A fresh instance each time: registering an existing one again
        // would count as a beat and revive it.
        self.generation += 1;
        let answer = self
            .call(reqwest::Method::POST, server, "instance")
            .await?
            .text()
            .await?;
        if answer != "ok" {
            return Err(ClientError::Unexpected(format!(
                "Nacos registration answered {answer:?}"
            )));
        }
        Ok(())
    }

    async fn renew(&mut self, server: usize) -> Result<bool, ClientError> {
        let check_id = format!("service:{}", self.name());
        // Read first: a beat would make an unhealthy instance healthy again.
        // Deleted (ten TTLs after turning unhealthy) is expired too.
        let state = self
            .reader
            .state(server, GROUPED_SERVICE, &check_id)
            .await?;
        if state.expired(&check_id, true)? {
            return Ok(false);
        }
        let answer: BeatAnswer = self
            .call(reqwest::Method::PUT, server, "instance/beat")
            .await?
            .json()
            .await?;
        match answer.code {
            BEAT_RENEWED => Ok(true),
            // The read above saw it: this server has not applied the
            // registration yet, or the check moved meanwhile. Not renewed,
            // and not proof of an expiry either; the next read tells.
            BEAT_UNKNOWN_INSTANCE => Err(ClientError::Unexpected(format!(
                "the beat through s{} found no instance {}",
                server + 1,
                self.name()
            ))),
            code => Err(ClientError::Unexpected(format!(
                "a beat answered code {code}"
            ))),
        }
    }

    /// Nacos's instance id, which is also the catalog's service id.
    fn name(&self) -> String {
        format!("{IP}#{}#DEFAULT#{GROUPED_SERVICE}", self.port())
    }
}
