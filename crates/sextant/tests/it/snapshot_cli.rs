//! `sextant snapshot save` and `sextant snapshot restore` against a real dev
//! agent and a real 3-server cluster: the state saved comes back on every
//! server, watchers of both APIs wake, revisions never go backwards, and a
//! damaged file is refused without changing anything.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use etcd_client::{Client, EventType, WatchOptions};
use sextant_core::snapshot_archive::Header;
use testkit::{random_value, run_cli, test_rng, Cluster, ClusterOpts, HttpClient};

const BIN: &str = env!("CARGO_BIN_EXE_sextant");
const CONVERGE: Duration = Duration::from_secs(20);
/// Longer than any test here, so a blocking query that returns was woken.
const BLOCK_WAIT: Duration = Duration::from_secs(60);

/// What the tests compare: the keys under `app/` and the `app-*` services.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observed {
    kv: BTreeMap<String, Vec<u8>>,
    /// service name → (node, service id, port) of each instance.
    services: BTreeMap<String, Vec<(String, String, u64)>>,
}

/// The observed state at one server, from its own data (`?stale`).
async fn observe(http: &HttpClient) -> anyhow::Result<Observed> {
    let kv = http.kv_map("app/", testkit::Consistency::Stale).await?;
    let names: BTreeMap<String, serde_json::Value> =
        http.get_json("/v1/catalog/services?stale").await?;
    let mut services = BTreeMap::new();
    for name in names.keys().filter(|n| n.starts_with("app-")) {
        let instances: Vec<serde_json::Value> = http
            .get_json(&format!("/v1/catalog/service/{name}?stale"))
            .await?;
        let mut rows: Vec<(String, String, u64)> = instances
            .iter()
            .map(|i| {
                (
                    i["Node"].as_str().unwrap_or_default().to_owned(),
                    i["ServiceID"].as_str().unwrap_or_default().to_owned(),
                    i["ServicePort"].as_u64().unwrap_or_default(),
                )
            })
            .collect();
        rows.sort();
        services.insert(name.clone(), rows);
    }
    Ok(Observed { kv, services })
}

async fn register(http: &HttpClient, id: &str, name: &str, port: u16) {
    let body = serde_json::json!({"ID": id, "Name": name, "Port": port, "Address": "127.0.0.1"});
    let reply = http
        .put("/v1/agent/service/register", body.to_string())
        .await
        .expect("register");
    assert_eq!(reply.status, 200, "register {id}: {}", reply.text());
}

async fn deregister(http: &HttpClient, id: &str) {
    let reply = http
        .put(&format!("/v1/agent/service/deregister/{id}"), "")
        .await
        .expect("deregister");
    assert_eq!(reply.status, 200, "deregister {id}: {}", reply.text());
}

/// The revision in the restore's summary line.
fn restored_revision(stdout: &str) -> u64 {
    stdout
        .rsplit("now at revision ")
        .next()
        .and_then(|r| r.trim().parse().ok())
        .unwrap_or_else(|| panic!("no revision in {stdout:?}"))
}

/// The changes made after the save, which the restore must undo.
async fn change_everything(http: &HttpClient) {
    http.kv_put("app/config", "changed").await.expect("put");
    http.kv_delete("app/removed-later").await.expect("delete");
    http.kv_put("app/added-later", "new").await.expect("put");
    register(http, "api-1", "app-api", 9000).await;
    deregister(http, "web-2").await;
}

async fn index_of(http: &HttpClient, path: &str) -> u64 {
    let reply = http.get(path).await.expect("read");
    reply.meta.index.expect("X-Consul-Index")
}

/// An etcd watch on `app/` from the next revision; returns the events
/// of the first response at or after `from`, as (kind, key, value, revision).
async fn etcd_watch(
    endpoint: String,
    from: i64,
) -> tokio::task::JoinHandle<anyhow::Result<Vec<(EventType, String, String, i64)>>> {
    let mut client = Client::connect([endpoint], None)
        .await
        .expect("etcd connect");
    let mut stream = client
        .watch(
            "app/",
            Some(WatchOptions::new().with_prefix().with_start_revision(from)),
        )
        .await
        .expect("etcd watch");
    tokio::spawn(async move {
        loop {
            let response = stream.message().await?.context("the watch ended")?;
            let events: Vec<_> = response
                .events()
                .iter()
                .filter_map(|e| {
                    let kv = e.kv()?;
                    Some((
                        e.event_type(),
                        kv.key_str().ok()?.to_owned(),
                        kv.value_str().ok()?.to_owned(),
                        kv.mod_revision(),
                    ))
                })
                .collect();
            if !events.is_empty() {
                return Ok(events);
            }
        }
    })
}

