//! The replicated core under load: a 3-server cluster on loopback, KV writes
//! (Consul's `PUT /v1/kv`) from many concurrent clients spread over all servers,
//! then the time from SIGKILL of the leader until a write succeeds again.

use std::path::Path;
use std::time::{Duration, Instant};

use clap::Args;
use testkit::{Cluster, ClusterOpts};

use crate::report::{table, Section};

#[derive(Args)]
pub struct CoreArgs {
    /// Concurrent clients, one workload per value.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    clients: Vec<usize>,
    /// How long each run of a workload lasts.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Runs per workload; the median run is reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Size of each written value.
    #[arg(long, default_value_t = 256)]
    value_bytes: usize,
    /// Leader kills; the median time until writes are served again is reported.
    #[arg(long, default_value_t = 10)]
    failover_rounds: usize,
}

/// One run of a write workload.
struct WriteRun {
    ops_per_sec: f64,
    p50: Duration,
    p99: Duration,
    errors: usize,
}

pub async fn run(bin: &Path, args: CoreArgs) -> anyhow::Result<Section> {
    let mut cluster = Cluster::start(bin, 3, ClusterOpts::default()).await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()?;
    let urls: Vec<String> = cluster
        .servers()
        .iter()
        .map(|s| format!("http://{}/v1/kv/bench", s.http_addr()))
        .collect();

    let mut rows = Vec::new();
    for &clients in &args.clients {
        let mut runs = Vec::new();
        for repeat in 0..args.repeats {
            let run = write_load(&http, &urls, clients, args.duration, args.value_bytes).await;
            eprintln!(
                "writes, {clients} clients, run {}/{}: {:.0} ops/s, p50 {:?}, p99 {:?}, {} errors",
                repeat + 1,
                args.repeats,
                run.ops_per_sec,
                run.p50,
                run.p99,
                run.errors
            );
            runs.push(run);
        }
        runs.sort_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec));
        let median = &runs[runs.len() / 2];
        rows.push(vec![
            format!("KV put, {} B values, {clients} clients", args.value_bytes),
            format!("{:.0} writes/s", median.ops_per_sec),
            format!("{:.1} ms / {:.1} ms", ms(median.p50), ms(median.p99)),
        ]);
    }

    let mut failovers = Vec::new();
    for round in 0..args.failover_rounds {
        let took = failover(&mut cluster, &http).await?;
        eprintln!("failover {}/{}: {took:?}", round + 1, args.failover_rounds);
        failovers.push(took);
    }
    failovers.sort();
    let median = failovers[failovers.len() / 2];
    rows.push(vec![
        format!(
            "leader SIGKILL → writes served again (median of {})",
            failovers.len()
        ),
        format!("{:.0} ms", ms(median)),
        format!(
            "min {:.0} ms, max {:.0} ms",
            ms(failovers[0]),
            ms(failovers[failovers.len() - 1])
        ),
    ]);

    let markdown = format!(
        "3 servers on loopback (one machine: {}), election timeout 1 s, every write fsync'd by a \
         majority before it is acknowledged; clients spread over all servers (followers forward); \
         {} per run, median of {} runs.\n\n{}",
        crate::machine::describe(),
        humantime::format_duration(args.duration),
        args.repeats,
        table(&["workload", "throughput", "latency p50 / p99"], &rows)
    );
    Ok(Section {
        name: "core",
        markdown,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn write_load(
    http: &reqwest::Client,
    urls: &[String],
    clients: usize,
    duration: Duration,
    value_bytes: usize,
) -> WriteRun {
    let value = vec![b'x'; value_bytes];
    let started = Instant::now();
    let deadline = started + duration;
    let tasks = (0..clients).map(|client| {
        let http = http.clone();
        let url = urls[client % urls.len()].clone();
        let value = value.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            let mut n = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                let sent = http
                    .put(format!("{url}/{client}/{n}"))
                    .body(value.clone())
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => latencies.push(t.elapsed()),
                    _ => errors += 1,
                }
                n += 1;
            }
            (latencies, errors)
        })
    });
    let mut latencies = Vec::new();
    let mut errors = 0;
    for result in futures::future::join_all(tasks).await.into_iter().flatten() {
        latencies.extend(result.0);
        errors += result.1;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    WriteRun {
        ops_per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        errors,
    }
}

/// Kills the leader and measures until a write through another server succeeds.
async fn failover(cluster: &mut Cluster, http: &reqwest::Client) -> anyhow::Result<Duration> {
    let leader = cluster.leader_index().await;
    let other = (0..cluster.len()).find(|&i| i != leader).unwrap_or(0);
    let url = format!(
        "http://{}/v1/kv/bench-failover",
        cluster.server(other).http_addr()
    );
    cluster.server_mut(leader).kill().await;
    let killed = Instant::now();
    if std::env::var_os("SEXTANT_BENCH_DEBUG").is_some() {
        eprintln!(
            "  killed {} at {}, writing through {}",
            cluster.server(leader).name(),
            humantime::format_rfc3339_micros(std::time::SystemTime::now()),
            cluster.server(other).name()
        );
    }
    let mut attempts = 0;
    loop {
        attempts += 1;
        let started = Instant::now();
        let sent = http
            .put(&url)
            .body("x")
            .timeout(Duration::from_secs(15))
            .send()
            .await;
        let outcome = match &sent {
            Ok(r) if r.status().is_success() => break,
            Ok(r) => format!("HTTP {}", r.status()),
            Err(e) => format!("{e}"),
        };
        if std::env::var_os("SEXTANT_BENCH_DEBUG").is_some() {
            eprintln!(
                "  attempt {attempts} at {:?}: {outcome} after {:?}",
                killed.elapsed(),
                started.elapsed()
            );
        }
        anyhow::ensure!(
            killed.elapsed() < Duration::from_secs(60),
            "no leader 60 s after the kill"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = killed.elapsed();
    cluster.restart(&[leader]).await;
    cluster.wait_converged().await;
    // The next round measures one failure, not a second one on top of a
    // server that has not caught up yet.
    cluster.wait_caught_up().await;
    Ok(took)
}
