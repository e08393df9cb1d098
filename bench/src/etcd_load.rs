//! Workloads over the etcd v3 gRPC API. They know only endpoints, so the
//! very same requests go to Sextant and to etcd.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sextant_proto::etcd::etcdserverpb::kv_client::KvClient;
use sextant_proto::etcd::etcdserverpb::lease_client::LeaseClient;
use sextant_proto::etcd::etcdserverpb::watch_client::WatchClient;
use sextant_proto::etcd::etcdserverpb::watch_request::RequestUnion;
use sextant_proto::etcd::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, PutRequest, RangeRequest, WatchCreateRequest,
    WatchRequest,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

use crate::compare_common::closed_loop;

/// Connections per server: enough HTTP/2 connections that one socket is not
/// the bottleneck for hundreds of concurrent clients.
const CHANNELS_PER_ENDPOINT: usize = 4;

/// Throughput and latency of one run.
#[derive(Clone, Debug, Default)]
pub struct Rate {
    pub ops_per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub errors: usize,
}

/// Connections to every endpoint of one system.
#[derive(Clone)]
pub struct Connections {
    channels: Vec<Channel>,
}

impl Connections {
    pub async fn open(endpoints: &[String]) -> anyhow::Result<Self> {
        let mut channels = Vec::new();
        for endpoint in endpoints {
            for _ in 0..CHANNELS_PER_ENDPOINT {
                let channel = Endpoint::from_shared(endpoint.clone())?
                    .connect_timeout(Duration::from_secs(5))
                    .tcp_nodelay(true)
                    .connect()
                    .await?;
                channels.push(channel);
            }
        }
        Ok(Self { channels })
    }

    /// The channel client `i` uses: clients spread over every server.
    fn channel(&self, i: usize) -> Channel {
        // Round-robin over servers first, then over each server's channels.
        let servers = self.channels.len() / CHANNELS_PER_ENDPOINT;
        let server = i % servers;
        let lane = (i / servers) % CHANNELS_PER_ENDPOINT;
        self.channels[server * CHANNELS_PER_ENDPOINT + lane].clone()
    }
}

pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

/// Puts of `value_bytes`-byte values to distinct keys.
pub async fn put(
    conns: &Connections,
    clients: usize,
    duration: Duration,
    value_bytes: usize,
) -> Rate {
    let value = vec![b'x'; value_bytes];
    let conns = conns.clone();
    closed_loop(clients, duration, move |client, n| {
        let mut kv = KvClient::new(conns.channel(client));
        let value = value.clone();
        async move {
            kv.put(PutRequest {
                key: format!("bench/put/{client}/{n}").into_bytes(),
                value,
                ..Default::default()
            })
            .await
            .is_ok()
        }
    })
    .await
}

/// Gets of one key: linearizable (etcd's default) or serializable.
pub async fn range(
    conns: &Connections,
    clients: usize,
    duration: Duration,
    serializable: bool,
) -> Rate {
    let mut kv = KvClient::new(conns.channel(0));
    let _ = kv
        .put(PutRequest {
            key: b"bench/read".to_vec(),
            value: vec![b'r'; 256],
            ..Default::default()
        })
        .await;
    let conns = conns.clone();
    closed_loop(clients, duration, move |client, _| {
        let mut kv = KvClient::new(conns.channel(client));
        async move {
            kv.range(RangeRequest {
                key: b"bench/read".to_vec(),
                serializable,
                ..Default::default()
            })
            .await
            .is_ok_and(|r| r.into_inner().kvs.len() == 1)
        }
    })
    .await
}

/// Lease grants (each one a replicated write).
pub async fn lease_grant(conns: &Connections, clients: usize, duration: Duration) -> Rate {
    let conns = conns.clone();
    closed_loop(clients, duration, move |client, _| {
        let mut lease = LeaseClient::new(conns.channel(client));
        async move {
            lease
                .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
                .await
                .is_ok()
        }
    })
    .await
}

