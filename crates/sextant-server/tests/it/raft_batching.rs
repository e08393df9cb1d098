//! Concurrent writes on a three-server cluster, where the leader's batcher
//! packs several commands into one Raft entry: every write must still get a
//! revision of its own, every replica must agree on it, and watchers must see
//! each write once, in revision order. In-process servers on ephemeral ports,
//! driven by a real etcd client; every wait polls under a deadline.

use crate::common;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use sextant_server::{RunningServer, ServerConfig};
use tempfile::TempDir;

const DEADLINE: Duration = Duration::from_secs(30);
const WRITES: usize = 256;
const SERVERS: usize = 3;
const PREFIX: &str = "batch/";

struct Cluster {
    servers: Vec<RunningServer>,
    clients: Vec<Client>,
    _dirs: Vec<TempDir>,
}

fn config(name: &str, dir: &TempDir, join: Vec<String>) -> ServerConfig {
    let mut config = ServerConfig::new(name, dir.path());
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    config.http_addr = any;
    config.grpc_addr = any;
    config.raft_addr = any;
    config.dns_addr = any;
    config.nacos_addr = any;
    config.bootstrap_expect = SERVERS;
    config.join = join;
    config
}

impl Cluster {
    /// Three servers that bootstrap together: the first alone, the others
    /// joining it; returns once all three are voters and agree on a leader.
    async fn start() -> Cluster {
        let dirs: Vec<TempDir> = (0..SERVERS)
            .map(|_| tempfile::tempdir().expect("temporary directory"))
            .collect();
        let first = sextant_server::start(config("b1", &dirs[0], Vec::new()))
            .await
            .expect("first server starts");
        let seed = vec![first.advertised.raft.to_string()];
        let mut servers = vec![first];
        for (i, dir) in dirs.iter().enumerate().skip(1) {
            let name = format!("b{}", i + 1);
            let server = sextant_server::start(config(&name, dir, seed.clone()))
                .await
                .expect("server starts");
            servers.push(server);
        }
        let registries: Vec<_> = servers.iter().map(|s| s.registry.clone()).collect();
        common::poll("three voters agreeing on a leader", DEADLINE, || {
            let registries = registries.clone();
            async move {
                let mut leaders = HashSet::new();
                for registry in &registries {
                    let status = registry.status();
                    let voters = status.membership.voter_ids().count();
                    if voters != SERVERS {
                        return Err(format!("{} sees {voters} voters", registry.id()));
                    }
                    leaders.insert(status.leader);
                }
                match leaders.into_iter().collect::<Vec<_>>().as_slice() {
                    [Some(_)] => Ok(()),
                    other => Err(format!("leaders seen: {other:?}")),
                }
            }
        })
        .await;
        let mut clients = Vec::new();
        for server in &servers {
            let endpoint = server.advertised.grpc.to_string();
            clients.push(
                Client::connect([endpoint], None)
                    .await
                    .expect("client connects"),
            );
        }
        Cluster {
            servers,
            clients,
            _dirs: dirs,
        }
    }

    fn leader(&self) -> &RunningServer {
        self.servers
            .iter()
            .find(|s| s.registry.is_leader())
            .expect("a leader among the servers")
    }

    async fn stop(self) {
        for server in self.servers {
            let _ = server.shutdown(false).await;
        }
    }
}

fn key(i: usize) -> String {
    format!("{PREFIX}{i:04}")
}

