//! etcd leases under faults: none expires while its holder keeps it alive.
//!
//! One client holds a lease and renews it every few hundred milliseconds
//! through a random server, moving on whenever a server is down, paused or
//! cut off. A renewal acknowledged for a request sent at `t` promises the
//! lease until at least `t + TTL`: the leader restarts the countdown no
//! earlier than it receives the request, and a new leader must extend every
//! lease, not let it run out because the old leader's countdown died with
//! it. Finding the lease gone (a keep-alive answered with TTL 0) before the
//! latest such promise is an anomaly. A lease the client could not renew for
//! a whole TTL may expire: that is counted, and a new lease is granted.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::Rng;
use tokio::sync::watch;

use crate::clients::EtcdClient;
use crate::workload::Endpoint;

/// The lease being held.
struct Held {
    id: i64,
    /// Its granted TTL, which every renewal restarts.
    ttl: Duration,
    /// The latest end of life an acknowledged grant or renewal promised.
    promised_until: Instant,
}

/// What the lease holder saw.
#[derive(Debug, Default)]
pub struct LeaseLog {
    pub grants: u64,
    pub renewals: u64,
    /// Leases that expired after the client had failed to renew them for a TTL.
    pub expiries: u64,
    pub anomalies: Vec<String>,
}

/// Holds a lease of `ttl_secs` until `stop` turns true, renewing it every
/// `renew_every`. `started` is the run's start, for the messages.
pub async fn hold(
    endpoints: Vec<Endpoint>,
    mut rng: StdRng,
    stop: watch::Receiver<bool>,
    ttl_secs: i64,
    renew_every: Duration,
    op_timeout: Duration,
    started: Instant,
) -> LeaseLog {
    let mut log = LeaseLog::default();
    let mut clients: Vec<Option<EtcdClient>> = vec![None; endpoints.len()];
    let mut held: Option<Held> = None;
    while !*stop.borrow() {
        let server = rng.random_range(0..endpoints.len());
        let client = match &clients[server] {
            Some(client) => client.clone(),
            None => match EtcdClient::connect(endpoints[server].grpc, op_timeout).await {
                Ok(client) => clients[server].insert(client).clone(),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let sent = Instant::now();
        match &mut held {
            None => {
                if let Ok(Ok((id, ttl))) =
                    tokio::time::timeout(op_timeout, client.grant(ttl_secs)).await
                {
                    log.grants += 1;
                    held = Some(Held {
                        id,
                        ttl: seconds(ttl),
                        promised_until: sent + seconds(ttl),
                    });
                }
                // An unanswered grant may have made a lease nobody renews:
                // it expires, harmlessly.
            }
            Some(lease) => {
                match tokio::time::timeout(op_timeout, client.keep_alive_once(lease.id)).await {
                    Ok(Ok(true)) => {
                        log.renewals += 1;
                        lease.promised_until = lease.promised_until.max(sent + lease.ttl);
                    }
                    Ok(Ok(false)) => {
                        let found = Instant::now();
                        if found < lease.promised_until {
                            log.anomalies.push(format!(
                                "lease {:x} found expired by s{} at {:.1}s, {:?} before the end its last acknowledged renewal promised",
                                lease.id,
                                server + 1,
                                found.duration_since(started).as_secs_f64(),
                                lease.promised_until.duration_since(found)
                            ));
                        } else {
                            log.expiries += 1;
                            println!(
                                "[{:>6.1}s] lease: {:x} expired, unrenewed for {:?} past its TTL",
                                found.duration_since(started).as_secs_f64(),
                                lease.id,
                                found.duration_since(lease.promised_until)
                            );
                        }
                        held = None;
                    }
                    // Unanswered: it may or may not have renewed the lease.
                    _ => {}
                }
            }
        }
        tokio::time::sleep(renew_every).await;
    }
    log
}

fn seconds(ttl: i64) -> Duration {
    Duration::from_secs(u64::try_from(ttl).unwrap_or(0))
}
