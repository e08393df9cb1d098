//! Workloads over Nacos's v1 naming HTTP API. They know only a base URL, so
//! the very same requests go to Sextant and to r-nacos.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::compare_common::{alternate, closed_loop, Better, Row};
use crate::etcd_load::Rate;

const INSTANCE_PATH: &str = "/nacos/v1/ns/instance";
const BEAT_PATH: &str = "/nacos/v1/ns/instance/beat";
const LIST_PATH: &str = "/nacos/v1/ns/instance/list";

/// Instances each client of the heartbeat workload beats for, in turn.
const BEATS_PER_CLIENT: u64 = 10;

/// Instances of the service the list workload reads.
pub const LISTED_INSTANCES: u64 = 10;

/// Every instance any workload registers gets the next id, so no two
/// registrations in one run of the benchmark share an address.
static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(1);

/// One system's Nacos API, and the HTTP connections to it.
#[derive(Clone)]
pub struct Target {
    base: String,
    http: reqwest::Client,
}

impl Target {
    /// `base` is like `http://127.0.0.1:8848`.
    pub fn new(base: String) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(4096)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self { base, http })
    }

    /// Registers the ephemeral instance `id` of `service`; true on `ok`.
    async fn register(&self, service: &str, id: u64) -> bool {
        let (ip, port) = address(id);
        let body = format!("serviceName={service}&ip={ip}&port={port}&ephemeral=true");
        self.send(
            self.http.post(format!("{}{INSTANCE_PATH}", self.base)),
            body,
        )
        .await
        .is_some_and(|text| text.trim() == "ok")
    }

    /// Beats for instance `id` of `service`; true when the server knew it
    /// (code 10200, not 20404).
    async fn beat(&self, service: &str, id: u64) -> bool {
        let (ip, port) = address(id);
        let body = format!("serviceName={service}&ip={ip}&port={port}&ephemeral=true");
        self.send(self.http.put(format!("{}{BEAT_PATH}", self.base)), body)
            .await
            .is_some_and(|text| text.contains("10200"))
    }

    /// The healthy instances of `service`, as the raw JSON reply.
    async fn list(&self, service: &str) -> Option<String> {
        let url = format!(
            "{}{LIST_PATH}?serviceName={service}&healthyOnly=true",
            self.base
        );
        let reply = self.http.get(url).send().await.ok()?;
        if !reply.status().is_success() {
            return None;
        }
        reply.text().await.ok()
    }

    async fn send(&self, request: reqwest::RequestBuilder, body: String) -> Option<String> {
        let reply = request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .ok()?;
        if !reply.status().is_success() {
            return None;
        }
        reply.text().await.ok()
    }

    /// Waits until the Nacos API answers a list request, or `timeout` passes.
    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while self.list("bench-ready").await.is_none() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the Nacos API at {} did not answer within {timeout:?}",
                self.base
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}

/// A distinct `ip:port` for every instance id (10.0.0.0/8, ports from 1024).
fn address(id: u64) -> (String, u64) {
    let ip = format!("10.{}.{}.{}", (id >> 16) & 255, (id >> 8) & 255, id & 255);
    (ip, 1024 + (id >> 24))
}

fn next_ids(n: u64) -> u64 {
    NEXT_INSTANCE.fetch_add(n, Ordering::Relaxed)
}

/// Registrations of new, distinct instances spread over 100 services.
pub async fn register(target: &Target, clients: usize, duration: Duration) -> anyhow::Result<Rate> {
    let target = target.clone();
    Ok(closed_loop(clients, duration, move |client, _| {
        let target = target.clone();
        async move {
            let service = format!("bench-register-{}", client % 100);
            target.register(&service, next_ids(1)).await
        }
    })
    .await)
}

/// The instances the heartbeat workload beats for: `BEATS_PER_CLIENT` per
/// client, each client in a service of its own.
#[derive(Clone, Copy)]
pub struct BeatSet {
    first_id: u64,
    clients: usize,
}

/// Registers the instances of the heartbeat workload.
pub async fn prepare_beats(target: &Target, clients: usize) -> anyhow::Result<BeatSet> {
    let first_id = next_ids(clients as u64 * BEATS_PER_CLIENT);
    let set = BeatSet { first_id, clients };
    for client in 0..clients {
        for k in 0..BEATS_PER_CLIENT {
            let id = set.id(client, k);
            anyhow::ensure!(
                target.register(&beat_service(client), id).await,
                "{} did not register beat instance {id}",
                target.base
            );
        }
    }
    Ok(set)
}

