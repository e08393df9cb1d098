//! The etcd v3 API driven by a real etcd client (the `etcd-client` crate)
//! against in-process servers on ephemeral ports. Nothing sleeps for luck:
//! every wait polls a condition under a deadline.

use crate::common;

use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, PutOptions, Txn, TxnOp, WatchFilterType,
    WatchOptions, WatchStream,
};
use sextant_server::RunningServer;
use sextant_state::catalog::{Node, Service};
use sextant_state::Op;
use tempfile::TempDir;

const DEADLINE: Duration = Duration::from_secs(20);

struct Harness {
    server: Option<RunningServer>,
    client: Client,
    _dir: TempDir,
}

impl Harness {
    /// One server that bootstraps alone, with a short election timeout so
    /// that etcd's minimum lease TTL (1.5 election timeouts) is 1 s.
    async fn start() -> Harness {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = common::single_server_config(dir.path());
        let server = common::start_leader(config, DEADLINE).await;
        let endpoint = server.advertised.grpc.to_string();
        let client = Client::connect([endpoint], None)
            .await
            .expect("client connects");
        Harness {
            server: Some(server),
            client,
            _dir: dir,
        }
    }

    fn server(&self) -> &RunningServer {
        self.server.as_ref().expect("running")
    }

    fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server().advertised.http)
    }

    async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            let _ = server.shutdown(false).await;
        }
    }
}

/// The next response on a watch stream that carries events, within the deadline.
async fn next_events(stream: &mut WatchStream) -> etcd_client::WatchResponse {
    loop {
        let next = tokio::time::timeout(DEADLINE, stream.message()).await;
        match next {
            Ok(Ok(Some(response))) if !response.events().is_empty() => return response,
            Ok(Ok(Some(_))) => continue,
            other => panic!("watch stream ended or stalled: {other:?}"),
        }
    }
}

fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.map_or(0, |h| h.revision())
}

