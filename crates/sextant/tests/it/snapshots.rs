//! Snapshots and log purging (`--snapshot-threshold`): servers restart from
//! their snapshot plus the rest of the log, and a follower left behind the
//! leader's purge point catches up by installing the leader's snapshot.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;
use testkit::{random_value, test_rng, Cluster, ClusterOpts, RaftState, ServerOpts};
use tokio::task::JoinSet;

const BIN: &str = env!("CARGO_BIN_EXE_sextant");

const SNAPSHOT_THRESHOLD: u64 = 50;
const SETTLE: Duration = Duration::from_secs(30);

fn snapshot_opts() -> ClusterOpts {
    ClusterOpts {
        server: ServerOpts {
            snapshot_threshold: Some(SNAPSHOT_THRESHOLD),
            ..ServerOpts::default()
        },
        ..ClusterOpts::default()
    }
}

/// Writes keys `PREFIX/NNNN` for `range` with random values, one at a time
/// (so each is a log entry of its own: concurrent writes share entries, and
/// the log would grow slower than the tests count), spread over the servers
/// `through`; every write must be acknowledged.
async fn write_range(
    cluster: &Cluster,
    through: &[usize],
    prefix: &str,
    range: std::ops::Range<usize>,
    rng: &mut StdRng,
    written: &mut BTreeMap<String, Vec<u8>>,
) {
    const PARALLEL: usize = 1;
    let batch: Vec<(String, Vec<u8>)> = range
        .map(|i| {
            (
                format!("{prefix}/{i:04}"),
                random_value(rng, 32).into_bytes(),
            )
        })
        .collect();
    for (c, chunk) in batch.chunks(PARALLEL).enumerate() {
        let mut puts = JoinSet::new();
        for (n, (key, value)) in chunk.iter().enumerate() {
            let server = cluster.server(through[(c * PARALLEL + n) % through.len()]);
            let (http, name) = (server.http().clone(), server.name().to_owned());
            let (key, value) = (key.clone(), value.clone());
            puts.spawn(async move {
                let result = http.kv_put(&key, value).await;
                (key, name, result)
            });
        }
        while let Some(done) = puts.join_next().await {
            let (key, name, result) = done.expect("PUT task panicked");
            match result {
                Ok(true) => {}
                Ok(false) => panic!("PUT {key} through {name} returned false"),
                Err(err) => panic!("PUT {key} through {name}: {err:#}"),
            }
        }
        written.extend(chunk.iter().cloned());
    }
}

