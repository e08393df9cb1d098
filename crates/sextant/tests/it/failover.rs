//! Losing the leader: another server takes over and accepts writes, and the
//! old leader, once back, catches up without losing anything.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::Rng;
use testkit::{
    compare_kv, random_value, test_rng, Cluster, ClusterOpts, Consistency, HttpClient, RaftRole,
};
use tokio::task::JoinSet;

const BIN: &str = env!("CARGO_BIN_EXE_sextant");

/// Deadline for a new leader to take writes after the old one is gone.
const FAILOVER_DEADLINE: Duration = Duration::from_secs(30);
/// Deadline for a restarted or resumed server to catch up.
const CATCH_UP: Duration = Duration::from_secs(30);

/// Writes `count` keys `PREFIX/NNN` with random values, round-robin through
/// the servers given, each acknowledged with `true`; records them in `written`.
async fn write_keys(
    cluster: &Cluster,
    through: &[usize],
    prefix: &str,
    count: usize,
    rng: &mut StdRng,
    written: &mut BTreeMap<String, Vec<u8>>,
) {
    for i in 0..count {
        let server = cluster.server(through[i % through.len()]);
        let key = format!("{prefix}/{i:04}");
        let value = random_value(rng, 24).into_bytes();
        let accepted = server
            .http()
            .kv_put(&key, value.clone())
            .await
            .unwrap_or_else(|e| panic!("PUT {key} through {}: {e:#}", server.name()));
        assert!(
            accepted,
            "PUT {key} through {} returned false",
            server.name()
        );
        written.insert(key, value);
    }
}

