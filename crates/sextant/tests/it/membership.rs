//! Changing the Raft membership: a server joins and becomes a voter; failed
//! servers are removed with the CLI or the operator HTTP API; a server started
//! with `--leave-on-terminate` leaves on SIGTERM.

use std::time::{Duration, Instant};

use rand::Rng;
use testkit::{run_cli, test_rng, Cluster, ClusterOpts, Consistency, RaftRole, ServerOpts};

const BIN: &str = env!("CARGO_BIN_EXE_sextant");

const SETTLE: Duration = Duration::from_secs(30);

fn node_ids(cluster: &Cluster, indexes: &[usize]) -> Vec<u64> {
    indexes
        .iter()
        .map(|&i| cluster.server(i).node_id())
        .collect()
}

/// Waits until every live server lists exactly the raft addresses of
/// `indexes` in `/v1/status/peers` and `/v1/operator/raft/configuration`.
async fn wait_peers(cluster: &Cluster, indexes: &[usize]) {
    let mut expected: Vec<String> = indexes
        .iter()
        .map(|&i| cluster.server(i).raft_addr().to_string())
        .collect();
    expected.sort();
    let what = format!("every live server to list peers {expected:?}");
    cluster
        .wait_for(&what, SETTLE, || async {
            for i in cluster.live_indexes() {
                let server = cluster.server(i);
                let peers = server
                    .http()
                    .status_peers()
                    .await
                    .map_err(|e| format!("{e:#}"))?;
                let config = server
                    .http()
                    .raft_configuration()
                    .await
                    .map_err(|e| format!("{e:#}"))?;
                let mut configured: Vec<String> =
                    config.servers.iter().map(|s| s.address.clone()).collect();
                configured.sort();
                if peers != expected || configured != expected {
                    return Err(format!(
                        "{}: /status/peers {peers:?}, configuration {configured:?}",
                        server.name()
                    ));
                }
            }
            Ok(())
        })
        .await;
}

