//! Leases and TTL checks under faults: none expires while its holder keeps
//! it alive.
//!
//! One client holds an etcd lease, another a Consul service instance with a
//! TTL check, each renewing every few hundred milliseconds through a random
//! server and moving on whenever a server is down, paused or cut off. A
//! renewal acknowledged for a request sent at `t` promises life until at
//! least `t + TTL`: the countdown restarts no earlier than the request
//! arrives, and a new leader (or a check's new owner) must give every lease
//! (check) a whole TTL, not let it run out because the old countdown died.
//! Finding it expired before the latest such promise is an anomaly. One the
//! client could not renew for a whole TTL may expire: that is counted, and
//! it is created again.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::Rng;
use tokio::sync::watch;

use crate::clients::{ClientError, EtcdClient};
use crate::workload::Endpoint;

/// What a holder keeps alive, through whichever server it is given.
pub trait Renewable {
    /// What the messages call it.
    const KIND: &'static str;
    /// Creates it anew through `server`.
    async fn create(&mut self, server: usize) -> Result<(), ClientError>;
    /// Renews it through `server`: true if renewed, false if it was found
    /// expired.
    async fn renew(&mut self, server: usize) -> Result<bool, ClientError>;
    /// Its current name, for the messages.
    fn name(&self) -> String;
}

/// What one holder saw.
#[derive(Debug, Default)]
pub struct HoldLog {
    pub creations: u64,
    pub renewals: u64,
    /// Expiries after the client had failed to renew for a whole TTL.
    pub expiries: u64,
    pub anomalies: Vec<String>,
}

/// How a holder runs.
#[derive(Clone, Copy, Debug)]
pub struct HoldConfig {
    pub ttl: Duration,
    pub renew_every: Duration,
    pub op_timeout: Duration,
    /// The run's start, for the messages.
    pub started: Instant,
}

/// Keeps `held` alive through `servers` servers until `stop` turns true.
pub async fn hold<R: Renewable>(
    mut held: R,
    servers: usize,
    mut rng: StdRng,
    stop: watch::Receiver<bool>,
    config: HoldConfig,
) -> HoldLog {
    let mut log = HoldLog::default();
    // The latest end of life an acknowledged creation or renewal promised.
    let mut promised_until: Option<Instant> = None;
    while !*stop.borrow() {
        let server = rng.random_range(0..servers);
        let sent = Instant::now();
        // After an unanswered request, try another server at once.
        let mut answered = true;
        match promised_until {
            None => {
                // An unanswered creation may leave one nobody renews: it
                // expires, harmlessly.
                if let Ok(Ok(())) =
                    tokio::time::timeout(config.op_timeout, held.create(server)).await
                {
                    log.creations += 1;
                    promised_until = Some(sent + config.ttl);
                } else {
                    answered = false;
                }
            }
            Some(until) => {
                match tokio::time::timeout(config.op_timeout, held.renew(server)).await {
                    Ok(Ok(true)) => {
                        log.renewals += 1;
                        promised_until = Some(until.max(sent + config.ttl));
                    }
                    Ok(Ok(false)) => {
                        let found = Instant::now();
                        let at = found.duration_since(config.started).as_secs_f64();
                        if found < until {
                            log.anomalies.push(format!(
                            "{} {} found expired through s{} at {at:.1}s, {:?} before the end its last acknowledged renewal promised",
                            R::KIND,
                            held.name(),
                            server + 1,
                            until.duration_since(found)
                        ));
                        } else {
                            log.expiries += 1;
                            println!(
                                "[{at:>6.1}s] {} {} expired, unrenewed for {:?} past its TTL",
                                R::KIND,
                                held.name(),
                                found.duration_since(until)
                            );
                        }
                        promised_until = None;
                    }
                    // Unanswered: it may or may not have been renewed.
                    _ => answered = false,
                }
            }
        }
        if answered {
            tokio::time::sleep(config.renew_every).await;
        }
    }
    log
}

