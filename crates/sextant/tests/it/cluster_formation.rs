//! A 3-server cluster forms, agrees on its leader and peers, and serves every
//! write made through any server to reads on every server at every
//! consistency level. Also: the dev agent and the CLI.

use std::collections::BTreeSet;
use std::time::Duration;

use rand::Rng;
use testkit::{run_cli, test_rng, wait_for, Cluster, ClusterOpts, Consistency, Server};

const BIN: &str = env!("CARGO_BIN_EXE_sextant");

/// Deadline for things that follow within a heartbeat or two.
const SETTLE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread")]
async fn three_servers_agree_on_leader_and_peers() {
    let cluster = Cluster::start(BIN, 3, ClusterOpts::default()).await;
    let leader = cluster.leader().await;
    let leader_addr = leader.raft_addr().to_string();
    let peers: Vec<String> = {
        let mut peers: Vec<String> = cluster
            .servers()
            .iter()
            .map(|s| s.raft_addr().to_string())
            .collect();
        peers.sort();
        peers
    };

    let what = format!("every server to report leader {leader_addr:?} and peers {peers:?}");
    cluster
        .wait_for(&what, SETTLE, || async {
            for server in cluster.servers() {
                let said_leader = server
                    .http()
                    .status_leader()
                    .await
                    .map_err(|e| e.to_string())?;
                let said_peers = server
                    .http()
                    .status_peers()
                    .await
                    .map_err(|e| e.to_string())?;
                if said_leader != leader_addr || said_peers != peers {
                    return Err(format!(
                        "{} says leader {said_leader:?}, peers {said_peers:?}",
                        server.name()
                    ));
                }
            }
            Ok(())
        })
        .await;

    for server in cluster.servers() {
        let config = server
            .http()
            .raft_configuration()
            .await
            .expect("GET /v1/operator/raft/configuration");
        let addresses: Vec<String> = {
            let mut a: Vec<String> = config.servers.iter().map(|s| s.address.clone()).collect();
            a.sort();
            a
        };
        assert_eq!(
            addresses,
            peers,
            "{}: configuration addresses",
            server.name()
        );
        for entry in &config.servers {
            let known = cluster
                .servers()
                .iter()
                .find(|s| s.raft_addr().to_string() == entry.address)
                .expect("address belongs to a server");
            assert_eq!(
                entry.id,
                known.node_id().to_string(),
                "ID of {}",
                known.name()
            );
            assert_eq!(entry.node, known.name(), "Node of {}", entry.address);
            assert!(entry.voter, "{} is not a voter", entry.node);
            assert_eq!(
                entry.leader,
                entry.address == leader_addr,
                "Leader flag of {}",
                entry.node
            );
            assert_eq!(entry.protocol_version, "3");
        }

        let self_info: serde_json::Value = server
            .http()
            .get_json("/v1/agent/self")
            .await
            .expect("GET /v1/agent/self");
        assert_eq!(
            self_info["Config"]["NodeName"].as_str(),
            Some(server.name()),
            "/v1/agent/self Config.NodeName: {self_info}"
        );
    }

    let names: BTreeSet<String> = cluster
        .servers()
        .iter()
        .map(|s| s.name().to_owned())
        .collect();
    cluster
        .wait_for(
            "every server to list all three as alive members",
            SETTLE,
            || async {
                for server in cluster.servers() {
                    let members = server.http().members().await.map_err(|e| e.to_string())?;
                    let alive: BTreeSet<String> = members
                        .iter()
                        .filter(|m| m.status == 1)
                        .map(|m| m.name.clone())
                        .collect();
                    if !names.is_subset(&alive) {
                        return Err(format!("{} lists alive {alive:?}", server.name()));
                    }
                }
                Ok(())
            },
        )
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn write_through_each_server_is_read_everywhere_at_every_consistency() {
    let mut rng = test_rng("write_through_each_server_is_read_everywhere");
    let cluster = Cluster::start(BIN, 3, ClusterOpts::default()).await;
    let run: u32 = rng.random();

    for (w, writer) in cluster.servers().iter().enumerate() {
        let key = format!("formation/{run:08x}/via-{w}");
        // Binary values exercise base64 in the JSON answer.
        let len = rng.random_range(1..=64);
        let value: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        let accepted = writer
            .http()
            .kv_put(&key, value.clone())
            .await
            .unwrap_or_else(|e| panic!("PUT {key} through {}: {e:#}", writer.name()));
        assert!(
            accepted,
            "PUT {key} through {} returned false",
            writer.name()
        );

        for reader in cluster.servers() {
            for consistency in [Consistency::Default, Consistency::Consistent] {
                let (entry, meta) = reader
                    .http()
                    .kv_get_meta(&key, consistency)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("{consistency} GET {key} on {}: {e:#}", reader.name())
                    });
                let entry = entry.unwrap_or_else(|| {
                    panic!(
                        "{consistency} read of {key} on {} right after the write through {} was acknowledged: 404",
                        reader.name(),
                        writer.name()
                    )
                });
                assert_eq!(
                    entry.value.as_deref(),
                    Some(&value[..]),
                    "{consistency} read of {key} on {} after the write through {}",
                    reader.name(),
                    writer.name()
                );
                assert_eq!(entry.key, key);
                assert_eq!(entry.flags, 0);
                assert!(entry.create_index >= 1 && entry.modify_index >= entry.create_index);
                let index = meta.index.unwrap_or_else(|| {
                    panic!("{consistency} read on {}: no X-Consul-Index", reader.name())
                });
                assert!(
                    index >= entry.modify_index,
                    "X-Consul-Index {index} below ModifyIndex {}",
                    entry.modify_index
                );
                assert_eq!(
                    meta.known_leader,
                    Some(true),
                    "X-Consul-KnownLeader on {}",
                    reader.name()
                );
                assert!(
                    meta.last_contact.is_some(),
                    "X-Consul-LastContact on {}",
                    reader.name()
                );
            }

            let what = format!(
                "a stale read of {key} on {} to see the write",
                reader.name()
            );
            let meta = wait_for(&what, SETTLE, || async {
                match reader.http().kv_get_meta(&key, Consistency::Stale).await {
                    Ok((Some(entry), meta)) if entry.value.as_deref() == Some(&value[..]) => {
                        Ok(meta)
                    }
                    Ok((entry, _)) => Err(format!("got {entry:?}")),
                    Err(err) => Err(format!("{err:#}")),
                }
            })
            .await;
            assert!(
                meta.index.is_some_and(|i| i >= 1),
                "stale read X-Consul-Index {meta:?}"
            );
            assert!(
                meta.known_leader.is_some(),
                "stale read without X-Consul-KnownLeader"
            );
            assert!(
                meta.last_contact.is_some(),
                "stale read without X-Consul-LastContact"
            );
        }
    }

    // An overwrite through another server moves ModifyIndex but not CreateIndex.
    let key = format!("formation/{run:08x}/via-0");
    let before = cluster.servers()[0]
        .http()
        .kv_get(&key, Consistency::Default)
        .await
        .expect("GET before overwrite")
        .expect("key exists");
    let accepted = cluster.servers()[2]
        .http()
        .kv_put(&key, "overwritten")
        .await
        .expect("overwrite");
    assert!(accepted, "overwrite returned false");
    let after = cluster.servers()[0]
        .http()
        .kv_get(&key, Consistency::Consistent)
        .await
        .expect("GET after overwrite")
        .expect("key exists");
    assert_eq!(after.value.as_deref(), Some(&b"overwritten"[..]));
    assert_eq!(
        after.create_index, before.create_index,
        "CreateIndex changed on overwrite"
    );
    assert!(
        after.modify_index > before.modify_index,
        "ModifyIndex did not grow on overwrite"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_agent_round_trips_a_key() {
    let dev = Server::start_dev(BIN).await;
    wait_for(
        "the dev agent to print `sextant agent ready`",
        SETTLE,
        || async {
            if dev.output_contains("sextant agent ready") {
                Ok(())
            } else {
                Err("not in stdout or stderr yet")
            }
        },
    )
    .await;
    let raft_addr = dev.raft_addr().to_string();
    let leader = wait_for("the dev agent to lead itself", SETTLE, || async {
        match dev.http().status_leader().await {
            Ok(leader) if !leader.is_empty() => Ok(leader),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(leader, raft_addr, "a dev agent's leader is itself");

    let http = dev.http();
    assert!(
        http.kv_put("dev/hello", "world").await.expect("PUT"),
        "PUT returned false"
    );
    for consistency in Consistency::ALL {
        let entry = http
            .kv_get("dev/hello", consistency)
            .await
            .expect("GET")
            .unwrap_or_else(|| panic!("{consistency} GET: 404"));
        assert_eq!(
            entry.value.as_deref(),
            Some(&b"world"[..]),
            "{consistency} GET"
        );
    }
    let raw = http.get("/v1/kv/dev/hello?raw").await.expect("GET ?raw");
    assert_eq!(raw.status, 200);
    assert_eq!(raw.body, b"world", "?raw body");

    assert!(
        http.kv_delete("dev/hello").await.expect("DELETE"),
        "DELETE returned false"
    );
    assert_eq!(
        http.kv_get("dev/hello", Consistency::Default)
            .await
            .expect("GET"),
        None
    );

    let state = http.raft_state().await.expect("raft state");
    assert_eq!(
        state.voters,
        vec![dev.node_id()],
        "a dev agent is its only voter"
    );
    assert_eq!(state.leader_id, Some(dev.node_id()));
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_round_trip_against_a_follower() {
    let cluster = Cluster::start(BIN, 3, ClusterOpts::default()).await;
    let follower = cluster.followers().await[0];
    let addr = follower.http_addr();
    let leader_http = cluster.leader().await.http().clone();

    run_cli(BIN, addr, &["kv", "put", "cli/greeting", "hello world"])
        .await
        .assert_success("kv put");
    let stored = leader_http
        .kv_get("cli/greeting", Consistency::Default)
        .await
        .expect("GET")
        .expect("the CLI's put is visible over HTTP");
    assert_eq!(stored.value.as_deref(), Some(&b"hello world"[..]));

    let got = run_cli(BIN, addr, &["kv", "get", "cli/greeting"]).await;
    got.assert_success("kv get");
    assert_eq!(
        got.stdout.trim_end_matches('\n'),
        "hello world",
        "kv get output"
    );

    for key in ["cli/dir/a", "cli/dir/b"] {
        run_cli(BIN, addr, &["kv", "put", key, "x"])
            .await
            .assert_success("kv put");
    }

    run_cli(BIN, addr, &["kv", "delete", "cli/greeting"])
        .await
        .assert_success("kv delete");
    assert_eq!(
        leader_http
            .kv_get("cli/greeting", Consistency::Default)
            .await
            .expect("GET"),
        None,
        "the key is gone after `kv delete`"
    );
    let missing = run_cli(BIN, addr, &["kv", "get", "cli/greeting"]).await;
    assert!(
        !missing.success(),
        "`kv get` of a missing key should fail, got stdout {:?}",
        missing.stdout
    );

    run_cli(BIN, addr, &["kv", "delete", "--recurse", "cli/dir"])
        .await
        .assert_success("kv delete --recurse");
    let left = leader_http
        .kv_keys("cli/dir", Consistency::Default)
        .await
        .expect("GET ?keys");
    assert!(
        left.is_empty(),
        "keys left after delete --recurse: {left:?}"
    );

    let members = run_cli(BIN, addr, &["members"]).await;
    members.assert_success("members");
    for server in cluster.servers() {
        assert!(
            members.stdout.contains(server.name()),
            "`members` does not list {}:\n{}",
            server.name(),
            members.stdout
        );
    }

    let peers = run_cli(BIN, addr, &["operator", "raft", "list-peers"]).await;
    peers.assert_success("operator raft list-peers");
    for server in cluster.servers() {
        let raft = server.raft_addr().to_string();
        assert!(
            peers.stdout.contains(server.name()) && peers.stdout.contains(&raft),
            "`list-peers` does not list {} at {raft}:\n{}",
            server.name(),
            peers.stdout
        );
    }
}
