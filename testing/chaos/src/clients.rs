//! The two client APIs the load goes through: etcd v3 gRPC (the `etcd-client`
//! crate) and the Consul HTTP KV API (reqwest). Both speak to one given
//! server, never balancing, so the history says who answered.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use etcd_client::{Compare, CompareOp, ConnectOptions, Txn, TxnOp};
use serde::Deserialize;

use crate::history::Output;

/// A key's value and the revision that wrote it (etcd `mod_revision`,
/// Consul `ModifyIndex`); the revision is 0 when the key is absent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    pub value: Option<String>,
    pub revision: i64,
}

/// Why a request has no answer. Whether it took effect is unknown.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("consul: {0}")]
    Http(#[from] reqwest::Error),
    #[error("consul: HTTP {status}: {body}")]
    Status {
        status: reqwest::StatusCode,
        body: String,
    },
    #[error("native: {0}")]
    Grpc(#[from] tonic::Status),
    #[error("unexpected answer: {0}")]
    Unexpected(String),
}

/// An etcd client bound to one server.
#[derive(Clone)]
pub struct EtcdClient {
    client: etcd_client::Client,
}

impl EtcdClient {
    /// Connects to `addr`; fails (and nothing was sent) if that takes longer than `timeout`.
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<EtcdClient, ClientError> {
        let options = ConnectOptions::new()
            .with_connect_timeout(timeout)
            .with_timeout(timeout);
        let client =
            etcd_client::Client::connect([format!("http://{addr}")], Some(options)).await?;
        Ok(EtcdClient { client })
    }

    /// A linearizable Range of one key.
    pub async fn get(&self, key: &str) -> Result<Versioned, ClientError> {
        let response = self.client.kv_client().get(key, None).await?;
        Ok(match response.kvs().first() {
            Some(kv) => Versioned {
                value: Some(text(kv.value())?),
                revision: kv.mod_revision(),
            },
            None => Versioned {
                value: None,
                revision: 0,
            },
        })
    }

    pub async fn put(&self, key: &str, value: &str) -> Result<Output, ClientError> {
        self.client.kv_client().put(key, value, None).await?;
        Ok(Output::Done)
    }

    pub async fn delete(&self, key: &str) -> Result<Output, ClientError> {
        self.client.kv_client().delete(key, None).await?;
        Ok(Output::Done)
    }

    /// Writes `value` if the key is still at `revision` (0: still absent).
    pub async fn cas(&self, key: &str, revision: i64, value: &str) -> Result<Output, ClientError> {
        let compare = if revision == 0 {
            Compare::version(key, CompareOp::Equal, 0)
        } else {
            Compare::mod_revision(key, CompareOp::Equal, revision)
        };
        let txn = Txn::new()
            .when([compare])
            .and_then([TxnOp::put(key, value, None)]);
        let response = self.client.kv_client().txn(txn).await?;
        Ok(Output::Cas {
            succeeded: response.succeeded(),
        })
    }
    /// Grants a lease of `ttl` seconds; returns its id and granted TTL.
    pub async fn grant(&self, ttl: i64) -> Result<(i64, i64), ClientError> {
        let response = self.client.lease_client().grant(ttl, None).await?;
        Ok((response.id(), response.ttl()))
    }

    /// One keep-alive of lease `id` on a stream of its own. True if the
    /// lease was renewed, false if the server answered that it no longer
    /// exists (etcd's TTL 0, which the client library reports as an error).
    pub async fn keep_alive_once(&self, id: i64) -> Result<bool, ClientError> {
        match self.client.lease_client().keep_alive(id).await {
            Ok(_) => Ok(true),
            Err(etcd_client::Error::LeaseKeepAliveError(message))
                if message.contains("lease not found") =>
            {
                Ok(false)
            }
            Err(error) => Err(error.into()),
        }
    }
}

/// A Consul HTTP KV client bound to one server.
#[derive(Clone)]
pub struct ConsulClient {
    http: reqwest::Client,
    base: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KvEntry {
    modify_index: i64,
    value: Option<String>,
}

impl ConsulClient {
    pub fn new(http: reqwest::Client, addr: SocketAddr) -> ConsulClient {
        ConsulClient {
            http,
            base: format!("http://{addr}/v1/kv/"),
        }
    }

    /// `GET /v1/kv/KEY?consistent`.
    pub async fn get(&self, key: &str) -> Result<Versioned, ClientError> {
        let response = self
            .http
            .get(format!("{}{key}?consistent", self.base))
            .send()
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(Versioned {
                value: None,
                revision: 0,
            });
        }
        let body = checked(response).await?;
        let entries: Vec<KvEntry> = serde_json::from_str(&body)
            .map_err(|e| ClientError::Unexpected(format!("{e}: {body}")))?;
        let entry = entries
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Unexpected("an empty array".to_owned()))?;
        let value = match entry.value {
            Some(encoded) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .map_err(|e| ClientError::Unexpected(e.to_string()))?;
                Some(text(&bytes)?)
            }
            // Consul renders an empty value as null; the load never writes one.
            None => Some(String::new()),
        };
        Ok(Versioned {
            value,
            revision: entry.modify_index,
        })
    }

    pub async fn put(&self, key: &str, value: &str) -> Result<Output, ClientError> {
        let answer = self.send_put(format!("{}{key}", self.base), value).await?;
        expect_true(answer)
    }

    pub async fn delete(&self, key: &str) -> Result<Output, ClientError> {
        let response = self
            .http
            .delete(format!("{}{key}", self.base))
            .send()
            .await?;
        expect_true(checked(response).await?)
    }

    /// `PUT /v1/kv/KEY?cas=REVISION` (0: only if absent).
    pub async fn cas(&self, key: &str, revision: i64, value: &str) -> Result<Output, ClientError> {
        let answer = self
            .send_put(format!("{}{key}?cas={revision}", self.base), value)
            .await?;
        match answer.trim() {
            "true" => Ok(Output::Cas { succeeded: true }),
            "false" => Ok(Output::Cas { succeeded: false }),
            other => Err(ClientError::Unexpected(other.to_owned())),
        }
    }

    async fn send_put(&self, url: String, value: &str) -> Result<String, ClientError> {
        let response = self.http.put(url).body(value.to_owned()).send().await?;
        checked(response).await
    }
}