impl BeatSet {
    fn id(&self, client: usize, k: u64) -> u64 {
        beat_id(self.first_id, client, k)
    }
}

fn beat_id(first_id: u64, client: usize, k: u64) -> u64 {
    first_id + client as u64 * BEATS_PER_CLIENT + k
}

fn beat_service(client: usize) -> String {
    format!("bench-beat-{client}")
}

/// Beats for registered instances, each client cycling through its own.
pub async fn heartbeat(target: &Target, set: &BeatSet, duration: Duration) -> anyhow::Result<Rate> {
    let target = target.clone();
    let first_id = set.first_id;
    Ok(closed_loop(set.clients, duration, move |client, n| {
        let target = target.clone();
        async move {
            let id = beat_id(first_id, client, n % BEATS_PER_CLIENT);
            target.beat(&beat_service(client), id).await
        }
    })
    .await)
}

/// The service the list workload reads.
const LIST_SERVICE: &str = "bench-list";

/// Registers the `LISTED_INSTANCES` instances of the list workload and
/// The heartbeat row of a comparison: `clients` clients beating their own
/// instances as fast as they are answered, alternating between `targets`
/// (`names` in the same order), the median of `repeats` runs.
pub async fn heartbeat_row(
    targets: &[Target],
    names: &[&str],
    clients: usize,
    repeats: usize,
    duration: Duration,
) -> anyhow::Result<Row> {
    let mut prepared = Vec::new();
    for target in targets {
        prepared.push((target.clone(), prepare_beats(target, clients).await?));
    }
    let mut row = Row::new(
        format!("heartbeat, {clients} clients"),
        "ops/s",
        Better::Higher,
    );
    alternate(&mut row, &prepared, names, repeats, |(t, set)| async move {
        heartbeat(&t, &set, duration).await
    })
    .await?;
    Ok(row)
}

/// checks that a healthy-only list returns all of them.
pub async fn prepare_list(target: &Target) -> anyhow::Result<()> {
    let first = next_ids(LISTED_INSTANCES);
    for id in first..first + LISTED_INSTANCES {
        anyhow::ensure!(
            target.register(LIST_SERVICE, id).await,
            "{} did not register list instance {id}",
            target.base
        );
    }
    let reply = target
        .list(LIST_SERVICE)
        .await
        .with_context(|| format!("{} did not list {LIST_SERVICE}", target.base))?;
    let json: serde_json::Value = serde_json::from_str(&reply)?;
    let hosts = json["hosts"].as_array().map_or(0, Vec::len);
    anyhow::ensure!(
        hosts as u64 == LISTED_INSTANCES,
        "{} lists {hosts} healthy instances of {LIST_SERVICE}, not {LISTED_INSTANCES}",
        target.base
    );
    Ok(())
}

/// Healthy-only instance lists of the 10-instance service.
pub async fn list(target: &Target, clients: usize, duration: Duration) -> anyhow::Result<Rate> {
    let target = target.clone();
    Ok(closed_loop(clients, duration, move |_, _| {
        let target = target.clone();
        async move {
            target
                .list(LIST_SERVICE)
                .await
                .is_some_and(|reply| reply.contains("\"hosts\""))
        }
    })
    .await)
}

/// The outcome of registering many instances as fast as possible.
pub struct BulkRegistration {
    pub registered: u64,
    pub failed: u64,
    pub took: Duration,
}

/// Registers `instances` new instances spread evenly over `services`
/// services with `clients` concurrent clients, printing progress every 10%.
pub async fn register_many(
    target: &Target,
    instances: u64,
    services: u64,
    clients: usize,
) -> BulkRegistration {
    let first = next_ids(instances);
    let cursor = std::sync::Arc::new(AtomicU64::new(0));
    let failed = std::sync::Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let step = (instances / 10).max(1);
    let tasks = (0..clients).map(|_| {
        let (target, cursor, failed) = (target.clone(), cursor.clone(), failed.clone());
        tokio::spawn(async move {
            loop {
                let k = cursor.fetch_add(1, Ordering::Relaxed);
                if k >= instances {
                    break;
                }
                let service = format!("bench-bulk-{}", k % services);
                if !target.register(&service, first + k).await {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                if (k + 1) % step == 0 {
                    eprintln!(
                        "    {}: {} of {instances} registrations sent after {:.1} s",
                        target.base,
                        k + 1,
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        })
    });
    futures::future::join_all(tasks).await;
    let failed = failed.load(Ordering::Relaxed);
    BulkRegistration {
        registered: instances - failed,
        failed,
        took: started.elapsed(),
    }
}
