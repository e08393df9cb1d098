//! A 3-server cluster, 3 user-service processes and a consumer calling them
//! through the SDK's balancer: an instance dies, the Sextant leader dies,
//! the instance comes back.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sextant_client::{
    Backoff, BalancerConfig, BreakerConfig, Client, Discovery, LoadBalancer, Query, Strategy,
};
use testkit::{Cluster, ClusterOpts};
use tokio::sync::watch;

use crate::processes::{sextant_bin, UserService};

const WAIT: Duration = Duration::from_secs(30);
const TTL: Duration = Duration::from_secs(1);
/// Failures in a row that open a breaker in this test.
const BREAKER_WINDOW: u32 = 3;

/// Every try the consumer made and every call's outcome.
#[derive(Default)]
struct Record {
    /// (when, instance id, succeeded) per try.
    attempts: Vec<(Instant, String, bool)>,
    calls_ok: u64,
    /// (when, error) per call that failed after its retries.
    calls_failed: Vec<(Instant, String)>,
    /// (when, instance ids) per change of the consumer's view.
    views: Vec<(Instant, Vec<String>)>,
}

type Shared = Arc<Mutex<Record>>;

fn record(shared: &Shared) -> std::sync::MutexGuard<'_, Record> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

fn ids(view: &Discovery) -> Vec<String> {
    view.endpoints().iter().map(|e| e.id.clone()).collect()
}

/// Calls user-service every 10 ms until `stop` is set.
async fn consume(balancer: LoadBalancer, shared: Shared, mut stop: watch::Receiver<bool>) {
    let http = reqwest::Client::new();
    let mut ticks = tokio::time::interval(Duration::from_millis(10));
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        let result = balancer
            .call(None, |endpoint| {
                let request = http.get(format!("{}/hello", endpoint.http_uri()));
                let (id, shared) = (endpoint.id.clone(), Arc::clone(&shared));
                async move {
                    let result = match request.send().await {
                        Ok(response) => response.error_for_status().map(|_| ()),
                        Err(err) => Err(err),
                    };
                    record(&shared)
                        .attempts
                        .push((Instant::now(), id, result.is_ok()));
                    result
                }
            })
            .await;
        let mut r = record(&shared);
        match result {
            Ok(()) => r.calls_ok += 1,
            Err(err) => r.calls_failed.push((Instant::now(), err.to_string())),
        }
    }
}

/// Logs every change of the consumer's view.
async fn follow(mut view: Discovery, shared: Shared) {
    while view.changed().await.is_ok() {
        let now = ids(&view);
        record(&shared).views.push((Instant::now(), now));
    }
}

