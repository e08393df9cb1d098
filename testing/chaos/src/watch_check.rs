//! etcd watch streams under faults: ordered, unique, gap-free, resumable.
//!
//! During the load one watcher follows the key prefix through random
//! servers, dropping its stream every few seconds (and whenever a server
//! dies, pauses or is cut off) and resuming on another server from the
//! revision after the last event it saw. Afterwards a fresh watch from
//! revision 1 on the healed cluster, read up to a sentinel key written after
//! the load, gives the whole event history. What the watcher saw under
//! faults must be exactly the start of that history: the same events in the
//! same order, none missing, none repeated.

use std::time::{Duration, Instant};

use etcd_client::{EventType, WatchOptions, WatchResponse};
use rand::rngs::StdRng;
use rand::Rng;
use tokio::sync::watch;

use crate::workload::Endpoint;

/// The prefix every KV key of the load shares.
pub const PREFIX: &str = "chaos/";
/// Written once the load has stopped; the reference watch reads up to it.
const SENTINEL: &str = "chaos/~end";

/// One event as a watcher saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchedEvent {
    pub revision: i64,
    pub key: String,
    pub deleted: bool,
    pub value: Vec<u8>,
}

/// What the watcher saw while the faults ran.
#[derive(Debug, Default)]
pub struct WatchLog {
    pub events: Vec<WatchedEvent>,
    /// Streams opened (the first one and every resumption).
    pub streams: u64,
    /// Order or uniqueness violations noticed as events arrived.
    pub problems: Vec<String>,
}

/// Follows the prefix until `stop` turns true, resuming after every break.
pub async fn follow(
    endpoints: Vec<Endpoint>,
    mut rng: StdRng,
    stop: watch::Receiver<bool>,
    timeout: Duration,
) -> WatchLog {
    let mut log = WatchLog::default();
    while !*stop.borrow() {
        let server = rng.random_range(0..endpoints.len());
        let session = Duration::from_millis(rng.random_range(2000..6000));
        let next = log.events.last().map_or(1, |e| e.revision + 1);
        let connect = etcd_client::Client::connect(
            [format!("http://{}", endpoints[server].grpc)],
            Some(
                etcd_client::ConnectOptions::new()
                    .with_connect_timeout(timeout)
                    .with_keep_alive(Duration::from_secs(1), timeout),
            ),
        );
        let Ok(Ok(mut client)) = tokio::time::timeout(timeout, connect).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let options = WatchOptions::new().with_prefix().with_start_revision(next);
        let Ok(Ok(mut stream)) =
            tokio::time::timeout(timeout, client.watch(PREFIX, Some(options))).await
        else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        log.streams += 1;
        let until = Instant::now() + session;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || *stop.borrow() {
                break;
            }
            match tokio::time::timeout(left, stream.message()).await {
                Ok(Ok(Some(response))) => {
                    if response.canceled() {
                        if response.compact_revision() > 0 {
                            log.problems.push(format!(
                                "resuming at revision {next} was refused: compacted to {}",
                                response.compact_revision()
                            ));
                        }
                        break;
                    }
                    for event in events_of(&response) {
                        if let Some(last) = log.events.last() {
                            if (event.revision, &event.key) <= (last.revision, &last.key) {
                                log.problems.push(format!(
                                    "event at revision {} on {} arrived after revision {} on {}",
                                    event.revision, event.key, last.revision, last.key
                                ));
                            }
                        }
                        log.events.push(event);
                    }
                }
                // The stream broke or the session is over: resume elsewhere.
                _ => break,
            }
        }
    }
    log
}

fn events_of(response: &WatchResponse) -> Vec<WatchedEvent> {
    response
        .events()
        .iter()
        .filter_map(|event| {
            let kv = event.kv()?;
            Some(WatchedEvent {
                revision: kv.mod_revision(),
                key: String::from_utf8_lossy(kv.key()).into_owned(),
                deleted: event.event_type() == EventType::Delete,
                value: kv.value().to_vec(),
            })
        })
        .collect()
}

/// Writes the sentinel through `endpoint`, then watches the prefix from
/// revision 1 up to it: the reference history (without the sentinel).
pub async fn reference(
    endpoint: Endpoint,
    deadline: Duration,
) -> anyhow::Result<Vec<WatchedEvent>> {
    let mut events = Vec::new();
    let read = async {
        let mut client =
            etcd_client::Client::connect([format!("http://{}", endpoint.grpc)], None).await?;
        client.put(SENTINEL, "end", None).await?;
        let options = WatchOptions::new().with_prefix().with_start_revision(1);
        let mut stream = client.watch(PREFIX, Some(options)).await?;
        while let Some(response) = stream.message().await? {
            anyhow::ensure!(
                !response.canceled(),
                "the reference watch was canceled: {}",
                response.cancel_reason()
            );
            for event in events_of(&response) {
                if event.key == SENTINEL {
                    return Ok(());
                }
                events.push(event);
            }
        }
        anyhow::bail!("the reference watch ended before the sentinel")
    };
    tokio::time::timeout(deadline, read)
        .await
        .map_err(|_| anyhow::anyhow!("no sentinel on the reference watch within {deadline:?}"))??;
    Ok(events)
}

/// Compares what the watcher saw with the reference history; returns the
/// anomalies in words.
pub fn compare(log: &WatchLog, reference: &[WatchedEvent]) -> Vec<String> {
    let mut anomalies = log.problems.clone();
    for (i, seen) in log.events.iter().enumerate() {
        match reference.get(i) {
            Some(expected) if expected == seen => {}
            Some(expected) => {
                anomalies.push(format!(
                    "event #{i} differs from the history: saw revision {} on {} (deleted: {}), expected revision {} on {} (deleted: {})",
                    seen.revision, seen.key, seen.deleted, expected.revision, expected.key, expected.deleted
                ));
                break;
            }
            None => {
                anomalies.push(format!(
                    "saw {} events, the history has only {}",
                    log.events.len(),
                    reference.len()
                ));
                break;
            }
        }
    }
    anomalies
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(revision: i64) -> WatchedEvent {
        WatchedEvent {
            revision,
            key: "chaos/k0".to_owned(),
            deleted: false,
            value: revision.to_string().into_bytes(),
        }
    }

    #[test]
    fn a_prefix_of_the_history_is_fine() {
        let log = WatchLog {
            events: vec![event(2), event(5)],
            ..WatchLog::default()
        };
        assert!(compare(&log, &[event(2), event(5), event(9)]).is_empty());
    }

    #[test]
    fn a_gap_or_a_repeat_is_an_anomaly() {
        let gap = WatchLog {
            events: vec![event(2), event(9)],
            ..WatchLog::default()
        };
        assert_eq!(compare(&gap, &[event(2), event(5), event(9)]).len(), 1);
        let repeat = WatchLog {
            events: vec![event(2), event(2)],
            ..WatchLog::default()
        };
        assert_eq!(compare(&repeat, &[event(2), event(5)]).len(), 1);
    }
}