/// An etcd lease; a keep-alive answered with TTL 0 finds it expired.
pub struct EtcdLease {
    endpoints: Vec<Endpoint>,
    clients: Vec<Option<EtcdClient>>,
    ttl_secs: i64,
    op_timeout: Duration,
    id: i64,
}

impl EtcdLease {
    pub fn new(endpoints: Vec<Endpoint>, ttl: Duration, op_timeout: Duration) -> EtcdLease {
        EtcdLease {
            clients: vec![None; endpoints.len()],
            endpoints,
            ttl_secs: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
            op_timeout,
            id: 0,
        }
    }

    async fn client(&mut self, server: usize) -> Result<EtcdClient, ClientError> {
        if let Some(client) = &self.clients[server] {
            return Ok(client.clone());
        }
        let client = EtcdClient::connect(self.endpoints[server].grpc, self.op_timeout).await?;
        Ok(self.clients[server].insert(client).clone())
    }
}

impl Renewable for EtcdLease {
    const KIND: &'static str = "lease";

    async fn create(&mut self, server: usize) -> Result<(), ClientError> {
        let client = self.client(server).await?;
        let (id, _) = client.grant(self.ttl_secs).await?;
        self.id = id;
        Ok(())
    }

    async fn renew(&mut self, server: usize) -> Result<bool, ClientError> {
        let client = self.client(server).await?;
        client.keep_alive_once(self.id).await
    }

    fn name(&self) -> String {
        format!("{:x}", self.id)
    }
}

/// A service instance with a Consul TTL check, registered as passing; a
/// consistent read of the check's status finds it expired (critical).
pub struct ConsulTtlCheck {
    http: reqwest::Client,
    servers: Vec<SocketAddr>,
    ttl: Duration,
    generation: u64,
}

const TTL_SERVICE: &str = "chaos-ttl";

impl ConsulTtlCheck {
    pub fn new(
        endpoints: &[Endpoint],
        ttl: Duration,
        op_timeout: Duration,
    ) -> anyhow::Result<Self> {
        Ok(ConsulTtlCheck {
            http: reqwest::Client::builder()
                .timeout(op_timeout)
                .connect_timeout(op_timeout)
                .build()?,
            servers: endpoints.iter().map(|e| e.http).collect(),
            ttl,
            generation: 0,
        })
    }

    fn id(&self) -> String {
        format!("{TTL_SERVICE}-{}", self.generation)
    }
}

#[derive(serde::Deserialize)]
struct CheckStatus {
    #[serde(rename = "CheckID")]
    check_id: String,
    #[serde(rename = "Status")]
    status: String,
}

impl Renewable for ConsulTtlCheck {
    const KIND: &'static str = "TTL check";

    async fn create(&mut self, server: usize) -> Result<(), ClientError> {
        // A fresh instance each time: an expired one may be reaped meanwhile.
        self.generation += 1;
        let registration = serde_json::json!({
            "ID": self.id(),
            "Name": TTL_SERVICE,
            "Port": 9,
            "Check": {
                "TTL": format!("{}ms", self.ttl.as_millis()),
                "Status": "passing",
            },
        });
        let url = format!("http://{}/v1/agent/service/register", self.servers[server]);
        self.http
            .put(url)
            .json(&registration)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    async fn renew(&mut self, server: usize) -> Result<bool, ClientError> {
        let base = format!("http://{}", self.servers[server]);
        let check_id = format!("service:{}", self.id());
        // Read first: a pass would turn an expired check passing again.
        let checks: Vec<CheckStatus> = self
            .http
            .get(format!("{base}/v1/health/checks/{TTL_SERVICE}?consistent"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let status = checks.iter().find(|c| c.check_id == check_id);
        match status.map(|c| c.status.as_str()) {
            Some("passing") => {}
            Some(_) => return Ok(false),
            None => {
                return Err(ClientError::Unexpected(format!(
                    "{check_id} is not registered"
                )))
            }
        }
        self.http
            .put(format!("{base}/v1/agent/check/pass/{check_id}"))
            .send()
            .await?
            .error_for_status()?;
        Ok(true)
    }

    fn name(&self) -> String {
        self.id()
    }
}
