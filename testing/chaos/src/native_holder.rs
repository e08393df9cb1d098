//! An instance of the native API (`sextant.v1.Registry`) with a TTL, kept
//! alive by KeepAlive, held like the etcd lease ([`crate::ttl_check::hold`]).
//!
//! Its TTL check starts critical: the first keep-alive turns it passing, so
//! a creation is a Register and one keep-alive, both acknowledged. Each
//! renewal is one KeepAlive message on a stream of its own, so that its
//! answer belongs to the server it was sent to.

use std::time::Duration;

use sextant_proto::v1::registry_client::RegistryClient;
use sextant_proto::v1::{Instance, InstanceRef, KeepAliveRequest, RegisterRequest};
use tonic::transport::{Channel, Endpoint as TonicEndpoint};

use crate::check_state::CheckReader;
use crate::clients::ClientError;
use crate::ttl_check::Renewable;
use crate::workload::Endpoint;

const SERVICE: &str = "chaos-native";

pub struct NativeInstance {
    /// One lazily connected channel per server's gRPC address.
    clients: Vec<RegistryClient<Channel>>,
    /// Health is read through the Consul API with `?consistent`: Discover
    /// waits only for what the leader has applied, which a deposed leader
    /// may answer from its own, older state.
    reader: CheckReader,
    ttl_ms: u64,
    generation: u64,
    /// The catalog node the server put the instance on.
    node: String,
}

impl NativeInstance {
    pub fn new(
        endpoints: &[Endpoint],
        ttl: Duration,
        op_timeout: Duration,
    ) -> anyhow::Result<NativeInstance> {
        let mut clients = Vec::new();
        for endpoint in endpoints {
            let channel = TonicEndpoint::from_shared(format!("http://{}", endpoint.grpc))?
                .connect_timeout(op_timeout)
                .timeout(op_timeout)
                .connect_lazy();
            clients.push(RegistryClient::new(channel));
        }
        Ok(NativeInstance {
            clients,
            reader: CheckReader::new(endpoints, op_timeout)?,
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            generation: 0,
            node: String::new(),
        })
    }

    /// One keep-alive through `server`. Renewed only if the server knows the
    /// instance and reports its TTL: it answers a TTL of 0 when the update
    /// did not reach the check's owner.
    async fn keep_alive(&mut self, server: usize) -> Result<(), ClientError> {
        let request = KeepAliveRequest {
            instances: vec![InstanceRef {
                instance_id: self.name(),
                node: self.node.clone(),
            }],
        };
        let mut answers = self.clients[server]
            .keep_alive(futures::stream::iter([request]))
            .await?
            .into_inner();
        let answer = answers
            .message()
            .await?
            .ok_or_else(|| ClientError::Unexpected("KeepAlive ended unanswered".to_owned()))?;
        if !answer.unknown.is_empty() {
            // A server that has not applied the registration yet answers
            // so too: not renewed, not proof of an expiry.
            return Err(ClientError::Unexpected(format!(
                "KeepAlive through s{} does not know {}",
                server + 1,
                self.name()
            )));
        }
        if answer.ttl_ms == 0 {
            return Err(ClientError::Unexpected(format!(
                "KeepAlive through s{} renewed no TTL",
                server + 1
            )));
        }
        Ok(())
    }
}

impl Renewable for NativeInstance {
    const KIND: &'static str = "native instance";

    async fn create(&mut self, server: usize) -> Result<(), ClientError> {
        // A fresh instance each time: registering one again keeps its status.
        self.generation += 1;
        let request = RegisterRequest {
            instance: Some(Instance {
                id: self.name(),
                service: SERVICE.to_owned(),
                address: "192.0.2.2".to_owned(),
                port: 9,
                ..Instance::default()
            }),
            ttl_ms: self.ttl_ms,
            // Reaped ten TTLs after its last renewal, as the Nacos instance:
            // long after an expiry has been seen.
            deregister_critical_after_ms: self.ttl_ms * 9,
            ..RegisterRequest::default()
        };
        let registered = self.clients[server].register(request).await?.into_inner();
        self.node = registered.node;
        self.keep_alive(server).await
    }

    async fn renew(&mut self, server: usize) -> Result<bool, ClientError> {
        let check_id = format!("service:{}:ttl", self.name());
        // Read first: a keep-alive would turn an expired check passing again.
        let state = self.reader.state(server, SERVICE, &check_id).await?;
        if state.expired(&check_id, true)? {
            return Ok(false);
        }
        self.keep_alive(server).await?;
        Ok(true)
    }

    fn name(&self) -> String {
        format!("{SERVICE}-{}", self.generation)
    }
}
