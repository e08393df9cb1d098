//! Outgoing calls to other servers over the internal gRPC API: one lazily
//! connected channel per server, shared by Raft, forwarding, cluster
//! formation, health and the lease keeper.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sextant_proto::internal::internal_client::InternalClient;
use tonic::transport::{Channel, Endpoint};

use super::messages::{decode, encode};

/// Largest message either side accepts: a snapshot chunk or a batch of entries.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// The methods of the internal API.
#[derive(Clone, Copy, Debug)]
pub enum Method {
    AppendEntries,
    Vote,
    InstallSnapshot,
    Forward,
    ReadIndex,
    Hello,
    Join,
    Leave,
    LeaseKeeper,
    LeaseKeepers,
    TtlUpdates,
    RenewSession,
    HealthWrite,
}

/// Why a call to another server failed before it produced an answer.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CallError {
    #[error("{addr} is unreachable: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("{addr} did not answer {method:?} within {timeout:?}")]
    Timeout {
        addr: String,
        method: Method,
        timeout: Duration,
    },
    #[error("{addr} failed {method:?}: {status}")]
    Status {
        addr: String,
        method: Method,
        status: tonic::Status,
    },
}

/// One lazily connected gRPC channel per server address, shared by every caller.
#[derive(Clone, Default)]
pub struct PeerClients {
    channels: Arc<Mutex<HashMap<String, InternalClient<Channel>>>>,
}

impl PeerClients {
    fn client(&self, addr: &str) -> Result<InternalClient<Channel>, CallError> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = channels.get(addr) {
            return Ok(client.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}")).map_err(|e| {
            CallError::Unreachable {
                addr: addr.to_string(),
                reason: e.to_string(),
            }
        })?;
        let channel = endpoint
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .connect_lazy();
        let client = InternalClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        channels.insert(addr.to_string(), client.clone());
        Ok(client)
    }

    /// Drops the channel to `addr`. A channel that failed to connect backs
    /// off further with every failure; once the server is back, the next call
    /// must connect at once, not after a backoff that grew while it was down
    /// (elections between the survivors would wait for it).
    fn forget(&self, addr: &str) {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.remove(addr);
    }

    /// Calls `method` on the server at `addr` and decodes its answer.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        method: Method,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let mut client = self.client(addr)?;
        let frame = encode(request).map_err(|status| CallError::Status {
            addr: addr.to_string(),
            method,
            status,
        })?;
        let call = async move {
            match method {
                Method::AppendEntries => client.append_entries(frame).await,
                Method::Vote => client.vote(frame).await,
                Method::InstallSnapshot => client.install_snapshot(frame).await,
                Method::Forward => client.forward(frame).await,
                Method::ReadIndex => client.read_index(frame).await,
                Method::Hello => client.hello(frame).await,
                Method::Join => client.join(frame).await,
                Method::Leave => client.leave(frame).await,
                Method::LeaseKeeper => client.lease_keeper(frame).await,
                Method::LeaseKeepers => client.lease_keepers(frame).await,
                Method::TtlUpdates => client.ttl_updates(frame).await,
                Method::RenewSession => client.renew_session(frame).await,
                Method::HealthWrite => client.health_write(frame).await,
            }
        };
        let response = match tokio::time::timeout(timeout, call).await {
            Err(_) => {
                return Err(CallError::Timeout {
                    addr: addr.to_string(),
                    method,
                    timeout,
                })
            }
            Ok(Err(status)) if is_unreachable(&status) => {
                self.forget(addr);
                return Err(CallError::Unreachable {
                    addr: addr.to_string(),
                    reason: status.to_string(),
                });
            }
            Ok(Err(status)) => {
                return Err(CallError::Status {
                    addr: addr.to_string(),
                    method,
                    status,
                })
            }
            Ok(Ok(response)) => response,
        };
        decode(response.get_ref()).map_err(|status| CallError::Status {
            addr: addr.to_string(),
            method,
            status,
        })
    }
}

fn is_unreachable(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Unavailable
}