/// The service the registry load registers instances of.
pub const SERVICE: &str = "chaos-svc";
const NODE: &str = "chaos-node";

#[derive(Deserialize)]
struct CatalogEntry {
    #[serde(rename = "ServiceID")]
    service_id: String,
}

impl ConsulClient {
    /// `PUT /v1/catalog/register` of instance `id` of [`SERVICE`].
    pub async fn register(&self, id: &str) -> Result<Output, ClientError> {
        let body = serde_json::json!({
            "Node": NODE,
            "Address": "192.0.2.1",
            "Service": { "ID": id, "Service": SERVICE, "Port": 8080 },
        });
        let url = self.base.replace("/v1/kv/", "/v1/catalog/register");
        let response = self.http.put(url).json(&body).send().await?;
        expect_true(checked(response).await?)
    }

    /// `PUT /v1/catalog/deregister` of instance `id`.
    pub async fn deregister(&self, id: &str) -> Result<Output, ClientError> {
        let body = serde_json::json!({ "Node": NODE, "ServiceID": id });
        let url = self.base.replace("/v1/kv/", "/v1/catalog/deregister");
        let response = self.http.put(url).json(&body).send().await?;
        expect_true(checked(response).await?)
    }

    /// `GET /v1/catalog/service/SERVICE?consistent`: the instance ids.
    pub async fn list(&self) -> Result<Output, ClientError> {
        let url = self.base.replace(
            "/v1/kv/",
            &format!("/v1/catalog/service/{SERVICE}?consistent"),
        );
        let body = checked(self.http.get(url).send().await?).await?;
        let entries: Vec<CatalogEntry> = serde_json::from_str(&body)
            .map_err(|e| ClientError::Unexpected(format!("{e}: {body}")))?;
        let mut ids: Vec<String> = entries.into_iter().map(|e| e.service_id).collect();
        ids.sort();
        Ok(Output::Instances { ids })
    }
}

async fn checked(response: reqwest::Response) -> Result<String, ClientError> {
    let status = response.status();
    let body = response.text().await?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(ClientError::Status { status, body })
    }
}

fn expect_true(body: String) -> Result<Output, ClientError> {
    if body.trim() == "true" {
        Ok(Output::Done)
    } else {
        Err(ClientError::Unexpected(body))
    }
}

fn text(bytes: &[u8]) -> Result<String, ClientError> {
    String::from_utf8(bytes.to_vec()).map_err(|e| ClientError::Unexpected(e.to_string()))
}
