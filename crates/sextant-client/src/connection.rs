//! The set of Sextant servers a client talks to, and failing over between
//! them: a call that finds its server unavailable moves on to the next one
//! (or to the leader the server named), with backoff after each full round.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;
use sextant_proto::v1::registry_client::RegistryClient;
use tonic::transport::{Channel, Endpoint as TonicEndpoint};
use tonic::{Code, Status};

use crate::{Backoff, Error};

/// The gRPC metadata key a server may put on an error to name the server
/// (its gRPC `host:port`) that should be asked instead.
///
/// ```
/// let mut status = tonic::Status::unavailable("not the leader");
/// status.metadata_mut().insert(sextant_client::LEADER_HINT_METADATA, "10.0.0.2:2379".parse().unwrap());
/// ```
pub const LEADER_HINT_METADATA: &str = "sextant-leader";

/// How the client reaches the servers.
#[derive(Clone, Debug)]
pub(crate) struct ConnectConfig {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub retry_deadline: Duration,
    pub backoff: Backoff,
}

/// One server: its address as given, normalised, and a lazily connected channel.
#[derive(Debug)]
struct Server {
    /// `host:port`, to match leader hints against.
    authority: String,
    endpoint: TonicEndpoint,
    channel: Channel,
}

#[derive(Debug)]
pub(crate) struct Servers {
    servers: Vec<Server>,
    /// Index of the server calls go to until it fails.
    current: AtomicUsize,
    pub(crate) config: ConnectConfig,
    rng: Mutex<StdRng>,
}