fn attempts_since(shared: &Shared, since: Instant) -> BTreeMap<String, (u64, u64)> {
    let mut counts = BTreeMap::new();
    for (at, id, ok) in &record(shared).attempts {
        if *at >= since {
            let entry: &mut (u64, u64) = counts.entry(id.clone()).or_default();
            if *ok {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        }
    }
    counts
}

async fn wait_view(cluster: &Cluster, view: &Discovery, what: &str, expected: &[&str]) {
    cluster
        .wait_for(what, WAIT, || async {
            let now = ids(view);
            if now == expected {
                Ok(())
            } else {
                Err(format!("{now:?}"))
            }
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t30_instance_death_leader_death_and_return() {
    let mut cluster = Cluster::start(sextant_bin(), 3, ClusterOpts::default()).await;
    let servers: Vec<String> = cluster
        .servers()
        .iter()
        .map(|s| s.grpc_addr().to_string())
        .collect();

    let mut instances = Vec::new();
    for i in 0..3 {
        instances.push(UserService::start(&format!("user-{i}"), TTL, &servers).await);
    }

    let client = Client::connect(servers.clone()).await.expect("connect");
    let view = client.discover("user-service").await.expect("discover");
    wait_view(
        &cluster,
        &view,
        "3 instances in the consumer's view",
        &["user-0", "user-1", "user-2"],
    )
    .await;
    let balancer = LoadBalancer::new(
        view.clone(),
        BalancerConfig {
            strategy: Strategy::RoundRobin,
            breaker: BreakerConfig {
                consecutive_failures: BREAKER_WINDOW,
                // No half-open probe while the dead instance is still listed.
                open_backoff: Backoff::new(Duration::from_secs(30), Duration::from_secs(60)),
                ..BreakerConfig::default()
            },
            per_try_timeout: Some(Duration::from_secs(1)),
            ..BalancerConfig::default()
        },
    );
    let shared: Shared = Arc::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let consumer = tokio::spawn(consume(balancer.clone(), Arc::clone(&shared), stop_rx));
    let follower = tokio::spawn(follow(view.clone(), Arc::clone(&shared)));
    let started = Instant::now();
    cluster
        .wait_for("every instance to answer the consumer", WAIT, || async {
            let counts = attempts_since(&shared, started);
            if counts.len() == 3 && counts.values().all(|(ok, _)| *ok >= 5) {
                Ok(())
            } else {
                Err(format!("{counts:?}"))
            }
        })
        .await;

    // 1. An instance dies: at most the breaker's window of failed tries on
    //    it, none once it has left the view, and no failed call at all
    //    (retries go to the others).
    instances[0].kill().await;
    let killed = Instant::now();
    wait_view(
        &cluster,
        &view,
        "the dead instance out of the view",
        &["user-1", "user-2"],
    )
    .await;
    let removed = Instant::now();
    let on_dead = attempts_since(&shared, killed)
        .get("user-0")
        .copied()
        .unwrap_or_default();
    println!(
        "tries on the dead instance: {on_dead:?}, out of the view after {:?}",
        removed - killed
    );
    assert_eq!(on_dead.0, 0, "the dead instance answered");
    assert!(
        on_dead.1 <= u64::from(BREAKER_WINDOW),
        "{} failed tries on the dead instance",
        on_dead.1
    );

    // 2. The Sextant leader dies: the consumer keeps calling, the view keeps
    //    both live instances, the instances stay registered.
    let leader = cluster.leader_index().await;
    println!("killing leader {}", cluster.server(leader).name());
    cluster.server_mut(leader).kill().await;
    let leader_killed = Instant::now();
    let new_leader = cluster.leader_index().await;
    println!(
        "new leader {} after {:?}",
        cluster.server(new_leader).name(),
        leader_killed.elapsed()
    );
    // Observe well past several TTLs: a lost renewal would show by now.
    let observed_from = Instant::now();
    tokio::time::sleep(TTL * 5).await;
    let during = attempts_since(&shared, leader_killed);
    println!("tries since the leader died: {during:?}");
    assert!(
        during.values().map(|(ok, _)| ok).sum::<u64>() >= 100,
        "the consumer stalled: {during:?}"
    );
    assert!(
        during.values().all(|(_, failed)| *failed == 0),
        "failed tries: {during:?}"
    );
    assert!(!during.contains_key("user-0"));
    for (at, now) in &record(&shared).views {
        assert!(
            *at < leader_killed || now.len() >= 2,
            "the view lost a live instance after the leader died: {now:?}"
        );
    }
    assert_eq!(ids(&view), ["user-1", "user-2"]);
    let survivor = cluster.live_indexes()[0];
    let fresh = Client::connect([cluster.server(survivor).grpc_addr().to_string()])
        .await
        .expect("connect to a survivor");
    let registered = fresh
        .discover(Query::new("user-service").include_unhealthy())
        .await
        .expect("discover on a survivor");
    assert_eq!(
        ids(&registered),
        ["user-1", "user-2"],
        "still registered, nothing else"
    );
    println!(
        "observed {:?} after the new leader",
        observed_from.elapsed()
    );

    // 3. The dead instance comes back: the very next change of the view has it.
    let mut next = view.receiver();
    next.borrow_and_update();
    instances[0] = UserService::start("user-0", TTL, &servers).await;
    tokio::time::timeout(WAIT, next.changed())
        .await
        .expect("a view change after the restart")
        .expect("the view is open");
    let changed = Arc::clone(&next.borrow_and_update());
    let back: Vec<&str> = changed.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        back,
        ["user-0", "user-1", "user-2"],
        "one watch event brings it back"
    );
    let restarted = Instant::now();
    cluster
        .wait_for(
            "the returned instance to answer the consumer",
            WAIT,
            || async {
                match attempts_since(&shared, restarted).get("user-0") {
                    Some((ok, _)) if *ok >= 5 => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await;

    let _ = stop_tx.send(true);
    consumer.await.expect("the consumer task");
    follower.abort();
    let r = record(&shared);
    assert!(
        r.calls_failed.is_empty(),
        "failed calls: {:?}",
        r.calls_failed
    );
    println!("calls ok: {}, failed: {}", r.calls_ok, r.calls_failed.len());
}
