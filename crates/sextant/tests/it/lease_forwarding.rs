//! Keep-alives sent to a follower cross to the leader many to a call; every
//! client must still get the answer about its own lease. Many leases with
//! different TTLs are kept alive at once through one follower, with a
//! revoked lease among them, and each answer is checked against its lease.

use std::time::Duration;

use etcd_client::{Client, ConnectOptions};
use testkit::{Cluster, ClusterOpts};

const BIN: &str = env!("CARGO_BIN_EXE_sextant");
const LEASES: i64 = 24;
const ROUNDS: usize = 40;

async fn connect(endpoint: &str) -> Client {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(10));
    Client::connect([endpoint], Some(options))
        .await
        .expect("connect to a follower")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_keep_alives_through_a_follower_each_get_their_own_answer() {
    let cluster = Cluster::start(BIN, 3, ClusterOpts::default()).await;
    let follower = cluster.follower_indexes().await[0];
    let endpoint = cluster.server(follower).grpc_addr().to_string();
    let mut client = connect(&endpoint).await;

    // TTLs 100, 101, ...: an answer carrying another lease's TTL shows.
    let mut leases = Vec::new();
    for i in 0..LEASES {
        let granted = client.lease_grant(100 + i, None).await.expect("grant");
        leases.push((granted.id(), 100 + i));
    }
    let revoked = client.lease_grant(50, None).await.expect("grant").id();
    client.lease_revoke(revoked).await.expect("revoke");
    leases.push((revoked, 0));

    let mut tasks = Vec::new();
    for (id, ttl) in leases {
        let mut client = connect(&endpoint).await;
        tasks.push(tokio::spawn(async move {
            if ttl == 0 {
                // The client opens a stream with a first keep-alive, and
                // reports TTL 0 (no such lease) as an error.
                for round in 0..ROUNDS {
                    let opened = client.lease_keep_alive(id).await;
                    assert!(
                        matches!(opened, Err(etcd_client::Error::LeaseKeepAliveError(_))),
                        "round {round}: the revoked lease {id:x} was kept alive"
                    );
                }
                return;
            }
            let (mut keeper, mut answers) = client.lease_keep_alive(id).await.expect("stream");
            for round in 0..ROUNDS {
                keeper.keep_alive().await.expect("send keep-alive");
                let answer = answers
                    .message()
                    .await
                    .expect("keep-alive answer")
                    .expect("stream open");
                assert_eq!(
                    (answer.id(), answer.ttl()),
                    (id, ttl),
                    "round {round}: lease {id:x} got the answer of another"
                );
            }
        }));
    }
    for task in tasks {
        task.await.expect("keep-alive task");
    }
}
