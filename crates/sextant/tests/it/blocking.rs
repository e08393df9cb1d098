//! Blocking queries (`?index=N&wait=D`): they return soon after a change with
//! a higher index, or after the wait with the same index; the index is never 0.

use std::time::{Duration, Instant};

use rand::Rng;
use testkit::{
    random_value, test_rng, Cluster, ClusterOpts, Consistency, HttpClient, KvEntry, ReplyMeta,
    Server,
};

const BIN: &str = env!("CARGO_BIN_EXE_sextant");

/// The wait of queries that are expected to be woken by a write.
const LONG_WAIT: Duration = Duration::from_secs(10);
/// How soon after the write a woken query must have returned.
const PROMPT: Duration = Duration::from_secs(3);

fn index_of(meta: &ReplyMeta, what: &str) -> u64 {
    let index = meta
        .index
        .unwrap_or_else(|| panic!("{what}: no X-Consul-Index header"));
    assert!(index >= 1, "{what}: X-Consul-Index is 0");
    index
}

/// Runs a blocking GET of `key` from `index` in the background, re-issuing it
/// (as clients do) when it returns without a change, until `LONG_WAIT` has
/// passed overall. Yields the first answer with an index above `index`.
fn spawn_blocking_get(
    http: HttpClient,
    key: String,
    index: u64,
) -> tokio::task::JoinHandle<(Option<KvEntry>, ReplyMeta, u32, Instant)> {
    tokio::spawn(async move {
        let start = Instant::now();
        let mut early_returns = 0;
        loop {
            let left = LONG_WAIT.saturating_sub(start.elapsed());
            let (entry, meta) = http
                .kv_block(&key, index, left.max(Duration::from_millis(100)))
                .await
                .unwrap_or_else(|e| panic!("blocking GET {key}: {e:#}"));
            let returned = Instant::now();
            if meta.index.is_some_and(|i| i > index) || start.elapsed() >= LONG_WAIT {
                return (entry, meta, early_returns, returned);
            }
            early_returns += 1;
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn blocking_get_on_a_follower_wakes_on_a_write_elsewhere() {
    let mut rng = test_rng("blocking_get_on_a_follower_wakes_on_a_write_elsewhere");
    let cluster = Cluster::start(BIN, 3, ClusterOpts::default()).await;
    let followers = cluster.follower_indexes().await;
    let (reader, writer) = (cluster.server(followers[0]), cluster.server(followers[1]));
    let key = format!("block/{:08x}", rng.random::<u32>());
    let (first, second) = (random_value(&mut rng, 16), random_value(&mut rng, 16));

    assert!(
        writer
            .http()
            .kv_put(&key, first.clone())
            .await
            .expect("PUT"),
        "PUT returned false"
    );
    let (entry, meta) = reader
        .http()
        .kv_get_meta(&key, Consistency::Default)
        .await
        .expect("GET");
    let index = index_of(&meta, "GET before blocking");
    assert_eq!(entry.and_then(|e| e.value), Some(first.into_bytes()));

    let blocked = spawn_blocking_get(reader.http().clone(), key.clone(), index);
    assert!(
        writer
            .http()
            .kv_put(&key, second.clone())
            .await
            .expect("PUT"),
        "PUT returned false"
    );
    let written_at = Instant::now();

    let (entry, meta, early_returns, returned_at) =
        blocked.await.expect("blocking GET task panicked");
    let new_index = index_of(&meta, "woken blocking GET");
    println!(
        "blocking: woke {:?} after the write, index {index} -> {new_index}, {early_returns} returns without change",
        returned_at.saturating_duration_since(written_at)
    );
    assert!(new_index > index, "woken query kept index {index}");
    assert_eq!(
        entry.and_then(|e| e.value),
        Some(second.into_bytes()),
        "woken query's value"
    );
    assert!(
        returned_at.saturating_duration_since(written_at) < PROMPT,
        "the blocking GET returned {:?} after the write, not promptly",
        returned_at.saturating_duration_since(written_at)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn blocking_get_on_a_missing_key_wakes_when_it_is_created() {
    let mut rng = test_rng("blocking_get_on_a_missing_key_wakes_when_it_is_created");
    let dev = Server::start_dev(BIN).await;
    let http = dev.http();
    let key = format!("block/missing/{:08x}", rng.random::<u32>());

    let (entry, meta) = http
        .kv_get_meta(&key, Consistency::Default)
        .await
        .expect("GET");
    assert_eq!(entry, None, "the key does not exist yet");
    let index = index_of(&meta, "GET of a missing key");

    let blocked = spawn_blocking_get(http.clone(), key.clone(), index);
    assert!(
        http.kv_put(&key, "created").await.expect("PUT"),
        "PUT returned false"
    );
    let written_at = Instant::now();
    let (entry, meta, _, returned_at) = blocked.await.expect("blocking GET task panicked");
    assert!(index_of(&meta, "woken blocking GET") > index);
    assert_eq!(
        entry.and_then(|e| e.value).as_deref(),
        Some(&b"created"[..])
    );
    assert!(
        returned_at.saturating_duration_since(written_at) < PROMPT,
        "returned {:?} after the write",
        returned_at.saturating_duration_since(written_at)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn blocking_recurse_wakes_on_a_write_under_the_prefix() {
    let mut rng = test_rng("blocking_recurse_wakes_on_a_write_under_the_prefix");
    let dev = Server::start_dev(BIN).await;
    let http = dev.http();
    let prefix = format!("block/tree/{:08x}/", rng.random::<u32>());
    assert!(http.kv_put(&format!("{prefix}a"), "1").await.expect("PUT"));
    assert!(http.kv_put(&format!("{prefix}b"), "2").await.expect("PUT"));

    let (entries, meta) = http
        .kv_list_meta(&prefix, Consistency::Default)
        .await
        .expect("GET ?recurse");
    let index = index_of(&meta, "GET ?recurse");
    let max_modify = entries.iter().map(|e| e.modify_index).max().unwrap_or(0);
    assert!(
        index >= max_modify,
        "recurse index {index} below max ModifyIndex {max_modify}"
    );

    let blocker = http.clone();
    let watched = prefix.clone();
    let blocked =
        tokio::spawn(async move { blocker.kv_list_block(&watched, index, LONG_WAIT).await });
    assert!(http.kv_put(&format!("{prefix}c"), "3").await.expect("PUT"));
    let written_at = Instant::now();
    let (entries, meta) = blocked
        .await
        .expect("blocking task panicked")
        .expect("blocking GET ?recurse");
    let elapsed = written_at.elapsed();
    assert!(
        index_of(&meta, "woken GET ?recurse") > index,
        "recurse query returned without a change"
    );
    let keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            format!("{prefix}a"),
            format!("{prefix}b"),
            format!("{prefix}c")
        ]
    );
    assert!(
        elapsed < PROMPT,
        "recurse query returned {elapsed:?} after the write"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn blocking_get_without_change_returns_after_the_wait_with_the_same_index() {
    let dev = Server::start_dev(BIN).await;
    let http = dev.http();
    assert!(http.kv_put("block/still", "same").await.expect("PUT"));
    let (_, meta) = http
        .kv_get_meta("block/still", Consistency::Default)
        .await
        .expect("GET");
    let index = index_of(&meta, "GET");

    let wait = Duration::from_millis(200);
    let start = Instant::now();
    let (entry, meta) = http
        .kv_block("block/still", index, wait)
        .await
        .expect("blocking GET");
    let elapsed = start.elapsed();
    println!("blocking: wait=200ms without change returned after {elapsed:?}");
    assert!(
        elapsed >= wait,
        "returned after {elapsed:?}, before the 200 ms wait"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "returned after {elapsed:?}, far past the wait"
    );
    assert_eq!(
        index_of(&meta, "timed-out blocking GET"),
        index,
        "index changed without a write"
    );
    assert_eq!(entry.and_then(|e| e.value).as_deref(), Some(&b"same"[..]));

    // index=0 does not block.
    let start = Instant::now();
    let (_, meta) = http
        .kv_block("block/still", 0, Duration::from_secs(10))
        .await
        .expect("GET index=0");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "index=0 blocked for {:?}",
        start.elapsed()
    );
    assert_eq!(index_of(&meta, "GET index=0"), index);

    // A client index ahead of the server's (say, after a restore) gets the
    // server's own, lower index back, at the latest after the wait.
    let start = Instant::now();
    let (_, meta) = http
        .kv_block("block/still", index + 1_000_000, wait)
        .await
        .expect("GET with an index from the future");
    assert!(start.elapsed() < Duration::from_secs(5));
    let returned = index_of(&meta, "GET with an index from the future");
    assert!(
        returned < index + 1_000_000,
        "echoed the client's future index {returned}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn index_is_never_zero() {
    let dev = Server::start_dev(BIN).await;
    let http = dev.http();

    // Before any KV write at all.
    let (entry, meta) = http
        .kv_get_meta("never/written", Consistency::Default)
        .await
        .expect("GET");
    assert_eq!(entry, None);
    index_of(&meta, "404 GET on an empty store");
    let (entries, meta) = http
        .kv_list_meta("never/", Consistency::Stale)
        .await
        .expect("GET ?recurse");
    assert!(entries.is_empty());
    index_of(&meta, "404 GET ?recurse&stale on an empty store");
    for consistency in Consistency::ALL {
        let (_, meta) = http
            .kv_get_meta("never/written", consistency)
            .await
            .expect("GET");
        index_of(&meta, &format!("{consistency} GET of a missing key"));
    }

    // After a write and a delete.
    assert!(http.kv_put("never/briefly", "x").await.expect("PUT"));
    assert!(http.kv_delete("never/briefly").await.expect("DELETE"));
    let (entry, meta) = http
        .kv_get_meta("never/briefly", Consistency::Default)
        .await
        .expect("GET");
    assert_eq!(entry, None);
    index_of(&meta, "GET after delete");
}
