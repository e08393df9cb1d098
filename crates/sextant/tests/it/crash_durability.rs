//! Every acknowledged write survives SIGKILL of every server in the middle of
//! a concurrent write load — with the `power-loss` failpoint, which makes the
//! kill a power cut that loses everything not fsynced — and nothing appears
//! that was never written.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use testkit::{compare_kv, test_rng, Cluster, ClusterOpts, Consistency, HttpClient, ServerOpts};
use tokio::task::JoinSet;

const BIN: &str = env!("CARGO_BIN_EXE_sextant");

const WRITERS: usize = 8;
/// Acknowledged writes to reach before the crash.
const ACKED_BEFORE_CRASH: usize = 300;

/// What one writer saw: writes acknowledged with `true`, and writes whose
/// outcome is unknown (an error, a timeout, or `false`), which may or may not
/// have happened.
#[derive(Default)]
struct WriterLog {
    acked: Vec<(String, Vec<u8>)>,
    maybe: Vec<(String, Vec<u8>)>,
}

/// Writes unique keys with random binary values until `stop` is set.
async fn writer(
    http: HttpClient,
    prefix: String,
    mut rng: StdRng,
    acked_total: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> WriterLog {
    let mut log = WriterLog::default();
    let mut seq = 0u32;
    while !stop.load(Ordering::SeqCst) {
        let key = format!("{prefix}/{seq:06}");
        let len = rng.random_range(1..=256);
        let value: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        match http.kv_put(&key, value.clone()).await {
            Ok(true) => {
                log.acked.push((key, value));
                acked_total.fetch_add(1, Ordering::SeqCst);
            }
            Ok(false) | Err(_) => log.maybe.push((key, value)),
        }
        seq += 1;
    }
    log
}

/// Violations of "every acknowledged write is stored with its value, and
/// nothing else but writes of unknown outcome", and how many of those are stored.
fn check(
    acked: &BTreeMap<String, Vec<u8>>,
    maybe: &BTreeMap<String, Vec<u8>>,
    stored: &BTreeMap<String, Vec<u8>>,
) -> (Vec<String>, usize) {
    let mut failures = Vec::new();
    for (key, value) in acked {
        match stored.get(key) {
            None => failures.push(format!("acknowledged {key} is missing")),
            Some(v) if v != value => failures.push(format!("acknowledged {key} has another value")),
            Some(_) => {}
        }
    }
    let mut maybe_present = 0;
    for (key, value) in stored {
        if acked.contains_key(key) {
            continue;
        }
        match maybe.get(key) {
            Some(sent) if sent == value => maybe_present += 1,
            Some(_) => failures.push(format!("unacknowledged {key} has a value never sent")),
            None => failures.push(format!("{key} was never written")),
        }
    }
    (failures, maybe_present)
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_sigkill_of_every_server() {
    let mut rng = test_rng("acknowledged_writes_survive_sigkill_of_every_server");
    // As a power cut: on restart each server loses what it never fsynced.
    let opts = ClusterOpts {
        server: ServerOpts {
            extra_args: vec!["--failpoints".to_owned(), "power-loss".to_owned()],
            ..ServerOpts::default()
        },
        ..ClusterOpts::default()
    };
    let mut cluster = Cluster::start(BIN, 3, opts).await;
    let prefix = format!("crash/{:08x}", rng.random::<u32>());

    let acked_total = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = JoinSet::new();
    for w in 0..WRITERS {
        let server = cluster.server(w % cluster.len());
        writers.spawn(writer(
            server.http().clone(),
            format!("{prefix}/w{w}"),
            StdRng::seed_from_u64(rng.random()),
            acked_total.clone(),
            stop.clone(),
        ));
    }

    let what = format!("the load to get {ACKED_BEFORE_CRASH} writes acknowledged");
    cluster
        .wait_for(&what, Duration::from_secs(60), || async {
            let acked = acked_total.load(Ordering::SeqCst);
            if acked >= ACKED_BEFORE_CRASH {
                Ok(())
            } else {
                Err(format!("{acked} acknowledged"))
            }
        })
        .await;
    // Writers start no new request from now on, but the ones in flight are
    // cut by the SIGKILLs that follow within microseconds.
    stop.store(true, Ordering::SeqCst);
    cluster.kill_all().await;

    let mut acked = BTreeMap::new();
    let mut maybe = BTreeMap::new();
    while let Some(log) = writers.join_next().await {
        let log = log.expect("writer task panicked");
        acked.extend(log.acked);
        maybe.extend(log.maybe);
    }

    cluster.restart(&[0, 1, 2]).await;
    let leader = cluster.wait_converged().await;
    let stored = cluster
        .server(leader)
        .http()
        .kv_map(&prefix, Consistency::Consistent)
        .await
        .expect("reading back after the restart");
    let (failures, maybe_present) = check(&acked, &maybe, &stored);
    println!(
        "crash: {} acknowledged, {} unknown outcome ({} present after restart, {} absent), {} keys stored",
        acked.len(),
        maybe.len(),
        maybe_present,
        maybe.len() - maybe_present,
        stored.len()
    );
    if !failures.is_empty() {
        // Tell a read that misses committed entries from a lost write: do
        // the missing keys show up a little later?
        let state = cluster.describe().await;
        let mut later = String::from("they never appeared within 10 s (lost writes)");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            let reread = cluster
                .server(leader)
                .http()
                .kv_map(&prefix, Consistency::Consistent)
                .await
                .unwrap_or_default();
            if check(&acked, &maybe, &reread).0.is_empty() {
                later = format!(
                    "a consistent read {:?} later had them all (the first read missed committed writes)",
                    start.elapsed()
                );
                break;
            }
            tokio::time::sleep(testkit::POLL_INTERVAL).await;
        }
        panic!(
            "{} durability violations; {later}; first ones: {:#?}\nright after the read:\n{state}",
            failures.len(),
            &failures[..failures.len().min(10)]
        );
    }

    // Every replica converges on the same data.
    for server in cluster.servers() {
        let what = format!(
            "{} to hold the same {} keys (stale read)",
            server.name(),
            stored.len()
        );
        cluster
            .wait_for(&what, Duration::from_secs(30), || async {
                let copy = server
                    .http()
                    .kv_map(&prefix, Consistency::Stale)
                    .await
                    .map_err(|e| format!("{e:#}"))?;
                compare_kv(&stored, &copy)
            })
            .await;
    }

    // And the cluster still takes writes.
    let accepted = cluster
        .server(leader)
        .http()
        .kv_put(&format!("{prefix}/after-restart"), "ok")
        .await
        .expect("PUT after the restart");
    assert!(accepted, "PUT after the restart returned false");
}