/// Keep-alives: one lease and one keep-alive stream per client, each
/// sending the next request as soon as the previous one is answered.
pub async fn keep_alive(
    conns: &Connections,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Rate> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for client in 0..clients {
        let channel = conns.channel(client);
        tasks.push(tokio::spawn(async move {
            let mut lease = LeaseClient::new(channel);
            let id = lease
                .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
                .await?
                .into_inner()
                .id;
            let (tx, rx) = mpsc::channel(1);
            // etcd sends the response headers with the first answer, so
            // the call completes only once a request is on its way.
            let mut t = Instant::now();
            tx.send(LeaseKeepAliveRequest { id }).await?;
            let mut answers = lease
                .lease_keep_alive(ReceiverStream::new(rx))
                .await?
                .into_inner();
            let mut latencies = Vec::new();
            loop {
                let answer = tokio::time::timeout(Duration::from_secs(10), answers.message()).await;
                match answer?? {
                    Some(answer) if answer.ttl > 0 => latencies.push(t.elapsed()),
                    _ => anyhow::bail!("keep-alive of lease {id} refused"),
                }
                if Instant::now() >= deadline {
                    break;
                }
                t = Instant::now();
                tx.send(LeaseKeepAliveRequest { id }).await?;
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for result in futures::future::join_all(tasks).await {
        match result {
            Ok(Ok(l)) => latencies.extend(l),
            _ => errors += 1,
        }
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Ok(Rate {
        ops_per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: quantile(&latencies, 0.50),
        p99: quantile(&latencies, 0.99),
        errors,
    })
}

/// Event latency (from the put being sent to each watcher receiving it) at
/// `rate` puts per second to one key watched by `watchers` watchers spread
/// over streams on every server. Returns (p50, p99, events received).
pub async fn watch_latency(
    conns: &Connections,
    watchers: usize,
    rate: u32,
    duration: Duration,
) -> anyhow::Result<(Duration, Duration, usize)> {
    const WATCHERS_PER_STREAM: usize = 100;
    let base = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let streams = watchers.div_ceil(WATCHERS_PER_STREAM);
    let key = format!("bench/watch/{}", base.elapsed().as_nanos()).into_bytes();
    let mut receivers = Vec::new();
    for s in 0..streams {
        let on_stream = WATCHERS_PER_STREAM.min(watchers - s * WATCHERS_PER_STREAM);
        let mut client = WatchClient::new(conns.channel(s));
        let (tx, rx) = mpsc::channel(on_stream + 1);
        for _ in 0..on_stream {
            tx.send(WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                    key: key.clone(),
                    ..Default::default()
                })),
            })
            .await?;
        }
        let mut events = client.watch(ReceiverStream::new(rx)).await?.into_inner();
        // Wait until every watcher on the stream is created.
        let mut created = 0;
        while created < on_stream {
            match events.message().await? {
                Some(r) if r.created => created += 1,
                Some(_) => {}
                None => anyhow::bail!("watch stream closed while creating watchers"),
            }
        }
        let stop = stop.clone();
        receivers.push(tokio::spawn(async move {
            let _keep_open = tx;
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let Ok(Ok(Some(response))) =
                    tokio::time::timeout(Duration::from_millis(200), events.message()).await
                else {
                    continue;
                };
                let now = base.elapsed();
                for event in response.events {
                    let Some(kv) = event.kv else { continue };
                    let sent = std::str::from_utf8(&kv.value)
                        .ok()
                        .and_then(|v| v.parse::<u64>().ok());
                    if let Some(sent) = sent {
                        latencies.push(now.saturating_sub(Duration::from_nanos(sent)));
                    }
                }
            }
            latencies
        }));
    }
    let kv = KvClient::new(conns.channel(0));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let writes_until = Instant::now() + duration;
    while Instant::now() < writes_until {
        ticker.tick().await;
        let value = base.elapsed().as_nanos().to_string().into_bytes();
        let mut kv = kv.clone();
        let key = key.clone();
        // Puts overlap, as independent writers' would, so a slow put does
        // not lower the offered rate.
        tokio::spawn(async move {
            let _ = kv
                .put(PutRequest {
                    key,
                    value,
                    ..Default::default()
                })
                .await;
        });
    }
    // Events of the last puts are still on their way; a put's event that
    // takes longer than this counts as lost, not as a latency.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for r in futures::future::join_all(receivers).await {
        latencies.extend(r?);
    }
    latencies.sort();
    Ok((
        quantile(&latencies, 0.5),
        quantile(&latencies, 0.99),
        latencies.len(),
    ))
}

/// How often a new put is sent while none has succeeded since the kill.
const FAILOVER_PROBE_EVERY: Duration = Duration::from_millis(20);

/// Puts through `endpoint` until one succeeds; the time it took. A new put
/// goes out every 20 ms while the earlier ones are still waiting (a server
/// may hold a put through the whole election, or drop it), so the figure is
/// when writes are served again, not when one particular put gave up.
pub async fn first_write_after(endpoint: &str, since: Instant) -> anyhow::Result<Duration> {
    let channel = Endpoint::from_shared(endpoint.to_owned())?
        .connect_timeout(Duration::from_secs(1))
        .connect_lazy();
    let kv = KvClient::new(channel);
    let mut attempts = tokio::task::JoinSet::new();
    let mut probe = tokio::time::interval(FAILOVER_PROBE_EVERY);
    loop {
        tokio::select! {
            _ = probe.tick() => {
                anyhow::ensure!(
                    since.elapsed() < Duration::from_secs(60),
                    "no write served 60 s after the leader was killed"
                );
                let mut kv = kv.clone();
                attempts.spawn(async move {
                    let put = kv.put(PutRequest {
                        key: b"bench/failover".to_vec(),
                        value: b"x".to_vec(),
                        ..Default::default()
                    });
                    matches!(tokio::time::timeout(Duration::from_secs(30), put).await, Ok(Ok(_)))
                });
            }
            Some(done) = attempts.join_next() => {
                if matches!(done, Ok(true)) {
                    return Ok(since.elapsed());
                }
            }
        }
    }
}
