//! The client load: sequential processes issuing random operations on a few
//! keys, so they conflict, through random servers and both APIs.
//!
//! A CAS is a read followed by a compare-and-set on the revision that read
//! returned; the read is recorded as an operation of its own, and the CAS as
//! "expect the value that read returned" (values are unique, so a revision
//! names exactly one value).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;
use tokio::sync::watch;

use crate::clients::{ClientError, ConsulClient, EtcdClient, Versioned};
use crate::history::{Api, Call, Operation, Outcome, Output, Recorder};

/// Where one server's client APIs listen.
#[derive(Clone, Copy, Debug)]
pub struct Endpoint {
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    /// The Nacos HTTP API.
    pub nacos: SocketAddr,
}

/// How the load runs.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub keys: Vec<String>,
    /// How long an operation may take before it counts as indeterminate.
    pub op_timeout: Duration,
}

/// One sequential client.
pub struct Process {
    id: u32,
    endpoints: Vec<Endpoint>,
    etcd: Vec<Option<EtcdClient>>,
    consul: Vec<ConsulClient>,
    recorder: Arc<Recorder>,
    config: LoadConfig,
    rng: StdRng,
    written: u64,
    /// A registry client: registers, deregisters and lists service
    /// instances instead of using the KV store.
    registry: bool,
    /// Instances this registry client registered and has not deregistered.
    instances: Vec<String>,
}

impl Process {
    pub fn new(
        id: u32,
        endpoints: Vec<Endpoint>,
        recorder: Arc<Recorder>,
        config: LoadConfig,
        rng: StdRng,
    ) -> anyhow::Result<Process> {
        let http = reqwest::Client::builder()
            .timeout(config.op_timeout)
            .connect_timeout(config.op_timeout)
            .build()?;
        Ok(Process {
            id,
            etcd: vec![None; endpoints.len()],
            consul: endpoints
                .iter()
                .map(|e| ConsulClient::new(http.clone(), e.http))
                .collect(),
            endpoints,
            recorder,
            config,
            rng,
            written: 0,
            registry: false,
            instances: Vec::new(),
        })
    }

    /// Makes this process a registry client (Consul catalog API only).
    pub fn into_registry_client(mut self) -> Process {
        self.registry = true;
        self
    }