impl Servers {
    /// Parses the addresses (`host:port` or `http://host:port`) into lazy
    /// channels; nothing is dialled yet.
    pub(crate) fn new(
        addresses: &[String],
        config: ConnectConfig,
        seed: u64,
    ) -> Result<Servers, Error> {
        if addresses.is_empty() {
            return Err(Error::NoServers);
        }
        let mut servers = Vec::with_capacity(addresses.len());
        for address in addresses {
            let uri = if address.contains("://") {
                address.clone()
            } else {
                format!("http://{address}")
            };
            let endpoint = TonicEndpoint::from_shared(uri.clone())
                .map_err(|err| Error::InvalidServer {
                    address: address.clone(),
                    reason: err.to_string(),
                })?
                .connect_timeout(config.connect_timeout)
                .tcp_nodelay(true)
                // Streams must notice a server that vanished without a FIN
                // (a dead host, a partition) — not only one that crashed.
                .http2_keep_alive_interval(Duration::from_secs(5))
                .keep_alive_timeout(Duration::from_secs(5))
                .keep_alive_while_idle(true);
            let authority = endpoint
                .uri()
                .authority()
                .map(|a| a.as_str().to_owned())
                .ok_or_else(|| Error::InvalidServer {
                    address: address.clone(),
                    reason: String::from("no host:port"),
                })?;
            servers.push(Server {
                authority,
                channel: endpoint.connect_lazy(),
                endpoint,
            });
        }
        Ok(Servers {
            servers,
            current: AtomicUsize::new(0),
            config,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.servers.len()
    }

    /// The server to use now and a client for it.
    pub(crate) fn current(&self) -> (usize, RegistryClient<Channel>) {
        let index = self.current.load(Ordering::Relaxed) % self.servers.len();
        (
            index,
            RegistryClient::new(self.servers[index].channel.clone()),
        )
    }

    pub(crate) fn authority(&self, index: usize) -> &str {
        &self.servers[index % self.servers.len()].authority
    }

    /// Moves away from server `failed` (unless another task already did):
    /// to the server `status` names as leader if it is one of ours, else to the next.
    pub(crate) fn fail_over(&self, failed: usize, status: Option<&Status>) {
        let hinted = status.and_then(leader_hint).and_then(|hint| {
            self.servers
                .iter()
                .position(|s| s.authority == hint)
                .filter(|&i| i != failed)
        });
        let next = hinted.unwrap_or((failed + 1) % self.servers.len());
        if self
            .current
            .compare_exchange(failed, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
            && next != failed
        {
            tracing::info!(
                from = %self.servers[failed].authority,
                to = %self.servers[next].authority,
                leader_hint = hinted.is_some(),
                "switching Sextant server"
            );
        }
    }

    /// The delay before attempt `attempt` of a retry loop.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.config.backoff.delay(attempt, &mut *rng)
    }

    /// After every server of a round failed (every `len()` attempts), waits
    /// the backoff of that round before the next.
    async fn pause_after_round(&self, attempts: u32) {
        let servers = self.len() as u32;
        let (rounds, rest) = (attempts / servers, attempts - attempts / servers * servers);
        if rest == 0 && rounds > 0 {
            tokio::time::sleep(self.backoff(rounds - 1)).await;
        }
    }

    /// Runs one unary call with failover: retryable errors move to another
    /// server, after each full round through the servers a backoff delay
    /// passes, and after `retry_deadline` the last error is returned.
    pub(crate) async fn unary<T, F, Fut>(&self, what: &'static str, mut call: F) -> Result<T, Error>
    where
        F: FnMut(RegistryClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let started = tokio::time::Instant::now();
        let mut attempts: u32 = 0;
        loop {
            let (index, client) = self.current();
            attempts += 1;
            let status = match tokio::time::timeout(self.config.request_timeout, call(client)).await
            {
                Ok(Ok(response)) => return Ok(response.into_inner()),
                Ok(Err(status)) if !is_retryable(&status) => return Err(Error::Rejected(status)),
                Ok(Err(status)) => status,
                Err(_) => Status::deadline_exceeded(format!(
                    "{what} to {} took longer than {:?}",
                    self.authority(index),
                    self.config.request_timeout
                )),
            };
            tracing::debug!(server = %self.authority(index), %status, what, "request failed; trying another server");
            self.fail_over(index, Some(&status));
            if started.elapsed() >= self.config.retry_deadline {
                return Err(Error::Unavailable {
                    attempts,
                    last: status,
                });
            }
            self.pause_after_round(attempts).await;
        }
    }

    /// Dials servers in turn until one accepts a connection, so `connect`
    /// fails fast on a wrong address list; that server becomes the current one.
    pub(crate) async fn dial_any(&self) -> Result<(), Error> {
        let started = tokio::time::Instant::now();
        let mut attempts: u32 = 0;
        loop {
            let (index, _) = self.current();
            attempts += 1;
            // A throwaway connection: the lazy channel reconnects by itself,
            // this only proves the server is reachable.
            let status = match self.servers[index].endpoint.connect().await {
                Ok(_) => return Ok(()),
                Err(err) => Status::unavailable(format!("{}: {err}", self.authority(index))),
            };
            self.fail_over(index, None);
            if started.elapsed() >= self.config.retry_deadline {
                return Err(Error::Unavailable {
                    attempts,
                    last: status,
                });
            }
            self.pause_after_round(attempts).await;
        }
    }
}

/// Errors worth asking another server about: the server is down, overloaded,
/// not (yet) serving, or lost its leader.
pub(crate) fn is_retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Unknown
            | Code::Aborted
            | Code::ResourceExhausted
            | Code::Cancelled
    )
}

fn leader_hint(status: &Status) -> Option<String> {
    let value = status.metadata().get(LEADER_HINT_METADATA)?;
    let text = value.to_str().ok()?.trim();
    let text = text.strip_prefix("http://").unwrap_or(text);
    (!text.is_empty()).then(|| text.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ConnectConfig {
        ConnectConfig {
            connect_timeout: Duration::from_millis(100),
            request_timeout: Duration::from_millis(100),
            retry_deadline: Duration::from_secs(1),
            backoff: Backoff::new(Duration::from_millis(10), Duration::from_millis(100))
                .with_jitter(0.0),
        }
    }

    fn servers() -> Servers {
        let addresses = ["127.0.0.1:1", "http://127.0.0.1:2", "127.0.0.1:3"].map(String::from);
        Servers::new(&addresses, config(), 0).unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn fails_over_in_order_and_follows_a_leader_hint() {
        let s = servers();
        assert_eq!(s.current().0, 0);
        s.fail_over(0, None);
        assert_eq!(s.current().0, 1);
        let mut status = Status::unavailable("not leader");
        status.metadata_mut().insert(
            LEADER_HINT_METADATA,
            "127.0.0.1:1".parse().unwrap_or_else(|e| panic!("{e}")),
        );
        s.fail_over(1, Some(&status));
        assert_eq!(s.current().0, 0, "followed the hint");
        // A stale failure report (another task already moved on) changes nothing.
        s.fail_over(2, None);
        assert_eq!(s.current().0, 0);
    }

    #[tokio::test]
    async fn rejects_bad_addresses() {
        assert!(matches!(
            Servers::new(&[], config(), 0),
            Err(Error::NoServers)
        ));
        let bad = [String::from("http://exa mple:1")];
        assert!(matches!(
            Servers::new(&bad, config(), 0),
            Err(Error::InvalidServer { .. })
        ));
    }

    #[tokio::test]
    async fn unary_gives_up_after_the_deadline_with_the_last_error() {
        // Port 1 on loopback refuses connections: every attempt is Unavailable.
        let s = servers();
        let result: Result<(), Error> = s
            .unary("probe", |mut c| async move {
                c.discover(sextant_proto::v1::DiscoverRequest::default())
                    .await
                    .map(|r| r.map(|_| ()))
            })
            .await;
        match result {
            Err(Error::Unavailable { attempts, .. }) => assert!(attempts >= 3, "{attempts}"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
}