#[tokio::test]
async fn dev_agent_save_change_restore() {
    let dev = testkit::Server::start_dev(BIN).await;
    let http = dev.http().clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("backup.snap");
    let file_arg = file.to_str().expect("utf-8 path");

    for (key, value) in [("app/config", "v1"), ("app/removed-later", "x")] {
        http.kv_put(key, value).await.expect("put");
    }
    register(&http, "web-1", "app-web", 8080).await;
    register(&http, "web-2", "app-web", 8081).await;
    let saved = observe(&http).await.expect("observe");

    let out = run_cli(BIN, dev.http_addr(), &["snapshot", "save", file_arg]).await;
    out.assert_success("snapshot save");
    assert!(
        out.stdout.contains("Saved snapshot of revision"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("Saving") && out.stderr.contains("(100%)"),
        "no progress on stderr: {:?}",
        out.stderr
    );
    let bytes = std::fs::read(&file).expect("saved file");
    let leftovers = std::fs::read_dir(dir.path()).expect("dir").count();
    assert_eq!(
        leftovers, 1,
        "a temporary file was left beside the snapshot"
    );

    change_everything(&http).await;
    assert_ne!(observe(&http).await.expect("observe"), saved);
    let before = index_of(&http, "/v1/kv/app/?keys").await;

    // A Consul blocking query and an etcd watcher, both parked before the restore.
    let blocking = {
        let http = http.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let answer = http.kv_list_block("app/", before, BLOCK_WAIT).await;
            (answer, started.elapsed())
        })
    };
    let watch = etcd_watch(format!("http://{}", dev.grpc_addr()), before as i64 + 1).await;

    let out = run_cli(BIN, dev.http_addr(), &["snapshot", "restore", file_arg]).await;
    out.assert_success("snapshot restore");
    assert!(
        out.stderr.contains("Restoring") && out.stderr.contains("(100%)"),
        "no progress on stderr: {:?}",
        out.stderr
    );
    let revision = restored_revision(&out.stdout);
    assert!(
        revision > before,
        "revision went from {before} to {revision}"
    );
    assert_eq!(observe(&http).await.expect("observe"), saved);
    assert!(index_of(&http, "/v1/kv/app/?keys").await >= revision);

    let (answer, waited) = tokio::time::timeout(CONVERGE, blocking)
        .await
        .expect("the blocking query did not wake")
        .expect("blocking task");
    let (entries, meta) = answer.expect("blocking query");
    assert!(waited < BLOCK_WAIT / 2, "returned only at its timeout");
    assert!(meta.index.is_some_and(|i| i >= revision), "{meta:?}");
    assert!(entries.iter().any(|e| e.key == "app/removed-later"));

    let events = tokio::time::timeout(CONVERGE, watch)
        .await
        .expect("the etcd watcher did not wake")
        .expect("watch task")
        .expect("watch");
    assert!(events.iter().all(|e| e.3 == revision as i64), "{events:?}");
    assert!(events.contains(&(
        EventType::Put,
        "app/config".into(),
        "v1".into(),
        revision as i64
    )));
    assert!(events
        .iter()
        .any(|e| e.0 == EventType::Delete && e.1 == "app/added-later"));

    refuses_damaged_files(&http, &bytes, dir.path(), dev.http_addr()).await;
    assert_eq!(observe(&http).await.expect("observe"), saved);
}

/// Corrupt, truncated and foreign files: 400 with the reason from the
/// server, a refusal before sending from the CLI, and no change.
async fn refuses_damaged_files(
    http: &HttpClient,
    good: &[u8],
    dir: &Path,
    http_addr: std::net::SocketAddr,
) {
    let before = observe(http).await.expect("observe");
    let mut corrupt = good.to_vec();
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0x55;
    let truncated = good[..good.len() * 2 / 3].to_vec();
    // A well-formed file around bytes that are no state.
    let mut foreign = Header::for_body(7, b"\x02not a state").encode().to_vec();
    foreign.extend_from_slice(b"\x02not a state");
    for (name, bytes, reason) in [
        ("corrupt", corrupt, "checksum"),
        ("truncated", truncated, "truncated"),
        ("foreign", foreign, "invalid snapshot"),
        ("empty", Vec::new(), "truncated"),
    ] {
        let reply = http.put("/v1/snapshot", bytes.clone()).await.expect("PUT");
        assert_eq!(reply.status, 400, "{name}: {}", reply.text());
        assert!(reply.text().contains(reason), "{name}: {}", reply.text());

        let path = dir.join(format!("{name}.snap"));
        std::fs::write(&path, &bytes).expect("write");
        let out = run_cli(
            BIN,
            http_addr,
            &["snapshot", "restore", path.to_str().expect("utf-8")],
        )
        .await;
        assert!(!out.success(), "{name} was accepted: {out:?}");
    }
    // Past the route's limit (32 MiB): refused before it is read whole.
    let huge = vec![0u8; 33 * 1024 * 1024];
    let reply = http.put("/v1/snapshot", huge).await.expect("PUT");
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert_eq!(observe(http).await.expect("observe"), before);
}

