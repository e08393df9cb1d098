//! etcd watch streams that fall behind the watch hub: a client that stops
//! reading makes its stream's task block, the hub's broadcast overflows
//! (`Lagged`) and the stream must catch up by resync, key history and
//! catalog view alike.
//!
//! The server is started with a small hub backlog (`ServerConfig::watch_backlog`),
//! so a few hundred writes make the stream lag.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use etcd_client::{Client, EventType, WatchFilterType, WatchOptions, WatchStream};
use sextant_server::RunningServer;
use sextant_state::catalog::{Node, Service};
use sextant_state::Op;
use tempfile::TempDir;

const DEADLINE: Duration = Duration::from_secs(30);
/// Batches a stream may fall behind before it lags.
const BACKLOG: usize = 8;
/// Replay after a lag sends big responses (etcd's clients accept 2 GiB).
const MAX_RESPONSE: usize = 256 * 1024 * 1024;

struct Harness {
    server: Option<RunningServer>,
    client: Client,
    _dir: TempDir,
}

impl Harness {
    async fn start() -> Harness {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut config = common::single_server_config(dir.path());
        config.watch_backlog = BACKLOG;
        let server = common::start_leader(config, DEADLINE).await;
        let client = Harness::connect(&server).await;
        Harness {
            server: Some(server),
            client,
            _dir: dir,
        }
    }

    async fn connect(server: &RunningServer) -> Client {
        Client::connect([server.advertised.grpc.to_string()], None)
            .await
            .expect("client connects")
    }

    fn server(&self) -> &RunningServer {
        self.server.as_ref().expect("running")
    }

    async fn write(&self, op: Op) -> i64 {
        let outcome = self.server().registry.write(op).await.expect("write");
        i64::try_from(outcome.revision).expect("revision")
    }

    async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            let _ = server.shutdown(false).await;
        }
    }
}

fn register(id: &str, name: &str, port: u16) -> Op {
    Op::RegisterService {
        node: "n1".into(),
        service: Service {
            id: id.into(),
            name: name.into(),
            port,
            ..Service::default()
        },
        checks: Vec::new(),
        replace_checks: false,
    }
}

fn deregister(id: &str) -> Op {
    Op::DeregisterService {
        node: "n1".into(),
        service_id: id.into(),
    }
}

fn instance(name: &str, id: &str) -> String {
    format!("/sextant/services/{name}/n1/{id}")
}

/// One event as a watcher heard it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Heard {
    kind: EventType,
    key: String,
    mod_revision: i64,
    /// The `ServicePort` of a catalog put.
    port: Option<u64>,
}

impl Heard {
    fn of(event: &etcd_client::Event) -> Heard {
        let kv = event.kv().expect("an event has a kv");
        let port = (event.event_type() == EventType::Put && kv.key().starts_with(b"/sextant/"))
            .then(|| {
                let json: serde_json::Value = serde_json::from_slice(kv.value()).expect("json");
                json["ServicePort"].as_u64().expect("a port")
            });
        Heard {
            kind: event.event_type(),
            key: String::from_utf8_lossy(kv.key()).into_owned(),
            mod_revision: kv.mod_revision(),
            port,
        }
    }

    fn summary(&self) -> (EventType, String, Option<u64>) {
        (self.kind, self.key.clone(), self.port)
    }
}

/// Everything heard on one stream, by watch id.
#[derive(Default)]
struct Heards {
    events: BTreeMap<i64, Vec<Heard>>,
    /// Whether a response carried key events of several revisions: only a
    /// replay from history does that, a live delivery is one applied batch
    /// (here, one write).
    replayed: bool,
}

impl Heards {
    /// Reads the stream until `key` was heard by watcher `id`.
    async fn until(&mut self, stream: &mut WatchStream, id: i64, key: &str) {
        while !self
            .events
            .get(&id)
            .is_some_and(|heard| heard.iter().any(|h| h.key == key))
        {
            let response = tokio::time::timeout(DEADLINE, stream.message())
                .await
                .unwrap_or_else(|_| panic!("stalled before {key} reached watcher {id}"))
                .expect("the stream is healthy")
                .expect("the stream is open");
            assert!(!response.canceled(), "a watcher was canceled: {response:?}");
            let revisions: BTreeSet<i64> = response
                .events()
                .iter()
                .filter_map(|e| e.kv())
                .filter(|kv| kv.key().starts_with(b"k/"))
                .map(|kv| kv.mod_revision())
                .collect();
            self.replayed |= revisions.len() > 1;
            self.events
                .entry(response.watch_id())
                .or_default()
                .extend(response.events().iter().map(Heard::of));
        }
    }

    fn of(&self, id: i64) -> Vec<Heard> {
        self.events.get(&id).cloned().unwrap_or_default()
    }
}

fn summaries(heard: &[Heard]) -> Vec<(EventType, String, Option<u64>)> {
    heard.iter().map(Heard::summary).collect()
}

fn assert_in_order(what: &str, heard: &[Heard]) {
    assert!(
        heard
            .windows(2)
            .all(|w| w[0].mod_revision <= w[1].mod_revision),
        "{what} heard events out of revision order: {heard:?}"
    );
}

