//! Watch efficiency: many clients blocked on one service, one change.
//!
//! Starts a real `sextant agent --dev`, registers `services × instances`
//! service instances, parks `queries` concurrent blocking queries on
//! `/v1/health/service/<one>`, writes to *other* services (none of the
//! parked queries may wake), then makes one change to the watched service
//! and measures how long each query took to return, and the server's CPU
//! time meanwhile.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use futures::stream::{self, StreamExt};
use testkit::Server;

use crate::report::{table, Section};

#[derive(Args)]
pub struct BlockingArgs {
    /// Concurrent blocking queries on the watched service.
    #[arg(long, default_value_t = 10_000)]
    queries: usize,
    /// Services registered.
    #[arg(long, default_value_t = 1_000)]
    services: usize,
    /// Instances per service.
    #[arg(long, default_value_t = 10)]
    instances: usize,
    /// Registrations in flight at once.
    #[arg(long, default_value_t = 64)]
    register_concurrency: usize,
    /// Writes to other services while the queries are parked.
    #[arg(long, default_value_t = 100)]
    unrelated_writes: usize,
}

/// CPU time (user + system) the process has used, from /proc.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at ")".
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // Linux reports clock ticks of 1/100 s on every common configuration.
    Some(Duration::from_millis((utime + stime) * 10))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

pub async fn run(bin: &Path, args: BlockingArgs) -> anyhow::Result<Section> {
    let server = Server::start_dev(bin).await;
    let pid = server
        .pid()
        .ok_or_else(|| anyhow::anyhow!("the agent has no pid"))?;
    let base = format!("http://{}", server.http_addr());
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.queries + 64)
        .timeout(Duration::from_secs(600))
        .build()?;
    testkit::wait_for("a leader", Duration::from_secs(30), || async {
        match server.http().status_leader().await {
            Ok(l) if !l.is_empty() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // 1. Registrations.
    let total = args.services * args.instances;
    let started = Instant::now();
    let failures = AtomicUsize::new(0);
    stream::iter(0..total)
        .for_each_concurrent(args.register_concurrency, |n| {
            let (service, instance) = (n / args.instances, n % args.instances);
            let body = format!(
                r#"{{"Name":"svc-{service}","ID":"svc-{service}-{instance}","Port":{},"Check":{{"TTL":"1h","Status":"passing"}}}}"#,
                10_000 + instance
            );
            let http = &http;
            let base = &base;
            let failures = &failures;
            async move {
                let ok = http
                    .put(format!("{base}/v1/agent/service/register"))
                    .body(body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
        .await;
    let register_time = started.elapsed();
    let register_failures = failures.load(Ordering::Relaxed);
    eprintln!("registered {total} instances in {register_time:?} ({register_failures} failures)");

    // 2. Park the blocking queries.
    let watched = "svc-0";
    let url = format!("{base}/v1/health/service/{watched}");
    let index: u64 = http
        .get(&url)
        .send()
        .await?
        .headers()
        .get("X-Consul-Index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no X-Consul-Index on {url}"))?;
    let returned = Arc::new(AtomicUsize::new(0));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<(Instant, bool)>(args.queries);
    let mut tasks = Vec::with_capacity(args.queries);
    for _ in 0..args.queries {
        let http = http.clone();
        let url = format!("{url}?index={index}&wait=5m");
        let done = done_tx.clone();
        let returned = returned.clone();
        tasks.push(tokio::spawn(async move {
            let ok = match http.get(&url).send().await {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            };
            returned.fetch_add(1, Ordering::Relaxed);
            let _ = done.send((Instant::now(), ok)).await;
        }));
    }
    drop(done_tx);
    // A benchmark, not a test: give every request time to reach the server
    // and park, then check none came back on its own.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let parked_early = returned.load(Ordering::Relaxed);

    // 3. Writes elsewhere must wake nobody.
    for n in 0..args.unrelated_writes {
        let service = 1 + n % (args.services.max(2) - 1);
        let check = format!("service:svc-{service}-0");
        let status = if n % 2 == 0 { "warn" } else { "pass" };
        http.put(format!("{base}/v1/agent/check/{status}/{check}"))
            .send()
            .await?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let woken_by_unrelated = returned.load(Ordering::Relaxed) - parked_early;

    // 4. One change to the watched service.
    let cpu_before = cpu_time(pid);
    let change_at = Instant::now();
    http.put(format!("{base}/v1/agent/check/warn/service:svc-0-0"))
        .send()
        .await?;
    let mut latencies = Vec::with_capacity(args.queries);
    let mut errors = 0usize;
    while let Some((at, ok)) = done_rx.recv().await {
        if !ok {
            errors += 1;
        }
        latencies.push(at.saturating_duration_since(change_at));
    }
    let all_returned = change_at.elapsed();
    let cpu_after = cpu_time(pid);
    for task in tasks {
        let _ = task.await;
    }
    latencies.sort_unstable();
    let cpu = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) => format!("{:.0} ms", (b.saturating_sub(a)).as_secs_f64() * 1000.0),
        _ => "n/a".into(),
    };
    let p50 = percentile(&latencies, 0.50);
    let p99 = percentile(&latencies, 0.99);
    eprintln!(
        "{} queries: p50 {p50:?}, p99 {p99:?}, all returned after {all_returned:?}, server CPU {cpu}, {errors} errors",
        args.queries
    );

    let rows = vec![
        vec![
            "instances registered".into(),
            format!(
                "{total} ({} services × {}) in {:.1} s ({:.0}/s, {register_failures} failed)",
                args.services,
                args.instances,
                register_time.as_secs_f64(),
                total as f64 / register_time.as_secs_f64().max(1e-9)
            ),
        ],
        vec![
            "blocking queries parked".into(),
            format!("{} on /v1/health/service/{watched}", args.queries),
        ],
        vec![
            "woken by writes to other services".into(),
            format!(
                "{woken_by_unrelated} (after {} writes)",
                args.unrelated_writes
            ),
        ],
        vec!["one change → returned, p50".into(), ms(p50)],
        vec!["one change → returned, p99".into(), ms(p99)],
        vec!["one change → all returned".into(), ms(all_returned)],
        vec!["server CPU from change to all returned".into(), cpu],
        vec!["errors".into(), (errors + parked_early).to_string()],
    ];
    let markdown = format!(
        "Blocking queries on one service (`sextant-bench blocking-queries`, dev agent on loopback):\n\n{}",
        table(&["measure", "result"], &rows)
    );
    Ok(Section {
        name: "blocking-queries",
        markdown,
    })
}