fn value(i: usize) -> String {
    format!("value-{i}")
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writes_share_entries_but_keep_their_own_revisions() {
    let cluster = Cluster::start().await;
    let leader = cluster.leader().registry.clone();
    let leader_id = leader.id();

    let start_revision = cluster.clients[0]
        .clone()
        .get("nothing-here", None)
        .await
        .expect("get")
        .header()
        .expect("header")
        .revision() as u64;
    let start_log_index = leader.status().last_log_index.unwrap_or(0);

    // Every server takes a third of the writes: followers forward theirs, so
    // the leader's batcher sees commands from its own API and from Forward.
    let writes = (0..WRITES).map(|i| {
        let mut client = cluster.clients[i % SERVERS].clone();
        tokio::spawn(async move {
            let response = client.put(key(i), value(i), None).await;
            (i, response)
        })
    });
    let mut written: BTreeMap<usize, u64> = BTreeMap::new();
    for handle in writes.collect::<Vec<_>>() {
        let (i, response) = handle.await.expect("write task");
        let response = response.unwrap_or_else(|e| panic!("put {} failed: {e}", key(i)));
        let revision = response.header().expect("header").revision() as u64;
        written.insert(i, revision);
    }
    assert_eq!(written.len(), WRITES, "every write answered");

    let revisions: HashSet<u64> = written.values().copied().collect();
    assert_eq!(
        revisions.len(),
        WRITES,
        "two writes were told the same revision: {written:?}"
    );
    let lowest = *revisions.iter().min().expect("some");
    let final_revision = *revisions.iter().max().expect("some");
    assert!(
        lowest > start_revision,
        "a write reported revision {lowest}, not after the starting {start_revision}"
    );

    // Several commands per entry is what makes revisions outrun log indexes.
    assert!(
        cluster.leader().registry.id() == leader_id,
        "leadership moved during the test; the log comparison would not hold"
    );
    let end_log_index = leader.status().last_log_index.unwrap_or(0);
    let revision_growth = final_revision - start_revision;
    let log_growth = end_log_index - start_log_index;
    println!(
        "{WRITES} writes: revisions {start_revision}..={final_revision} (+{revision_growth}), \
         leader log index {start_log_index}..={end_log_index} (+{log_growth})"
    );
    assert!(
        revision_growth >= WRITES as u64,
        "{WRITES} writes moved the revision only by {revision_growth}"
    );
    assert!(
        revision_growth > log_growth,
        "no Raft entry carried more than one command: the revision grew by \
         {revision_growth}, the log by {log_growth}"
    );

    // Every replica agrees on each key's value and on the revision its write
    // was told (linearizable reads: followers wait for the leader's index).
    for (s, client) in cluster.clients.iter().enumerate() {
        let mut client = client.clone();
        for (&i, &revision) in &written {
            let response = client.get(key(i), None).await.expect("get");
            let kv = response
                .kvs()
                .first()
                .unwrap_or_else(|| panic!("server {s} lacks {}", key(i)));
            assert_eq!(kv.value_str().expect("utf-8"), value(i), "server {s}");
            assert_eq!(
                kv.mod_revision() as u64,
                revision,
                "server {s}: {} has mod_revision {}, its write reported {revision}",
                key(i),
                kv.mod_revision()
            );
            assert_eq!(kv.create_revision() as u64, revision, "server {s}");
        }
        // The same through one range, at the final revision.
        let all = client
            .get(
                PREFIX,
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_revision(final_revision as i64),
                ),
            )
            .await
            .expect("range");
        assert_eq!(
            all.kvs().len(),
            WRITES,
            "server {s} range at {final_revision}"
        );
    }

    // A watch from the starting revision, on every server, replays each put
    // once, in increasing revision order, at the revision its write was told.
    let expected: BTreeMap<u64, String> = written.iter().map(|(&i, &r)| (r, key(i))).collect();
    for (s, client) in cluster.clients.iter().enumerate() {
        let mut client = client.clone();
        let mut stream = client
            .watch(
                PREFIX,
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(start_revision as i64 + 1),
                ),
            )
            .await
            .expect("watch");
        let mut seen: BTreeMap<u64, String> = BTreeMap::new();
        let mut last = start_revision;
        while seen.len() < WRITES {
            let message = tokio::time::timeout(DEADLINE, stream.message()).await;
            let response = match message {
                Ok(Ok(Some(response))) => response,
                other => panic!(
                    "server {s}: watch ended or stalled after {} events: {other:?}",
                    seen.len()
                ),
            };
            assert!(!response.canceled(), "server {s}: watch canceled");
            for event in response.events() {
                assert_eq!(event.event_type(), EventType::Put, "server {s}");
                let kv = event.kv().expect("event kv");
                let revision = kv.mod_revision() as u64;
                assert!(
                    revision > last,
                    "server {s}: event at {revision} after one at {last}"
                );
                last = revision;
                let name = kv.key_str().expect("utf-8").to_string();
                assert!(
                    seen.insert(revision, name).is_none(),
                    "server {s}: revision {revision} seen twice"
                );
            }
        }
        assert_eq!(seen, expected, "server {s}: watched puts");
    }

    cluster.stop().await;
}

/// Values this large cannot share an entry: two exceed the batcher's 128 KiB
/// bound on an entry's commands.
const LARGE_VALUE_BYTES: usize = 96 * 1024;
const LARGE_WRITES: usize = 24;

#[tokio::test(flavor = "multi_thread")]
async fn large_writes_are_not_packed_past_the_entry_size_bound() {
    let cluster = Cluster::start().await;
    let leader = cluster.leader();
    let registry = leader.registry.clone();
    let leader_client = cluster
        .servers
        .iter()
        .position(|s| s.registry.id() == registry.id())
        .map(|i| cluster.clients[i].clone())
        .expect("the leader's client");
    let start_log_index = registry.status().last_log_index.unwrap_or(0);

    let writes: Vec<_> = (0..LARGE_WRITES)
        .map(|i| {
            let mut client = leader_client.clone();
            // Distinct contents, so a mixed-up answer shows in the value.
            let payload = vec![b'a' + (i % 26) as u8; LARGE_VALUE_BYTES];
            tokio::spawn(async move { (i, client.put(key(i), payload, None).await) })
        })
        .collect();
    let mut written = BTreeMap::new();
    for handle in writes {
        let (i, response) = handle.await.expect("write task");
        let response = response.unwrap_or_else(|e| panic!("large put {i} failed: {e}"));
        written.insert(i, response.header().expect("header").revision());
    }
    let distinct: HashSet<i64> = written.values().copied().collect();
    assert_eq!(distinct.len(), LARGE_WRITES, "revisions: {written:?}");

    let log_growth = registry.status().last_log_index.unwrap_or(0) - start_log_index;
    println!("{LARGE_WRITES} writes of {LARGE_VALUE_BYTES} bytes took {log_growth} log entries");
    assert!(
        log_growth >= LARGE_WRITES as u64,
        "{LARGE_WRITES} writes of {LARGE_VALUE_BYTES} bytes fit in {log_growth} entries: \
         some entry holds more than 128 KiB of commands"
    );

    for (s, client) in cluster.clients.iter().enumerate() {
        let mut client = client.clone();
        for (&i, &revision) in &written {
            let response = client.get(key(i), None).await.expect("get");
            let kv = response.kvs().first().expect("key exists");
            assert_eq!(kv.mod_revision(), revision, "server {s}: {}", key(i));
            assert_eq!(kv.value().len(), LARGE_VALUE_BYTES, "server {s}");
            assert!(
                kv.value().iter().all(|&b| b == b'a' + (i % 26) as u8),
                "server {s}: {} holds another write's value",
                key(i)
            );
        }
    }

    cluster.stop().await;
}