#[tokio::test]
async fn cluster_restore_reaches_every_server() {
    let mut rng = test_rng("cluster_restore_reaches_every_server");
    let cluster = Cluster::start(BIN, 3, ClusterOpts::default()).await;
    let leader = cluster.leader_index().await;
    let followers = cluster.follower_indexes().await;
    let (f1, f2) = (followers[0], followers[1]);
    let http = cluster.server(leader).http().clone();

    // A few MB, so the restore is one multi-MB Raft entry that must replicate.
    // (Values of 40 KB: KV values still travel through Raft one byte at a
    // time, and a much larger one cannot replicate within openraft's
    // heartbeat-bound AppendEntries timeout in a debug build.)
    for n in 0..100 {
        let value = random_value(&mut rng, 40 * 1024);
        if let Err(e) = http.kv_put(&format!("app/blob/{n}"), value).await {
            panic!("put blob {n}: {e:#}\n{}", cluster.log_tails(40));
        }
    }
    http.kv_put("app/config", "v1").await.expect("put");
    http.kv_put("app/removed-later", "x").await.expect("put");
    register(&http, "web-1", "app-web", 8080).await;
    register(&http, "web-2", "app-web", 8081).await;
    let saved = observe(&http).await.expect("observe");

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("cluster.snap");
    let file_arg = file.to_str().expect("utf-8 path");
    // Saved through a follower, named with --http-addr (the variable names another).
    let addr = cluster.server(f1).http_addr().to_string();
    let out = run_cli(
        BIN,
        cluster.server(leader).http_addr(),
        &["snapshot", "save", file_arg, "--http-addr", &addr],
    )
    .await;
    out.assert_success("snapshot save through a follower");
    let size = std::fs::metadata(&file).expect("saved").len();
    assert!(size > 4_000_000, "snapshot of {size} bytes");

    change_everything(&http).await;
    let before = index_of(&http, "/v1/kv/app/?keys").await;
    let blocking = {
        let follower = cluster.server(f2).http().clone();
        // The service's own index, as the follower has it once caught up.
        let seen = index_of(&follower, "/v1/catalog/service/app-web").await;
        tokio::spawn(async move {
            follower
                .request(
                    reqwest::Method::GET,
                    &format!("/v1/catalog/service/app-web?stale&index={seen}&wait=60s"),
                    None,
                    Some(BLOCK_WAIT * 2),
                )
                .await
        })
    };

    // Restored through the other follower: the entry is forwarded, then replicated.
    let out = run_cli(
        BIN,
        cluster.server(f2).http_addr(),
        &["snapshot", "restore", file_arg],
    )
    .await;
    out.assert_success("snapshot restore through a follower");
    let revision = restored_revision(&out.stdout);
    assert!(
        revision > before,
        "revision went from {before} to {revision}"
    );

    for index in 0..cluster.len() {
        let server = cluster.server(index).http().clone();
        let expected = saved.clone();
        cluster
            .wait_for(
                &format!("server {index} to hold the restored state"),
                CONVERGE,
                || {
                    let server = server.clone();
                    let expected = expected.clone();
                    async move {
                        let now = observe(&server).await.map_err(|e| e.to_string())?;
                        if now == expected {
                            Ok(())
                        } else {
                            Err(format!(
                                "{} keys, services {:?}",
                                now.kv.len(),
                                now.services
                            ))
                        }
                    }
                },
            )
            .await;
        let index_now = index_of(&server, "/v1/kv/app/?keys&stale").await;
        assert!(
            index_now >= revision,
            "server {index} at {index_now} < {revision}"
        );
    }

    let woke = tokio::time::timeout(CONVERGE, blocking)
        .await
        .expect("the blocking query on a follower did not wake")
        .expect("blocking task")
        .expect("blocking query");
    assert!(
        woke.meta.index.is_some_and(|i| i >= revision),
        "{:?}",
        woke.meta
    );
}