/// Sends the same PUT through every given server at once, again and again,
/// until one acknowledges it; returns that server's index and when it did.
/// Repeating the PUT is harmless: it writes the same value to the same key.
async fn put_until_accepted(
    cluster: &Cluster,
    through: &[usize],
    key: &str,
    value: &[u8],
    deadline: Duration,
) -> (usize, Instant) {
    let start = Instant::now();
    let mut last_errors = Vec::new();
    while start.elapsed() < deadline {
        let mut attempts = JoinSet::new();
        for &i in through {
            let http: HttpClient = cluster
                .server(i)
                .http()
                .with_timeout(Duration::from_secs(2));
            let (key, value) = (key.to_owned(), value.to_vec());
            attempts.spawn(async move { (i, http.kv_put(&key, value).await) });
        }
        last_errors.clear();
        while let Some(joined) = attempts.join_next().await {
            let (i, result) = joined.expect("attempt task panicked");
            match result {
                Ok(true) => return (i, Instant::now()),
                Ok(false) => last_errors.push(format!("{}: false", cluster.server(i).name())),
                Err(err) => last_errors.push(format!("{}: {err:#}", cluster.server(i).name())),
            }
        }
        tokio::time::sleep(testkit::POLL_INTERVAL).await;
    }
    panic!(
        "no server accepted PUT {key} within {deadline:?}; last errors: {last_errors:?}\n{}\n{}",
        cluster.describe().await,
        cluster.log_tails(40)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_leader_is_replaced_and_catches_up_after_restart() {
    let mut rng = test_rng("killed_leader_is_replaced_and_catches_up_after_restart");
    let mut cluster = Cluster::start(BIN, 3, ClusterOpts::default()).await;
    let prefix = format!("failover/{:08x}", rng.random::<u32>());
    let mut written = BTreeMap::new();
    write_keys(
        &cluster,
        &[0, 1, 2],
        &format!("{prefix}/before"),
        20,
        &mut rng,
        &mut written,
    )
    .await;

    let old = cluster.leader_index().await;
    let old_name = cluster.server(old).name().to_owned();
    cluster.server_mut(old).kill().await;
    let killed_at = Instant::now();

    let survivors = cluster.live_indexes();
    let key = format!("{prefix}/first-after-kill");
    let value = random_value(&mut rng, 24).into_bytes();
    let (via, accepted_at) =
        put_until_accepted(&cluster, &survivors, &key, &value, FAILOVER_DEADLINE).await;
    written.insert(key, value);
    let new = cluster.leader_index().await;
    println!(
        "failover: leader {old_name} SIGKILLed; a write was accepted through {} after {:?}; new leader {}",
        cluster.server(via).name(),
        accepted_at - killed_at,
        cluster.server(new).name()
    );
    assert_ne!(new, old, "the killed server cannot be the leader");

    write_keys(
        &cluster,
        &survivors,
        &format!("{prefix}/during"),
        20,
        &mut rng,
        &mut written,
    )
    .await;

    cluster.server_mut(old).restart().await;
    cluster
        .wait_stale_copy(old, &prefix, &written, CATCH_UP)
        .await;
    cluster.wait_converged().await;

    for server in cluster.servers() {
        let actual = server
            .http()
            .kv_map(&prefix, Consistency::Default)
            .await
            .unwrap_or_else(|e| panic!("reading {prefix} on {}: {e:#}", server.name()));
        if let Err(diff) = compare_kv(&written, &actual) {
            panic!(
                "default read on {} after the failover: {diff}",
                server.name()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn paused_leader_steps_down_after_resume() {
    let mut rng = test_rng("paused_leader_steps_down_after_resume");
    let mut cluster = Cluster::start(BIN, 3, ClusterOpts::default()).await;
    let prefix = format!("pause/{:08x}", rng.random::<u32>());
    let mut written = BTreeMap::new();
    write_keys(
        &cluster,
        &[0, 1, 2],
        &format!("{prefix}/before"),
        10,
        &mut rng,
        &mut written,
    )
    .await;

    let old = cluster.leader_index().await;
    cluster.server_mut(old).pause();
    let paused_at = Instant::now();
    // leader_index() only asks live servers, so this waits for a new leader.
    let new = cluster.leader_index().await;
    println!(
        "pause: {} SIGSTOPped; {} leads after {:?}",
        cluster.server(old).name(),
        cluster.server(new).name(),
        paused_at.elapsed()
    );
    assert_ne!(new, old);
    let survivors = cluster.live_indexes();
    write_keys(
        &cluster,
        &survivors,
        &format!("{prefix}/during"),
        10,
        &mut rng,
        &mut written,
    )
    .await;

    cluster.server_mut(old).resume();
    let old_server = cluster.server(old);
    let new_id = cluster.server(new).node_id();
    let what = format!(
        "{} to step down and follow the new leader after SIGCONT",
        old_server.name()
    );
    cluster
        .wait_for(&what, CATCH_UP, || async {
            let state = old_server
                .http()
                .raft_state()
                .await
                .map_err(|e| format!("{e:#}"))?;
            if state.state == RaftRole::Leader || state.leader_id.is_none() {
                return Err(format!(
                    "{:?} term {} leader {:?}",
                    state.state, state.term, state.leader_id
                ));
            }
            Ok(())
        })
        .await;
    let leader = cluster.leader_index().await;
    if leader == old {
        // Legal if it won a later election; the point is a single agreed leader.
        println!("pause: the resumed server won a later election");
    } else {
        assert_eq!(cluster.server(leader).node_id(), new_id);
    }
    cluster
        .wait_stale_copy(old, &prefix, &written, CATCH_UP)
        .await;

    // Writes through the resumed server reach the leader and are readable everywhere.
    let key = format!("{prefix}/after-resume");
    let accepted = cluster
        .server(old)
        .http()
        .kv_put(&key, "after")
        .await
        .expect("PUT through the resumed server");
    assert!(accepted, "PUT through the resumed server returned false");
    for server in cluster.servers() {
        let entry = server
            .http()
            .kv_get(&key, Consistency::Consistent)
            .await
            .unwrap_or_else(|e| panic!("consistent GET on {}: {e:#}", server.name()));
        assert_eq!(
            entry.and_then(|e| e.value).as_deref(),
            Some(&b"after"[..]),
            "consistent read on {}",
            server.name()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_follower_does_not_stop_writes_and_catches_up() {
    let mut rng = test_rng("killed_follower_does_not_stop_writes_and_catches_up");
    let mut cluster = Cluster::start(BIN, 3, ClusterOpts::default()).await;
    let prefix = format!("follower/{:08x}", rng.random::<u32>());
    let mut written = BTreeMap::new();

    let follower = cluster.follower_indexes().await[0];
    cluster.server_mut(follower).kill().await;
    let survivors = cluster.live_indexes();
    write_keys(&cluster, &survivors, &prefix, 30, &mut rng, &mut written).await;

    cluster.server_mut(follower).restart().await;
    cluster
        .wait_stale_copy(follower, &prefix, &written, CATCH_UP)
        .await;
    cluster.wait_converged().await;
}
