//! Calls user-service through the SDK's balancer and circuit breakers and
//! prints, periodically, how many calls each instance answered and how many
//! failed.
//!
//! ```text
//! cargo run -p sextant-client --example consumer -- \
//!     --sextant 127.0.0.1:2379 [--interval-ms 20] [--report-ms 1000]
//! ```
//!
//! Each report is one line:
//! `report ok=N failed=N view=N | ID ok=N failed=N BREAKER ...`

use std::time::Duration;

use anyhow::{bail, Context, Result};
use sextant_client::{BalancerConfig, BreakerState, ClientBuilder, LoadBalancer, Strategy};

struct Args {
    sextant: Vec<String>,
    interval: Duration,
    report: Duration,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        sextant: vec![String::from("127.0.0.1:2379")],
        interval: Duration::from_millis(20),
        report: Duration::from_secs(1),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--sextant" => args.sextant = value()?.split(',').map(str::to_owned).collect(),
            "--interval-ms" => args.interval = Duration::from_millis(value()?.parse()?),
            "--report-ms" => args.report = Duration::from_millis(value()?.parse()?),
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = parse_args()?;
    let client = ClientBuilder::new(args.sextant).connect().await?;
    let users = client.discover("user-service").await?;
    let balancer = LoadBalancer::new(
        users,
        BalancerConfig {
            strategy: Strategy::RoundRobin,
            per_try_timeout: Some(Duration::from_secs(1)),
            ..BalancerConfig::default()
        },
    );
    let http = reqwest::Client::new();
    let (mut ok, mut failed) = (0u64, 0u64);
    let mut calls = tokio::time::interval(args.interval);
    let mut reports = tokio::time::interval(args.report);
    loop {
        tokio::select! {
            _ = calls.tick() => {
                let result = balancer
                    .call(None, |endpoint| {
                        let request = http.get(format!("{}/hello", endpoint.http_uri()));
                        async move { request.send().await?.error_for_status()?.text().await }
                    })
                    .await;
                match result {
                    Ok(_) => ok += 1,
                    Err(err) => {
                        failed += 1;
                        eprintln!("call failed: {err}");
                    }
                }
            }
            _ = reports.tick() => {
                let mut line = format!("report ok={ok} failed={failed} view={} |", balancer.discovery().endpoints().len());
                for s in balancer.stats() {
                    let breaker = match s.breaker {
                        BreakerState::Closed => "closed",
                        BreakerState::Open { .. } => "open",
                        BreakerState::HalfOpen => "half-open",
                    };
                    line.push_str(&format!(" {} ok={} failed={} {breaker}", s.endpoint.id, s.successes, s.failures));
                }
                println!("{line}");
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