/// Writes a fresh key through every live server and reads each back with
/// `?consistent` from every live server.
async fn assert_writes_work(cluster: &Cluster, prefix: &str) {
    for w in cluster.live_indexes() {
        let writer = cluster.server(w);
        let key = format!("{prefix}/via-{}", writer.name());
        let accepted = writer
            .http()
            .kv_put(&key, writer.name())
            .await
            .unwrap_or_else(|e| panic!("PUT {key} through {}: {e:#}", writer.name()));
        assert!(
            accepted,
            "PUT {key} through {} returned false",
            writer.name()
        );
        for r in cluster.live_indexes() {
            let reader = cluster.server(r);
            let entry = reader
                .http()
                .kv_get(&key, Consistency::Consistent)
                .await
                .unwrap_or_else(|e| panic!("GET {key} on {}: {e:#}", reader.name()));
            assert_eq!(
                entry.and_then(|e| e.value).as_deref(),
                Some(writer.name().as_bytes()),
                "consistent read of {key} on {}",
                reader.name()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fourth_server_joins_and_becomes_a_voter() {
    let mut rng = test_rng("fourth_server_joins_and_becomes_a_voter");
    let mut cluster = Cluster::start(BIN, 3, ClusterOpts::default()).await;
    let opts = cluster.opts().server.clone();
    let new = cluster.add_server(&opts).await;
    let joined_at = Instant::now();

    // The learner stage may be too short to see; report whether it was.
    let leader = cluster.leader().await;
    let new_id = cluster.server(new).node_id();
    let seen_as_learner = leader
        .http()
        .raft_state()
        .await
        .map(|s| s.learners.contains(&new_id))
        .unwrap_or(false);

    cluster
        .wait_voters(&node_ids(&cluster, &[0, 1, 2, 3]))
        .await;
    println!(
        "membership: {} became a voter {:?} after it answered HTTP (seen as learner: {seen_as_learner})",
        cluster.server(new).name(),
        joined_at.elapsed()
    );
    wait_peers(&cluster, &[0, 1, 2, 3]).await;
    let state = cluster
        .server(new)
        .http()
        .raft_state()
        .await
        .expect("raft state of the new server");
    assert!(
        state.learners.is_empty(),
        "learners left: {:?}",
        state.learners
    );
    assert!(
        matches!(state.state, RaftRole::Follower | RaftRole::Leader),
        "new server is {:?}",
        state.state
    );
    assert_writes_work(&cluster, &format!("join/{:08x}", rng.random::<u32>())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_server_is_removed_with_the_cli() {
    let mut rng = test_rng("failed_server_is_removed_with_the_cli");
    let mut cluster = Cluster::start(BIN, 3, ClusterOpts::default()).await;
    let opts = cluster.opts().server.clone();
    let fourth = cluster.add_server(&opts).await;
    cluster
        .wait_voters(&node_ids(&cluster, &[0, 1, 2, 3]))
        .await;

    let name = cluster.server(fourth).name().to_owned();
    cluster.server_mut(fourth).kill().await;
    let follower = cluster.follower_indexes().await[0];
    let output = run_cli(
        BIN,
        cluster.server(follower).http_addr(),
        &["operator", "raft", "remove-peer", &name],
    )
    .await;
    output.assert_success("operator raft remove-peer");

    cluster.wait_voters(&node_ids(&cluster, &[0, 1, 2])).await;
    wait_peers(&cluster, &[0, 1, 2]).await;
    let listed = run_cli(
        BIN,
        cluster.server(follower).http_addr(),
        &["operator", "raft", "list-peers"],
    )
    .await;
    listed.assert_success("operator raft list-peers");
    assert!(
        !listed
            .stdout
            .contains(&cluster.server(fourth).raft_addr().to_string()),
        "list-peers still shows the removed server:\n{}",
        listed.stdout
    );
    assert_writes_work(&cluster, &format!("remove-cli/{:08x}", rng.random::<u32>())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_servers_are_removed_over_http_by_id_and_by_address() {
    let mut rng = test_rng("failed_servers_are_removed_over_http_by_id_and_by_address");
    let mut cluster = Cluster::start(BIN, 3, ClusterOpts::default()).await;
    let opts = cluster.opts().server.clone();
    let fourth = cluster.add_server(&opts).await;
    cluster
        .wait_voters(&node_ids(&cluster, &[0, 1, 2, 3]))
        .await;
    let fifth = cluster.add_server(&opts).await;
    cluster
        .wait_voters(&node_ids(&cluster, &[0, 1, 2, 3, 4]))
        .await;

    // Two of five down still leaves a quorum.
    cluster.server_mut(fourth).kill().await;
    cluster.server_mut(fifth).kill().await;
    let follower = cluster.follower_indexes().await[0];
    let http = cluster.server(follower).http().clone();

    let by_id = format!(
        "/v1/operator/raft/peer?id={}",
        cluster.server(fourth).node_id()
    );
    let reply = http.delete(&by_id).await.expect("DELETE by id");
    assert_eq!(reply.status, 200, "DELETE {by_id}: {}", reply.text());
    cluster
        .wait_voters(&node_ids(&cluster, &[0, 1, 2, 4]))
        .await;

    let by_address = format!(
        "/v1/operator/raft/peer?address={}",
        cluster.server(fifth).raft_addr()
    );
    let reply = http.delete(&by_address).await.expect("DELETE by address");
    assert_eq!(reply.status, 200, "DELETE {by_address}: {}", reply.text());
    cluster.wait_voters(&node_ids(&cluster, &[0, 1, 2])).await;
    wait_peers(&cluster, &[0, 1, 2]).await;
    assert_writes_work(
        &cluster,
        &format!("remove-http/{:08x}", rng.random::<u32>()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_with_leave_on_terminate_leaves_on_sigterm() {
    let mut rng = test_rng("server_with_leave_on_terminate_leaves_on_sigterm");
    let mut cluster = Cluster::start(BIN, 3, ClusterOpts::default()).await;
    let opts = ServerOpts {
        leave_on_terminate: true,
        ..cluster.opts().server.clone()
    };
    let fourth = cluster.add_server(&opts).await;
    cluster
        .wait_voters(&node_ids(&cluster, &[0, 1, 2, 3]))
        .await;

    let stopping = Instant::now();
    let status = cluster.server_mut(fourth).stop().await;
    println!(
        "leave: {} exited with {status} after {:?}",
        cluster.server(fourth).name(),
        stopping.elapsed()
    );
    assert!(
        status.success(),
        "graceful shutdown exited with {status}\n{}",
        cluster.server(fourth).log_tail(40)
    );

    cluster.wait_voters(&node_ids(&cluster, &[0, 1, 2])).await;
    wait_peers(&cluster, &[0, 1, 2]).await;
    assert_writes_work(&cluster, &format!("leave/{:08x}", rng.random::<u32>())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_with_leave_on_terminate_leaves_on_sigterm() {
    let mut rng = test_rng("leader_with_leave_on_terminate_leaves_on_sigterm");
    let opts = ClusterOpts {
        server: ServerOpts {
            leave_on_terminate: true,
            ..ServerOpts::default()
        },
        ..ClusterOpts::default()
    };
    let mut cluster = Cluster::start(BIN, 3, opts).await;
    let leader = cluster.leader_index().await;
    let status = cluster.server_mut(leader).stop().await;
    assert!(
        status.success(),
        "graceful shutdown of the leader exited with {status}"
    );

    let rest: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    cluster.wait_voters(&node_ids(&cluster, &rest)).await;
    wait_peers(&cluster, &rest).await;
    assert_writes_work(
        &cluster,
        &format!("leave-leader/{:08x}", rng.random::<u32>()),
    )
    .await;
}