/// The agreed leader's Raft state.
async fn leader_state(cluster: &Cluster) -> Result<RaftState, String> {
    let leader = cluster.current_leader().await?;
    cluster
        .server(leader)
        .http()
        .raft_state()
        .await
        .map_err(|e| format!("{e:#}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_purge_the_log_and_restarts_replay_from_them() {
    let mut rng = test_rng("snapshots_purge_the_log_and_restarts_replay_from_them");
    let mut cluster = Cluster::start(BIN, 3, snapshot_opts()).await;
    let prefix = format!("snap/{:08x}", rng.random::<u32>());
    let mut written = BTreeMap::new();

    write_range(
        &cluster,
        &[0, 1, 2],
        &prefix,
        0..200,
        &mut rng,
        &mut written,
    )
    .await;
    let first = cluster
        .wait_for(
            "the leader to take a snapshot and purge its log",
            SETTLE,
            || async {
                let state = leader_state(&cluster).await?;
                match (state.snapshot_index, state.purged_index) {
                    (Some(snapshot), Some(purged)) if purged > 0 => {
                        if purged > snapshot {
                            return Err(format!("purged {purged} beyond snapshot {snapshot}"));
                        }
                        Ok(state)
                    }
                    other => Err(format!("(snapshot, purged) = {other:?}")),
                }
            },
        )
        .await;

    write_range(
        &cluster,
        &[0, 1, 2],
        &prefix,
        200..300,
        &mut rng,
        &mut written,
    )
    .await;
    let first_purged = first.purged_index.unwrap_or(0);
    let second = cluster
        .wait_for("the leader's purge point to advance", SETTLE, || async {
            let state = leader_state(&cluster).await?;
            match (state.snapshot_index, state.purged_index) {
                (Some(snapshot), Some(purged)) if purged > first_purged && purged <= snapshot => {
                    Ok(state)
                }
                other => Err(format!(
                    "(snapshot, purged) = {other:?}, first purge {first_purged}"
                )),
            }
        })
        .await;
    println!(
        "snapshots: after 200 keys snapshot {:?} purged {:?}; after 300 keys snapshot {:?} purged {:?} last log {:?}",
        first.snapshot_index,
        first.purged_index,
        second.snapshot_index,
        second.purged_index,
        second.last_log_index
    );

    // Every server snapshots on its own once it has applied enough entries.
    for i in 0..cluster.len() {
        let server = cluster.server(i);
        let what = format!("{} to have a snapshot", server.name());
        cluster
            .wait_for(&what, SETTLE, || async {
                let state = server
                    .http()
                    .raft_state()
                    .await
                    .map_err(|e| format!("{e:#}"))?;
                state
                    .snapshot_index
                    .ok_or_else(|| String::from("no snapshot_index"))
            })
            .await;
    }

    // One server: SIGKILL, restart, it comes back from snapshot + log.
    let follower = cluster.follower_indexes().await[0];
    cluster.server_mut(follower).restart().await;
    let server = cluster.server(follower);
    let what = format!("{} to report its snapshot after the restart", server.name());
    cluster
        .wait_for(&what, SETTLE, || async {
            let state = server
                .http()
                .raft_state()
                .await
                .map_err(|e| format!("{e:#}"))?;
            state
                .snapshot_index
                .ok_or_else(|| String::from("no snapshot_index"))
        })
        .await;
    cluster
        .wait_stale_copy(follower, &prefix, &written, SETTLE)
        .await;

    // Everyone at once: no server can help another, each starts from its own disk.
    cluster.kill_all().await;
    cluster.restart(&[0, 1, 2]).await;
    cluster.wait_converged().await;
    for i in 0..cluster.len() {
        cluster.wait_stale_copy(i, &prefix, &written, SETTLE).await;
    }
}

/// How the lagging follower is taken out.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// SIGKILL, then restart.
    Kill,
    /// SIGSTOP, then SIGCONT.
    Pause,
}

async fn lagging_follower_catches_up_by_snapshot(fault: Fault, test: &str) {
    let mut rng = test_rng(test);
    let mut cluster = Cluster::start(BIN, 3, snapshot_opts()).await;
    let prefix = format!("lag/{:08x}", rng.random::<u32>());
    let mut written = BTreeMap::new();
    write_range(&cluster, &[0, 1, 2], &prefix, 0..20, &mut rng, &mut written).await;

    let follower = cluster.follower_indexes().await[0];
    let follower_name = cluster.server(follower).name().to_owned();
    // The leader's last index bounds what the follower can hold.
    let held = leader_state(&cluster)
        .await
        .unwrap_or_else(|e| panic!("leader state: {e}"))
        .last_log_index
        .unwrap_or(0);
    match fault {
        Fault::Kill => cluster.server_mut(follower).kill().await,
        Fault::Pause => cluster.server_mut(follower).pause(),
    }

    let live = cluster.live_indexes();
    write_range(&cluster, &live, &prefix, 20..320, &mut rng, &mut written).await;
    let what =
        format!("the leader to purge its log past index {held}, the most {follower_name} can hold");
    let purged = cluster
        .wait_for(&what, SETTLE, || async {
            let state = leader_state(&cluster).await?;
            match state.purged_index {
                Some(purged) if purged > held => Ok(purged),
                other => Err(format!("purged_index {other:?}")),
            }
        })
        .await;
    println!("{test}: {follower_name} held at most index {held}; the leader purged up to {purged}");

    match fault {
        Fault::Kill => cluster.server_mut(follower).restart().await,
        Fault::Pause => cluster.server_mut(follower).resume(),
    }
    let server = cluster.server(follower);
    let what = format!("{follower_name} to install a snapshot at or past {purged}");
    let state = cluster
        .wait_for(&what, SETTLE, || async {
            let state = server
                .http()
                .raft_state()
                .await
                .map_err(|e| format!("{e:#}"))?;
            match state.snapshot_index {
                Some(snapshot) if snapshot >= purged => Ok(state),
                other => Err(format!("snapshot_index {other:?}")),
            }
        })
        .await;
    println!(
        "{test}: {follower_name} caught up with snapshot {:?}, last applied {:?}",
        state.snapshot_index, state.last_applied
    );
    cluster
        .wait_stale_copy(follower, &prefix, &written, SETTLE)
        .await;
    cluster.wait_converged().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_follower_behind_the_purge_point_catches_up_by_snapshot() {
    lagging_follower_catches_up_by_snapshot(
        Fault::Kill,
        "killed_follower_behind_the_purge_point_catches_up_by_snapshot",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn paused_follower_behind_the_purge_point_catches_up_by_snapshot() {
    lagging_follower_catches_up_by_snapshot(
        Fault::Pause,
        "paused_follower_behind_the_purge_point_catches_up_by_snapshot",
    )
    .await;
}