    /// Issues operations until `stop` turns true.
    pub async fn run(mut self, stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            let server = self.rng.random_range(0..self.endpoints.len());
            let api = if self.rng.random_bool(0.5) {
                Api::Etcd
            } else {
                Api::Consul
            };
            let key = self.config.keys[self.rng.random_range(0..self.config.keys.len())].clone();
            let roll = self.rng.random_range(0..100);
            // An operation in flight is never abandoned: one that was sent but
            // not recorded could take effect and make the history lie.
            let issued = if self.registry {
                self.one_registry(server, roll).await
            } else {
                self.one(server, api, &key, roll).await
            };
            if !issued {
                // The server is unreachable (down or cut off): nothing was sent;
                // wait a little rather than spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// One operation (two for a CAS). False if no request could be sent.
    async fn one(&mut self, server: usize, api: Api, key: &str, roll: u32) -> bool {
        match roll {
            0..40 => self.get(server, api, key).await.is_some(),
            40..65 => {
                let value = self.fresh_value();
                self.write(server, api, key, Call::Put { value }, None)
                    .await
            }
            65..90 => {
                let Some(Some(read)) = self.get(server, api, key).await else {
                    return true;
                };
                let call = Call::Cas {
                    expected: read.value,
                    value: self.fresh_value(),
                };
                self.write(server, api, key, call, Some(read.revision))
                    .await
            }
            _ => self.write(server, api, key, Call::Delete, None).await,
        }
    }

    /// One registration, deregistration or listing.
    async fn one_registry(&mut self, server: usize, roll: u32) -> bool {
        let consul = self.consul[server].clone();
        let (call, key) = match roll {
            0..40 => {
                let id = self.fresh_value();
                self.instances.push(id.clone());
                (Call::Register { id: id.clone() }, instance_key(&id))
            }
            40..70 if !self.instances.is_empty() => {
                let index = self.rng.random_range(0..self.instances.len());
                let id = self.instances[index].clone();
                (Call::Deregister { id: id.clone() }, instance_key(&id))
            }
            _ => (Call::ListInstances, INSTANCES_KEY.to_owned()),
        };
        let invoke_ns = self.recorder.now_ns();
        let result = self
            .timed(async {
                match &call {
                    Call::Register { id } => consul.register(id).await,
                    Call::Deregister { id } => consul.deregister(id).await,
                    _ => consul.list().await,
                }
            })
            .await;
        if let (Call::Deregister { id }, Ok(_)) = (&call, &result) {
            self.instances.retain(|i| i != id);
        }
        let outcome = match result {
            Ok(output) => Outcome::Ok(output),
            Err(error) => Outcome::Indeterminate { error },
        };
        self.record(server, Api::Consul, &key, call, invoke_ns, outcome);
        true
    }

    fn fresh_value(&mut self) -> String {
        self.written += 1;
        format!("p{}-{}", self.id, self.written)
    }

    /// A linearizable read, recorded. `None` if nothing was sent, `Some(None)`
    /// if it failed.
    async fn get(&mut self, server: usize, api: Api, key: &str) -> Option<Option<Versioned>> {
        let etcd = match api {
            Api::Etcd => Some(self.etcd(server).await?),
            Api::Consul => None,
        };
        let consul = self.consul[server].clone();
        let invoke_ns = self.recorder.now_ns();
        let result = self
            .timed(async {
                match &etcd {
                    Some(etcd) => etcd.get(key).await,
                    None => consul.get(key).await,
                }
            })
            .await;
        let outcome = match &result {
            Ok(read) => Outcome::Ok(Output::Read {
                value: read.value.clone(),
            }),
            Err(error) => Outcome::Indeterminate {
                error: error.clone(),
            },
        };
        self.record(server, api, key, Call::Get, invoke_ns, outcome);
        Some(result.ok())
    }

    /// A put, CAS (with the revision read) or delete, recorded. False if nothing was sent.
    async fn write(
        &mut self,
        server: usize,
        api: Api,
        key: &str,
        call: Call,
        revision: Option<i64>,
    ) -> bool {
        let etcd = match api {
            Api::Etcd => match self.etcd(server).await {
                Some(client) => Some(client),
                None => return false,
            },
            Api::Consul => None,
        };
        let consul = self.consul[server].clone();
        let invoke_ns = self.recorder.now_ns();
        let result = self
            .timed(async {
                match (&call, &etcd) {
                    (Call::Put { value }, Some(etcd)) => etcd.put(key, value).await,
                    (Call::Put { value }, None) => consul.put(key, value).await,
                    (Call::Delete, Some(etcd)) => etcd.delete(key).await,
                    (Call::Delete, None) => consul.delete(key).await,
                    (Call::Cas { value, .. }, Some(etcd)) => {
                        etcd.cas(key, revision.unwrap_or(0), value).await
                    }
                    (Call::Cas { value, .. }, None) => {
                        consul.cas(key, revision.unwrap_or(0), value).await
                    }
                    (other, _) => Err(ClientError::Unexpected(format!(
                        "not a KV write: {other:?}"
                    ))),
                }
            })
            .await;
        let outcome = match result {
            Ok(output) => Outcome::Ok(output),
            Err(error) => Outcome::Indeterminate { error },
        };
        self.record(server, api, key, call, invoke_ns, outcome);
        true
    }

    fn record(
        &self,
        server: usize,
        api: Api,
        key: &str,
        call: Call,
        invoke_ns: u64,
        outcome: Outcome,
    ) {
        self.recorder.record(Operation {
            process: self.id,
            key: key.to_owned(),
            api,
            server,
            call,
            invoke_ns,
            complete_ns: self.recorder.now_ns(),
            outcome,
        });
    }

    async fn timed<T>(
        &self,
        request: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(self.config.op_timeout, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("timed out after {:?}", self.config.op_timeout)),
        }
    }

    /// The etcd client of `server`, connecting on first use; `None` if the
    /// server cannot be reached now.
    async fn etcd(&mut self, server: usize) -> Option<EtcdClient> {
        if let Some(client) = &self.etcd[server] {
            return Some(client.clone());
        }
        let connect = EtcdClient::connect(self.endpoints[server].grpc, self.config.op_timeout);
        match tokio::time::timeout(self.config.op_timeout, connect).await {
            Ok(Ok(client)) => {
                self.etcd[server] = Some(client.clone());
                Some(client)
            }
            _ => None,
        }
    }
}

/// The key of a listing: it observes every `instance/…` key at once.
pub const INSTANCES_KEY: &str = "instances";

/// The history key of one service instance.
pub fn instance_key(id: &str) -> String {
    format!("instance/{id}")
}

/// Reads every key, and lists the instances, once through `endpoint`'s etcd API (retrying until
/// `deadline` passes), recording the reads as `process`. Used after the load
/// and after the whole-cluster restart.
pub async fn read_all(
    process: u32,
    server: usize,
    endpoint: Endpoint,
    keys: &[String],
    recorder: &Recorder,
    deadline: Duration,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let client = loop {
        match EtcdClient::connect(endpoint.grpc, Duration::from_secs(2)).await {
            Ok(client) => break client,
            Err(err) if started.elapsed() > deadline => {
                anyhow::bail!("cannot connect to {}: {err}", endpoint.grpc)
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let consul = ConsulClient::new(
        reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?,
        endpoint.http,
    );
    loop {
        let invoke_ns = recorder.now_ns();
        match consul.list().await {
            Ok(output) => {
                recorder.record(Operation {
                    process,
                    key: INSTANCES_KEY.to_owned(),
                    api: Api::Consul,
                    server,
                    call: Call::ListInstances,
                    invoke_ns,
                    complete_ns: recorder.now_ns(),
                    outcome: Outcome::Ok(output),
                });
                break;
            }
            Err(err) if started.elapsed() > deadline => {
                anyhow::bail!("cannot list instances from {}: {err}", endpoint.http)
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    for key in keys {
        loop {
            let invoke_ns = recorder.now_ns();
            match client.get(key).await {
                Ok(read) => {
                    recorder.record(Operation {
                        process,
                        key: key.clone(),
                        api: Api::Etcd,
                        server,
                        call: Call::Get,
                        invoke_ns,
                        complete_ns: recorder.now_ns(),
                        outcome: Outcome::Ok(Output::Read { value: read.value }),
                    });
                    break;
                }
                Err(err) if started.elapsed() > deadline => {
                    anyhow::bail!("cannot read {key} from {}: {err}", endpoint.grpc)
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    Ok(())
}