#[tokio::test(flavor = "multi_thread")]
async fn kv_put_get_txn_and_errors_behave_like_etcd() {
    let h = Harness::start().await;
    let mut c = h.client.clone();

    let first = c.put("k/a", "1", None).await.expect("put");
    let r1 = revision_of(first.header());
    assert!(
        r1 >= 2,
        "a fresh store's first put is at revision 2 or later, got {r1}"
    );
    let second = c
        .put("k/a", "2", Some(PutOptions::new().with_prev_key()))
        .await
        .expect("put");
    assert_eq!(second.prev_key().map(|kv| kv.value()), Some(&b"1"[..]));
    c.put("k/b", "3", None).await.expect("put");

    let got = c
        .get("k/", Some(GetOptions::new().with_prefix().with_limit(1)))
        .await
        .expect("get");
    assert_eq!(got.count(), 2);
    assert!(got.more());
    assert_eq!(got.kvs()[0].key(), b"k/a");
    assert_eq!(got.kvs()[0].version(), 2);
    assert_eq!(got.kvs()[0].create_revision(), r1);
    let header = got.header().expect("header");
    assert_ne!(header.cluster_id(), 0);
    assert_eq!(header.member_id(), h.server().advertised.node_id);

    // Compare-and-swap on the value, then on the mod revision.
    let cas = Txn::new()
        .when([Compare::value("k/a", CompareOp::Equal, "2")])
        .and_then([TxnOp::put("k/a", "3", None)])
        .or_else([TxnOp::get("k/a", None)]);
    assert!(c.txn(cas).await.expect("txn").succeeded());
    let stale = Txn::new()
        .when([Compare::mod_revision("k/a", CompareOp::Equal, r1)])
        .and_then([TxnOp::put("k/a", "never", None)]);
    assert!(!c.txn(stale).await.expect("txn").succeeded());

    let duplicate = Txn::new().and_then([TxnOp::put("d", "1", None), TxnOp::put("d", "2", None)]);
    let err = c
        .txn(duplicate)
        .await
        .expect_err("duplicate keys are refused");
    assert!(
        err.to_string()
            .contains("etcdserver: duplicate key given in txn request"),
        "{err}"
    );
    let many: Vec<TxnOp> = (0..129)
        .map(|i| TxnOp::put(format!("m/{i}"), "v", None))
        .collect();
    let err = c
        .txn(Txn::new().and_then(many))
        .await
        .expect_err("129 ops are refused");
    assert!(
        err.to_string()
            .contains("too many operations in txn request"),
        "{err}"
    );

    let err = c
        .put("k/a", "x", Some(PutOptions::new().with_lease(424242)))
        .await
        .expect_err("unknown lease");
    assert!(
        err.to_string().contains("requested lease not found"),
        "{err}"
    );

    let now = revision_of(c.get("k/a", None).await.expect("get").header());
    c.compact(now, None).await.expect("compact");
    let err = c
        .get("k/a", Some(GetOptions::new().with_revision(r1)))
        .await
        .expect_err("compacted");
    assert!(
        err.to_string()
            .contains("required revision has been compacted"),
        "{err}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn watches_are_ordered_gap_free_resumable_and_cancelled_by_compaction() {
    let h = Harness::start().await;
    let mut c = h.client.clone();
    let mut stream = c
        .watch(
            "w/",
            Some(WatchOptions::new().with_prefix().with_prev_key()),
        )
        .await
        .expect("watch");
    let created = tokio::time::timeout(DEADLINE, stream.message())
        .await
        .expect("created in time")
        .expect("stream")
        .expect("a response");
    assert!(created.created());

    let mut written = Vec::new();
    for i in 0..20 {
        let put = c
            .put(format!("w/{}", i % 5), i.to_string(), None)
            .await
            .expect("put");
        written.push(revision_of(put.header()));
    }
    let mut seen = Vec::new();
    while seen.len() < written.len() {
        let response = next_events(&mut stream).await;
        for event in response.events() {
            let kv = event.kv().expect("kv");
            seen.push(kv.mod_revision());
            if kv.version() > 1 {
                assert!(event.prev_kv().is_some(), "prev_kv was asked for");
            }
        }
    }
    assert_eq!(seen, written, "events in order, none missing, none twice");

    // Resume from the last revision seen + 1 on a new stream: only later events.
    let last = *seen.last().expect("events");
    let later = c.put("w/late", "x", None).await.expect("put");
    let mut resumed = c
        .watch(
            "w/",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(last + 1),
            ),
        )
        .await
        .expect("watch");
    let response = next_events(&mut resumed).await;
    let revisions: Vec<i64> = response
        .events()
        .iter()
        .filter_map(|e| e.kv().map(|kv| kv.mod_revision()))
        .collect();
    assert_eq!(revisions, vec![revision_of(later.header())]);

    // A watch from below the compacted revision: created, then canceled.
    let now = revision_of(later.header());
    c.compact(now, None).await.expect("compact");
    let mut old = c
        .watch(
            "w/",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(written[0]),
            ),
        )
        .await
        .expect("watch");
    let mut responses = Vec::new();
    while responses.len() < 2 {
        let response = tokio::time::timeout(DEADLINE, old.message())
            .await
            .expect("in time")
            .expect("stream")
            .expect("a response");
        responses.push(response);
    }
    assert!(responses[0].created());
    assert!(responses[1].canceled());
    assert_eq!(responses[1].compact_revision(), now);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_watcher_does_not_hold_up_another() {
    let h = Harness::start().await;
    let mut c = h.client.clone();
    // Never read until the end: its server-side buffer fills up.
    let mut slow = c
        .watch("s/", Some(WatchOptions::new().with_prefix()))
        .await
        .expect("watch");
    let mut fast = c
        .watch("s/", Some(WatchOptions::new().with_prefix()))
        .await
        .expect("watch");
    const WRITES: usize = 1500;
    let writer = {
        let mut c = c.clone();
        tokio::spawn(async move {
            for i in 0..WRITES {
                c.put(format!("s/{}", i % 7), vec![b'v'; 512], None)
                    .await
                    .expect("put");
            }
        })
    };
    let mut fast_seen = 0;
    while fast_seen < WRITES {
        fast_seen += next_events(&mut fast).await.events().len();
    }
    writer.await.expect("writer");
    let mut revisions = Vec::new();
    while revisions.len() < WRITES {
        let response = next_events(&mut slow).await;
        revisions.extend(
            response
                .events()
                .iter()
                .filter_map(|e| e.kv().map(|kv| kv.mod_revision())),
        );
    }
    assert_eq!(revisions.len(), WRITES);
    assert!(
        revisions.windows(2).all(|w| w[0] < w[1]),
        "the slow watcher got every event in order"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_lease_revokes_its_keys_and_keep_alives_hold_it() {
    let h = Harness::start().await;
    let mut c = h.client.clone();

    let kept = c.lease_grant(1, None).await.expect("grant");
    assert_eq!(
        kept.ttl(),
        1,
        "1.5 election timeouts of 200ms round up to 1s"
    );
    let lapsing = c.lease_grant(1, None).await.expect("grant");
    c.put("l/kept", "v", Some(PutOptions::new().with_lease(kept.id())))
        .await
        .expect("put");
    c.put(
        "l/lapsing",
        "v",
        Some(PutOptions::new().with_lease(lapsing.id())),
    )
    .await
    .expect("put");
    let mut watch = c.watch("l/lapsing", None).await.expect("watch");

    let (mut keeper, mut answers) = c.lease_keep_alive(kept.id()).await.expect("keep-alive");
    // Renew `kept` (as clients do, well within its TTL) until the other
    // lease has expired and taken its key with it.
    let start = Instant::now();
    loop {
        keeper.keep_alive().await.expect("keep-alive sent");
        let answer = answers.message().await.expect("keep-alive answered");
        assert!(
            answer.is_some_and(|a| a.ttl() == 1),
            "a live lease is renewed with its TTL"
        );
        if c.get("l/lapsing", None)
            .await
            .expect("get")
            .kvs()
            .is_empty()
        {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the lapsing lease never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let event = next_events(&mut watch).await;
    assert_eq!(event.events()[0].event_type(), EventType::Delete);
    assert_eq!(
        c.get("l/kept", None).await.expect("get").kvs().len(),
        1,
        "the renewed lease kept its key"
    );
    let ttl = c.lease_time_to_live(lapsing.id(), None).await.expect("ttl");
    assert_eq!(ttl.ttl(), -1, "an expired lease is unknown");

    // A keep-alive for an unknown lease answers TTL 0 (not a gRPC error),
    // which the client reports as "lease not found", as it does with etcd.
    let err = match c.lease_keep_alive(lapsing.id()).await {
        Ok(_) => panic!("the client accepted a keep-alive of an expired lease"),
        Err(e) => e,
    };
    assert!(
        matches!(err, etcd_client::Error::LeaseKeepAliveError(_)),
        "{err}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn consul_and_etcd_share_one_key_space() {
    let h = Harness::start().await;
    let mut c = h.client.clone();
    let http = reqwest::Client::new();

    let mut watch = c
        .watch("shared/", Some(WatchOptions::new().with_prefix()))
        .await
        .expect("watch");
    let put = http
        .put(h.http_url("/v1/kv/shared/from-consul"))
        .body("hello")
        .send()
        .await
        .expect("consul put");
    assert!(put.status().is_success());
    let got = c.get("shared/from-consul", None).await.expect("get");
    assert_eq!(got.kvs()[0].value(), b"hello");
    let event = next_events(&mut watch).await;
    assert_eq!(
        event.events()[0].kv().map(|kv| kv.key()),
        Some(&b"shared/from-consul"[..])
    );

    c.put("shared/from-etcd", "world", None).await.expect("put");
    let raw = http
        .get(h.http_url("/v1/kv/shared/from-etcd?raw"))
        .send()
        .await
        .expect("consul get")
        .text()
        .await
        .expect("body");
    assert_eq!(raw, "world");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_catalog_is_visible_read_only_under_its_prefix() {
    let h = Harness::start().await;
    let mut c = h.client.clone();
    let registry = h.server().registry.clone();
    let prefix = "/sextant/services/web/";
    let mut watch = c
        .watch(prefix, Some(WatchOptions::new().with_prefix()))
        .await
        .expect("watch");

    let register = |id: &str, port: u16| Op::RegisterService {
        node: "n1".into(),
        service: Service {
            id: id.into(),
            name: "web".into(),
            port,
            ..Service::default()
        },
        checks: Vec::new(),
        replace_checks: false,
    };
    registry
        .write(Op::RegisterNode {
            node: Node {
                name: "n1".into(),
                address: "10.0.0.1".into(),
                ..Node::default()
            },
        })
        .await
        .expect("node");
    registry
        .write(register("web-1", 8080))
        .await
        .expect("service");

    let event = next_events(&mut watch).await;
    let kv = event.events()[0].kv().expect("kv");
    assert_eq!(kv.key(), b"/sextant/services/web/n1/web-1");
    let json: serde_json::Value = serde_json::from_slice(kv.value()).expect("json");
    assert_eq!(json["ServicePort"], 8080);
    assert_eq!(json["Status"], "passing");

    let got = c
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .expect("get");
    assert_eq!(got.count(), 1);

    registry
        .write(Op::DeregisterService {
            node: "n1".into(),
            service_id: "web-1".into(),
        })
        .await
        .expect("deregister");
    let event = next_events(&mut watch).await;
    assert_eq!(event.events()[0].event_type(), EventType::Delete);

    let err = c
        .put("/sextant/services/web/n1/x", "forged", None)
        .await
        .expect_err("the view is read-only");
    assert!(err.to_string().contains("permission denied"), "{err}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_catalog_watch_from_the_past_replays_puts_unless_filtered() {
    let h = Harness::start().await;
    let mut c = h.client.clone();
    let registry = h.server().registry.clone();
    let prefix = "/sextant/services/web/";
    let register = |id: &str| Op::RegisterService {
        node: "n1".into(),
        service: Service {
            id: id.into(),
            name: "web".into(),
            port: 8080,
            ..Service::default()
        },
        checks: Vec::new(),
        replace_checks: false,
    };
    registry
        .write(Op::RegisterNode {
            node: Node {
                name: "n1".into(),
                address: "10.0.0.1".into(),
                ..Node::default()
            },
        })
        .await
        .expect("node");
    registry.write(register("web-1")).await.expect("service");

    // From revision 1, the view's instances are replayed as puts; a NOPUT
    // watcher gets none of them, a NODELETE watcher all of them.
    let from_start = || WatchOptions::new().with_prefix().with_start_revision(1);
    let mut all = c.watch(prefix, Some(from_start())).await.expect("watch");
    let mut no_put = c
        .watch(
            prefix,
            Some(from_start().with_filters([WatchFilterType::NoPut])),
        )
        .await
        .expect("watch");
    let mut no_delete = c
        .watch(
            prefix,
            Some(from_start().with_filters([WatchFilterType::NoDelete])),
        )
        .await
        .expect("watch");
    let web1 = b"/sextant/services/web/n1/web-1".as_slice();
    let web2 = b"/sextant/services/web/n1/web-2".as_slice();
    let first = |r: &etcd_client::WatchResponse| {
        let e = &r.events()[0];
        (e.event_type(), e.kv().map(|kv| kv.key().to_vec()))
    };
    assert_eq!(
        first(&next_events(&mut all).await),
        (EventType::Put, Some(web1.to_vec()))
    );
    assert_eq!(
        first(&next_events(&mut no_delete).await),
        (EventType::Put, Some(web1.to_vec()))
    );

    registry
        .write(Op::DeregisterService {
            node: "n1".into(),
            service_id: "web-1".into(),
        })
        .await
        .expect("deregister");
    registry.write(register("web-2")).await.expect("service");
    let heard = next_events(&mut no_put).await;
    assert_eq!(heard.events().len(), 1);
    assert_eq!(first(&heard), (EventType::Delete, Some(web1.to_vec())));
    let heard = next_events(&mut no_delete).await;
    assert_eq!(heard.events().len(), 1);
    assert_eq!(first(&heard), (EventType::Put, Some(web2.to_vec())));
    assert_eq!(
        first(&next_events(&mut all).await),
        (EventType::Delete, Some(web1.to_vec()))
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn status_and_member_list_describe_this_server() {
    let h = Harness::start().await;
    let mut c = h.client.clone();
    let status = c.status().await.expect("status");
    assert!(status.version().starts_with("3."));
    assert_eq!(status.leader(), h.server().advertised.node_id);
    assert!(status.raft_term() >= 1);
    let members = c.member_list().await.expect("members");
    let me = &members.members()[0];
    assert_eq!(me.id(), h.server().advertised.node_id);
    assert_eq!(
        me.client_urls(),
        [format!("http://{}", h.server().advertised.grpc)]
    );
    h.stop().await;
}
