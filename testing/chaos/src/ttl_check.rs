//! Leases and TTL checks under faults: none expires while its holder keeps
//! it alive.
//!
//! One client holds an etcd lease; others hold a Consul service instance
//! with a TTL check, a Nacos ephemeral instance kept by beats
//! ([`crate::nacos_holder`]) and a native instance kept by KeepAlive
//! ([`crate::native_holder`]). Each renews every few hundred milliseconds
//! (now and then only well into the TTL, which is where an early expiry
//! shows) through a random server, moving on whenever a server is down,
//! paused or cut off. A renewal acknowledged for a request sent at `t` promises life
//! until at least `t + TTL`: the countdown restarts no earlier than the
//! request arrives, and a new leader (or a check's new owner) must give
//! every lease (check) a whole TTL, not let it run out because the old
//! countdown died. Finding it expired before the latest such promise is an
//! anomaly. One the client could not renew for a whole TTL may expire: that
//! is counted, and it is created again.

use std::future::Future;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::Rng;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::check_state::CheckReader;
use crate::clients::{ClientError, EtcdClient};
use crate::workload::Endpoint;

/// What a holder keeps alive, through whichever server it is given.
///
/// The futures are `Send` so that any holder can be spawned by one generic
/// function.
pub trait Renewable: Send + 'static {
    /// What the messages call it.
    const KIND: &'static str;
    /// Creates it anew through `server`.
    fn create(&mut self, server: usize) -> impl Future<Output = Result<(), ClientError>> + Send;
    /// Renews it through `server`: true if renewed, false if it was found
    /// expired. An error is no answer: it may or may not have been renewed.
    fn renew(&mut self, server: usize) -> impl Future<Output = Result<bool, ClientError>> + Send;
    /// Its current name, for the messages.
    fn name(&self) -> String;
}

/// What one holder saw.
#[derive(Debug, Default)]
pub struct HoldLog {
    pub creations: u64,
    pub renewals: u64,
    /// Waits well into the TTL after an acknowledgement (see
    /// [`LATE_RENEWAL_SHARE`]).
    pub late: u64,
    /// Expiries after the client had failed to renew for a whole TTL.
    pub expiries: u64,
    pub anomalies: Vec<String>,
}

/// How often a holder, once acknowledged, waits well into the TTL before its
/// next renewal, and where in the TTL (as shares of it, from the request's
/// sending) that renewal then goes. Steady renewals every few hundred
/// milliseconds never leave a gap long enough to show a server expiring
/// early; a late one does, with room to spare before the TTL ends.
const LATE_RENEWAL_SHARE: f64 = 0.4;
const LATE_RENEWAL_AT: std::ops::Range<f64> = 0.65..0.9;

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
    mut stop: watch::Receiver<bool>,
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
        let mut acknowledged = false;
        match promised_until {
            None => {
                // An unanswered creation may leave one nobody renews: it
                // expires, harmlessly.
                if let Ok(Ok(())) =
                    tokio::time::timeout(config.op_timeout, held.create(server)).await
                {
                    log.creations += 1;
                    acknowledged = true;
                    promised_until = Some(sent + config.ttl);
                } else {
                    answered = false;
                }
            }
            Some(until) => {
                match tokio::time::timeout(config.op_timeout, held.renew(server)).await {
                    Ok(Ok(true)) => {
                        log.renewals += 1;
                        acknowledged = true;
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
            let pause = if acknowledged && rng.random_bool(LATE_RENEWAL_SHARE) {
                log.late += 1;
                let at = sent + config.ttl.mul_f64(rng.random_range(LATE_RENEWAL_AT));
                at.saturating_duration_since(Instant::now())
            } else {
                config.renew_every
            };
            // A late wait must not hold up the end of the load.
            let _ = tokio::time::timeout(pause, stop.wait_for(|stopped| *stopped)).await;
        }
    }
    log
}

/// Starts holders that share the servers, the stop signal and the timing.
pub struct Holders {
    pub servers: usize,
    pub stop: watch::Receiver<bool>,
    pub config: HoldConfig,
}

impl Holders {
    /// Holds `held` on a task of its own; the task answers what it saw.
    pub fn spawn<R: Renewable>(&self, held: R, rng: StdRng) -> JoinHandle<HoldLog> {
        tokio::spawn(hold(
            held,
            self.servers,
            rng,
            self.stop.clone(),
            self.config,
        ))
    }
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
    reader: CheckReader,
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
            reader: CheckReader::new(endpoints, op_timeout)?,
            ttl,
            generation: 0,
        })
    }

    fn id(&self) -> String {
        format!("{TTL_SERVICE}-{}", self.generation)
    }
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
        let url = format!("{}/v1/agent/service/register", self.reader.base(server));
        self.reader
            .http()
            .put(url)
            .json(&registration)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    async fn renew(&mut self, server: usize) -> Result<bool, ClientError> {
        let check_id = format!("service:{}", self.id());
        // Read first: a pass would turn an expired check passing again.
        let state = self.reader.state(server, TTL_SERVICE, &check_id).await?;
        if state.expired(&check_id, false)? {
            return Ok(false);
        }
        self.reader
            .http()
            .put(format!(
                "{}/v1/agent/check/pass/{check_id}",
                self.reader.base(server)
            ))
            .send()
            .await?
            .error_for_status()?;
        Ok(true)
    }

    fn name(&self) -> String {
        self.id()
    }
}
