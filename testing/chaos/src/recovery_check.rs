//! Health checks converge in bounded time once the faults are over.
//!
//! After the load, on the healed cluster, one instance is registered with a
//! TCP check on a port the harness listens on. Its target then stops
//! answering and answers again, and each time the instance must leave, and
//! come back to, the passing instances within what its check promises:
//! the interval times the threshold (`FailuresBeforeCritical`,
//! `SuccessBeforePassing`), plus one interval for the probe's phase, the
//! probe's timeout, and a margin for the status write to commit on a busy
//! two-core machine. A later verdict is an anomaly.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const SERVICE: &str = "chaos-recovery";
const INTERVAL: Duration = Duration::from_millis(500);
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
const SUCCESS_BEFORE_PASSING: u32 = 2;
const FAILURES_BEFORE_CRITICAL: u32 = 2;
/// For the status write to be proposed, committed and applied.
const COMMIT_MARGIN: Duration = Duration::from_secs(2);

/// What the recovery check measured.
#[derive(Debug, Default)]
pub struct Recovery {
    pub to_passing: Duration,
    pub to_critical: Duration,
    pub back_to_passing: Duration,
    pub anomalies: Vec<String>,
}

/// A TCP check target: a listener that accepts and drops connections.
struct Target {
    task: JoinHandle<()>,
}

impl Target {
    async fn listen(addr: SocketAddr) -> anyhow::Result<(Target, SocketAddr)> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr} for the TCP check"))?;
        let bound = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((connection, _)) = listener.accept().await {
                drop(connection);
            }
        });
        Ok((Target { task }, bound))
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        // Aborting the task drops the listener: connections are refused.
        self.task.abort();
    }
}

/// Runs the check against the server whose HTTP API is at `http`; the
/// servers reach the target at `target_ip`.
pub async fn run(http: SocketAddr, target_ip: IpAddr) -> anyhow::Result<Recovery> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let (target, target_addr) = Target::listen(SocketAddr::new(target_ip, 0)).await?;
    let registration = serde_json::json!({
        "ID": SERVICE,
        "Name": SERVICE,
        "Address": target_ip.to_string(),
        "Port": target_addr.port(),
        "Check": {
            "TCP": target_addr.to_string(),
            "Interval": format!("{}ms", INTERVAL.as_millis()),
            "Timeout": format!("{}ms", PROBE_TIMEOUT.as_millis()),
            "SuccessBeforePassing": SUCCESS_BEFORE_PASSING,
            "FailuresBeforeCritical": FAILURES_BEFORE_CRITICAL,
        },
    });
    // Checks start critical: passing after SuccessBeforePassing probes.
    let to_passing_bound = INTERVAL * (SUCCESS_BEFORE_PASSING + 1) + PROBE_TIMEOUT + COMMIT_MARGIN;
    let to_critical_bound =
        INTERVAL * (FAILURES_BEFORE_CRITICAL + 1) + PROBE_TIMEOUT + COMMIT_MARGIN;
    // Beyond the bound the verdict is late; give up well after it.
    let give_up = to_passing_bound.max(to_critical_bound) * 4;

    // Retried: the cluster was healed a moment ago.
    let started = Instant::now();
    let registered = loop {
        let sent = client
            .put(format!("http://{http}/v1/agent/service/register"))
            .json(&registration)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        match sent {
            Ok(_) => break Instant::now(),
            Err(err) if started.elapsed() >= give_up => {
                return Err(err).context("registering the recovery check's instance")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };

    let to_passing = until_listed(&client, http, true, registered, give_up).await;
    let stopped = Instant::now();
    drop(target);
    let to_critical = until_listed(&client, http, false, stopped, give_up).await;
    let (target, _) = Target::listen(target_addr).await?;
    let restarted = Instant::now();
    let back_to_passing = until_listed(&client, http, true, restarted, give_up).await;
    drop(target);

    let anomalies = [
        ("registered: passing", to_passing, to_passing_bound),
        ("target down: critical", to_critical, to_critical_bound),
        ("target back: passing", back_to_passing, to_passing_bound),
    ]
    .into_iter()
    .filter(|(_, took, bound)| took > bound)
    .map(|(what, took, bound)| format!("{what} after {took:?}, more than its bound {bound:?}"))
    .collect();
    Ok(Recovery {
        to_passing,
        to_critical,
        back_to_passing,
        anomalies,
    })
}

/// Polls the passing instances until the instance is (or is no longer)
/// among them; returns how long that took from `since`, or `give_up` if it
/// never happened. A failed poll is polled again: it only makes the
/// verdict later.
async fn until_listed(
    client: &reqwest::Client,
    http: SocketAddr,
    listed: bool,
    since: Instant,
    give_up: Duration,
) -> Duration {
    let url = format!("http://{http}/v1/health/service/{SERVICE}?passing");
    loop {
        if let Ok(entries) = passing(client, &url).await {
            if entries.is_empty() != listed {
                return since.elapsed();
            }
        }
        if since.elapsed() >= give_up {
            return since.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn passing(client: &reqwest::Client, url: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let body = client
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    serde_json::from_str(&body).with_context(|| format!("decoding {body}"))
}