/// Creates a watcher with an explicit id and waits for `created`.
async fn create(stream: &mut WatchStream, id: i64, key: &str, options: WatchOptions) {
    stream
        .watch(key, Some(options.with_watch_id(id)))
        .await
        .expect("create request");
    let response = tokio::time::timeout(DEADLINE, stream.message())
        .await
        .expect("created in time")
        .expect("healthy")
        .expect("open");
    assert!(response.created(), "{response:?}");
    assert_eq!(response.watch_id(), id);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lagging_stream_catches_up_on_keys_and_the_catalog_view() {
    let h = Harness::start().await;
    h.write(Op::RegisterNode {
        node: Node {
            name: "n1".into(),
            address: "10.0.0.1".into(),
            ..Node::default()
        },
    })
    .await;
    h.write(register("web-1", "web", 8081)).await;
    h.write(register("web-2", "web", 8082)).await;

    // One stream, four watchers: the catalog view, keys, and the view
    // through each filter. It has a connection of its own, so that what it
    // leaves unread cannot hold up the writer's responses.
    const CATALOG: i64 = 1;
    const KEYS: i64 = 2;
    const CATALOG_NOPUT: i64 = 3;
    const CATALOG_NODELETE: i64 = 4;
    let prefix = || WatchOptions::new().with_prefix();
    let mut stream = Harness::connect(h.server())
        .await
        .watch_client()
        .max_decoding_message_size(MAX_RESPONSE)
        .watch("/sextant/services/", Some(prefix().with_watch_id(CATALOG)))
        .await
        .expect("watch");
    let created = stream.message().await.expect("healthy").expect("open");
    assert!(created.created() && created.watch_id() == CATALOG);
    create(&mut stream, KEYS, "k/", prefix()).await;
    create(
        &mut stream,
        CATALOG_NOPUT,
        "/sextant/services/",
        prefix().with_filters([WatchFilterType::NoPut]),
    )
    .await;
    create(
        &mut stream,
        CATALOG_NODELETE,
        "/sextant/services/",
        prefix().with_filters([WatchFilterType::NoDelete]),
    )
    .await;

    // The client stops reading. Big values fill the stream's buffer and
    // HTTP/2 window well past what it can hold, so its task blocks; what
    // follows overflows the hub's backlog many times.
    let c = h.client.clone();
    let big = vec![b'x'; 64 * 1024];
    let mut key_writes: Vec<(String, i64)> = Vec::new();
    let put_key = |key: String, value: Vec<u8>| {
        let mut c = c.clone();
        async move {
            let response = c.put(key.clone(), value, None).await.expect("put");
            (key, response.header().map_or(0, |h| h.revision()))
        }
    };
    for i in 0..300 {
        key_writes.push(put_key(format!("k/big/{i:03}"), big.clone()).await);
    }
    // The catalog changes while the stream is stuck: one instance goes,
    // one comes, one changes, and a new service appears.
    let web3 = h.write(register("web-3", "web", 8083)).await;
    h.write(deregister("web-1")).await;
    let web2 = h.write(register("web-2", "web", 9092)).await;
    let db1 = h.write(register("db-1", "db", 5432)).await;
    for i in 0..100 {
        key_writes.push(put_key(format!("k/small/{i:03}"), b"v".to_vec()).await);
    }
    let lagged_at = key_writes.last().map_or(0, |(_, r)| *r);

    // The client reads again: everything arrives, then live changes do.
    let mut heards = Heards::default();
    heards.until(&mut stream, KEYS, "k/small/099").await;
    assert!(
        heards.replayed,
        "the stream never lagged: the test did not exercise the resync"
    );
    h.write(deregister("db-1")).await;
    h.write(register("db-2", "db", 5433)).await;
    h.write(deregister("db-2")).await;
    key_writes.push(put_key("k/after".into(), b"v".to_vec()).await);
    heards.until(&mut stream, KEYS, "k/after").await;

    // The key watcher: every write once, in order.
    let keys = heards.of(KEYS);
    let heard_keys: Vec<(String, i64)> = keys
        .iter()
        .map(|h| (h.key.clone(), h.mod_revision))
        .collect();
    assert_eq!(heard_keys.len(), key_writes.len());
    assert!(
        heard_keys == key_writes,
        "the key watcher missed or repeated writes"
    );
    assert!(keys.iter().all(|h| h.kind == EventType::Put));

    // The catalog watcher: what changed during the lag, as of the resync
    // (puts at their own revisions, the removal at the resync's), then
    // the live changes.
    let put = |name: &str, id: &str, port: u64| (EventType::Put, instance(name, id), Some(port));
    let delete = |name: &str, id: &str| (EventType::Delete, instance(name, id), None);
    let catalog = heards.of(CATALOG);
    assert_in_order("the catalog watcher", &catalog);
    assert_eq!(
        summaries(&catalog),
        [
            put("web", "web-3", 8083),
            put("web", "web-2", 9092),
            put("db", "db-1", 5432),
            delete("web", "web-1"),
            delete("db", "db-1"),
            put("db", "db-2", 5433),
            delete("db", "db-2"),
        ]
    );
    let revisions: Vec<i64> = catalog[..3].iter().map(|h| h.mod_revision).collect();
    assert_eq!(revisions, [web3, web2, db1]);
    assert!(
        catalog[3].mod_revision >= lagged_at,
        "the removal is reported at the resync's revision: {:?}",
        catalog[3]
    );

    // The filters hold on both paths.
    assert_eq!(
        summaries(&heards.of(CATALOG_NOPUT)),
        [
            delete("web", "web-1"),
            delete("db", "db-1"),
            delete("db", "db-2")
        ]
    );
    assert_eq!(
        summaries(&heards.of(CATALOG_NODELETE)),
        [
            put("web", "web-3", 8083),
            put("web", "web-2", 9092),
            put("db", "db-1", 5432),
            put("db", "db-2", 5433),
        ]
    );

    // Nothing else was sent for the views: the stream is still in order
    // with a current view. A progress request answers on the same stream.
    stream.request_progress().await.expect("progress request");
    let progress = tokio::time::timeout(DEADLINE, stream.message())
        .await
        .expect("progress in time")
        .expect("healthy")
        .expect("open");
    assert!(progress.events().is_empty(), "{progress:?}");
    h.stop().await;
}
