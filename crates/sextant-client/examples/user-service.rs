//! An HTTP service that registers itself in Sextant through the SDK.
//!
//! ```text
//! cargo run -p sextant-client --example user-service -- \
//!     --sextant 127.0.0.1:2379 [--port 0] [--id user-1] [--ttl 3s] [--http-check]
//! ```
//!
//! It serves `GET /health` (for an HTTP check) and `GET /hello` (answers
//! with its instance id), registers with a TTL renewed over the SDK's
//! keep-alive stream (and, with `--http-check`, an HTTP check of `/health`),
//! prints `listening on ADDR` and `registered ID`, and deregisters on
//! Ctrl-C or SIGTERM before exiting.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use axum::routing::get;
use axum::Router;
use sextant_client::{ClientBuilder, HealthCheck, Instance};
use tokio::net::TcpListener;

struct Args {
    sextant: Vec<String>,
    port: u16,
    id: Option<String>,
    ttl: Duration,
    http_check: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        sextant: vec![String::from("127.0.0.1:2379")],
        port: 0,
        id: None,
        ttl: Duration::from_secs(3),
        http_check: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--sextant" => args.sextant = value()?.split(',').map(str::to_owned).collect(),
            "--port" => args.port = value()?.parse().context("--port")?,
            "--id" => args.id = Some(value()?),
            "--ttl" => args.ttl = parse_duration(&value()?)?,
            "--http-check" => args.http_check = true,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

/// `250ms`, `3s` or a bare number of milliseconds.
fn parse_duration(text: &str) -> Result<Duration> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "ms"),
    };
    let number: u64 = number
        .parse()
        .with_context(|| format!("duration {text:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "s" => Ok(Duration::from_secs(number)),
        _ => bail!("duration {text:?}: use ms or s"),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = parse_args()?;

    let listener = TcpListener::bind(("127.0.0.1", args.port)).await?;
    let addr = listener.local_addr()?;
    let mut instance = Instance::new("user-service", addr.ip().to_string(), addr.port())
        .ttl(args.ttl)
        // Gone from the catalog one TTL after it stops renewing: a crashed
        // process is removed, not left critical forever.
        .deregister_critical_after(args.ttl)
        .meta("version", env!("CARGO_PKG_VERSION"));
    if let Some(id) = &args.id {
        instance = instance.id(id.clone());
    }
    if args.http_check {
        let url = format!("http://{addr}/health");
        instance = instance.check(
            HealthCheck::http(url, Duration::from_secs(1)).timeout(Duration::from_millis(500)),
        );
    }
    let id = instance.instance_id();

    let hello_id = id.clone();
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/hello", get(move || async move { hello_id }));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    println!("listening on {addr}");

    let client = ClientBuilder::new(args.sextant).connect().await?;
    let registration = client.register(instance).await?;
    println!("registered {id}");

    shutdown_signal().await;
    registration.shutdown().await?;
    println!("deregistered {id}");
    server.abort();
    Ok(())
}

async fn shutdown_signal() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(err) => {
                eprintln!("cannot listen for SIGTERM ({err}); Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
