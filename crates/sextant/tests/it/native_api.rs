//! Sextant's native registry API (`sextant.v1.Registry`), driven by a tonic
//! client generated from the proto against real agents: a dev agent and the
//! followers of a 3-server cluster. Register, discover and deregister; TTL
//! instances kept alive (and reaped when the keep-alives stop); the watch
//! stream's Reset / Add / Update / Remove with their revisions, and resuming
//! it; refused requests; no leader.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use futures::channel::mpsc;
use futures::SinkExt;
use sextant_proto::v1::registry_client::RegistryClient;
use sextant_proto::v1::watch_event::Event;
use sextant_proto::v1::{
    check, Check, DeregisterRequest, DiscoverRequest, HealthStatus, Instance, InstanceRef,
    InstanceState, KeepAliveRequest, KeepAliveResponse, RegisterRequest, TcpCheck, WatchEvent,
    WatchRequest,
};
use testkit::{wait_for, Cluster, ClusterOpts, Server};
use tonic::transport::Channel;
use tonic::{Code, Streaming};

const BIN: &str = env!("CARGO_BIN_EXE_sextant");
const DEADLINE: Duration = Duration::from_secs(20);
/// Short enough to watch an instance expire and be reaped within a test.
const TTL_MS: u64 = 1_500;
const REAP_AFTER_MS: u64 = 1_000;

async fn client(grpc: SocketAddr) -> RegistryClient<Channel> {
    RegistryClient::connect(format!("http://{grpc}"))
        .await
        .expect("connect to the gRPC port")
}

fn instance(id: &str, service: &str, port: u32) -> Instance {
    Instance {
        id: id.into(),
        service: service.into(),
        address: "127.0.0.1".into(),
        port,
        ..Instance::default()
    }
}

fn plain(instance: Instance) -> RegisterRequest {
    RegisterRequest {
        instance: Some(instance),
        ..RegisterRequest::default()
    }
}

fn with_ttl(instance: Instance) -> RegisterRequest {
    RegisterRequest {
        instance: Some(instance),
        ttl_ms: TTL_MS,
        deregister_critical_after_ms: REAP_AFTER_MS,
        ..RegisterRequest::default()
    }
}

fn discover_all(service: &str) -> DiscoverRequest {
    DiscoverRequest {
        service: service.into(),
        include_unhealthy: true,
        ..DiscoverRequest::default()
    }
}

fn id_of(state: &InstanceState) -> String {
    state
        .instance
        .as_ref()
        .map(|i| i.id.clone())
        .unwrap_or_default()
}

fn status_of(state: &InstanceState) -> HealthStatus {
    HealthStatus::try_from(state.status).unwrap_or(HealthStatus::Unspecified)
}

async fn discover_ids(
    client: &mut RegistryClient<Channel>,
    request: DiscoverRequest,
) -> Vec<String> {
    let found = client.discover(request).await.expect("discover");
    found.into_inner().instances.iter().map(id_of).collect()
}

/// The health of one instance as Discover (with unhealthy ones) shows it;
/// `None` once it is gone.
async fn health_of(
    client: &mut RegistryClient<Channel>,
    service: &str,
    id: &str,
) -> Option<HealthStatus> {
    let found = client
        .discover(discover_all(service))
        .await
        .expect("discover");
    found
        .into_inner()
        .instances
        .iter()
        .find(|s| id_of(s) == id)
        .map(status_of)
}

/// A KeepAlive stream: messages go in through `tx`, answers come out of `answers`.
struct KeepAlive {
    tx: mpsc::Sender<KeepAliveRequest>,
    answers: Streaming<KeepAliveResponse>,
}

impl KeepAlive {
    async fn open(client: &mut RegistryClient<Channel>) -> KeepAlive {
        let (tx, rx) = mpsc::channel(4);
        let answers = client
            .keep_alive(rx)
            .await
            .expect("keep-alive")
            .into_inner();
        KeepAlive { tx, answers }
    }

    async fn send(
        &mut self,
        instances: &[(&str, &str)],
    ) -> Result<KeepAliveResponse, tonic::Status> {
        let request = KeepAliveRequest {
            instances: instances
                .iter()
                .map(|(id, node)| InstanceRef {
                    instance_id: (*id).into(),
                    node: (*node).into(),
                })
                .collect(),
        };
        self.tx.send(request).await.expect("stream open");
        match tokio::time::timeout(DEADLINE, self.answers.message()).await {
            Ok(Ok(Some(answer))) => Ok(answer),
            Ok(Ok(None)) => panic!("keep-alive stream ended"),
            Ok(Err(status)) => Err(status),
            Err(_) => panic!("no keep-alive answer within {DEADLINE:?}"),
        }
    }
}

async fn next_event(stream: &mut Streaming<WatchEvent>) -> WatchEvent {
    match tokio::time::timeout(DEADLINE, stream.message()).await {
        Ok(Ok(Some(event))) => event,
        other => panic!("no watch event within {DEADLINE:?}: {other:?}"),
    }
}

/// An event in words: `reset [ids]`, `add id status`, `update id status`, `remove id`.
fn describe(event: &WatchEvent) -> String {
    match &event.event {
        Some(Event::Reset(reset)) => {
            let ids: Vec<String> = reset.instances.iter().map(id_of).collect();
            format!("reset {ids:?}")
        }
        Some(Event::Add(s)) => format!("add {} {}", id_of(s), status_of(s).as_str_name()),
        Some(Event::Update(s)) => format!("update {} {}", id_of(s), status_of(s).as_str_name()),
        Some(Event::Remove(r)) => format!("remove {}", r.instance_id),
        None => "empty".into(),
    }
}

async fn watch(
    client: &mut RegistryClient<Channel>,
    request: WatchRequest,
) -> Streaming<WatchEvent> {
    client.watch(request).await.expect("watch").into_inner()
}

/// The next event must read `want` and carry a revision above the last one.
async fn expect_event(stream: &mut Streaming<WatchEvent>, want: &str, last_revision: &mut u64) {
    let event = next_event(stream).await;
    assert_eq!(describe(&event), want);
    assert!(
        event.revision > *last_revision,
        "{want}: revision {} after {}",
        event.revision,
        last_revision
    );
    *last_revision = event.revision;
}

#[tokio::test]
async fn register_discover_and_deregister_on_a_dev_agent() {
    let server = Server::start_dev(BIN).await;
    let mut api = client(server.grpc_addr()).await;

    let first = api
        .register(plain(instance("web-1", "web", 8081)))
        .await
        .expect("register web-1")
        .into_inner();
    assert!(first.revision > 0);
    assert!(!first.node.is_empty());
    let mut tagged = instance("web-2", "web", 8082);
    tagged.tags = vec!["v2".into(), "canary".into()];
    tagged.meta = HashMap::from([("zone".to_string(), "a".to_string())]);
    tagged.weight = 5;
    let second = api
        .register(plain(tagged))
        .await
        .expect("register web-2")
        .into_inner();
    assert!(second.revision > first.revision);

    // Written before the answer: read back at once, from the same server.
    let all = api
        .discover(DiscoverRequest {
            service: "web".into(),
            ..DiscoverRequest::default()
        })
        .await
        .expect("discover")
        .into_inner();
    let ids: Vec<String> = all.instances.iter().map(id_of).collect();
    assert_eq!(ids, ["web-1", "web-2"]);
    assert!(all.revision >= second.revision);
    let web2 = &all.instances[1];
    assert_eq!(status_of(web2), HealthStatus::Passing);
    assert_eq!(web2.node, second.node);
    assert_eq!(web2.revision, second.revision);
    let details = web2.instance.clone().expect("instance");
    assert_eq!((details.port, details.weight), (8082, 5));
    assert_eq!(details.address, "127.0.0.1");

    let by_tag = DiscoverRequest {
        service: "web".into(),
        tags: vec!["canary".into(), "v2".into()],
        ..DiscoverRequest::default()
    };
    assert_eq!(discover_ids(&mut api, by_tag).await, ["web-2"]);
    let missing_tag = DiscoverRequest {
        service: "web".into(),
        tags: vec!["canary".into(), "v3".into()],
        ..DiscoverRequest::default()
    };
    assert!(discover_ids(&mut api, missing_tag).await.is_empty());
    let by_meta = DiscoverRequest {
        service: "web".into(),
        meta: HashMap::from([("zone".to_string(), "a".to_string())]),
        ..DiscoverRequest::default()
    };
    assert_eq!(discover_ids(&mut api, by_meta).await, ["web-2"]);
    let other_zone = DiscoverRequest {
        service: "web".into(),
        meta: HashMap::from([("zone".to_string(), "b".to_string())]),
        ..DiscoverRequest::default()
    };
    assert!(discover_ids(&mut api, other_zone).await.is_empty());

    // The same catalog as the Consul API's.
    let consul = server
        .http()
        .get("/v1/health/service/web?passing")
        .await
        .expect("consul health");
    let entries: Vec<serde_json::Value> = consul.json().expect("json");
    assert_eq!(entries.len(), 2, "{}", consul.text());

    let gone = api
        .deregister(DeregisterRequest {
            instance_id: "web-1".into(),
            node: first.node.clone(),
        })
        .await
        .expect("deregister")
        .into_inner();
    assert!(gone.revision > second.revision);
    assert_eq!(discover_ids(&mut api, discover_all("web")).await, ["web-2"]);
    // Without a node: found where native registrations live.
    api.deregister(DeregisterRequest {
        instance_id: "web-2".into(),
        node: String::new(),
    })
    .await
    .expect("deregister without a node");
    assert!(discover_ids(&mut api, discover_all("web")).await.is_empty());
    // Unknown ids are not an error.
    api.deregister(DeregisterRequest {
        instance_id: "never-registered".into(),
        node: String::new(),
    })
    .await
    .expect("deregister an unknown id");
    assert!(discover_ids(&mut api, discover_all("nothing-here"))
        .await
        .is_empty());
}

#[tokio::test]
async fn malformed_requests_are_invalid_arguments_and_change_nothing() {
    let server = Server::start_dev(BIN).await;
    let mut api = client(server.grpc_addr()).await;
    let probe = |kind, interval_ms| RegisterRequest {
        checks: vec![Check {
            kind,
            interval_ms,
            ..Check::default()
        }],
        ..plain(instance("bad-1", "bad", 80))
    };
    let tcp = Some(check::Kind::Tcp(TcpCheck {
        address: "127.0.0.1:80".into(),
    }));
    let cases = [
        (RegisterRequest::default(), "instance is required"),
        (
            plain(instance("", "bad", 80)),
            "instance.id must not be empty",
        ),
        (
            plain(instance("bad-1", "", 80)),
            "instance.service must not be empty",
        ),
        (
            plain(instance("bad-1", "bad", 70_000)),
            "instance.port 70000 is out of range",
        ),
        (
            probe(None, 1_000),
            "checks[0]: a check needs one of http, tcp or grpc",
        ),
        (probe(tcp, 5), "checks[0]: interval_ms must be at least 100"),
    ];
    for (request, reason) in cases {
        let refused = api.register(request).await.expect_err(reason);
        assert_eq!(
            refused.code(),
            Code::InvalidArgument,
            "{reason}: {refused:?}"
        );
        assert!(refused.message().contains(reason), "{reason}: {refused:?}");
    }
    assert!(discover_ids(&mut api, discover_all("bad")).await.is_empty());

    let refused = api
        .deregister(DeregisterRequest::default())
        .await
        .expect_err("empty id");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let refused = api
        .discover(DiscoverRequest::default())
        .await
        .expect_err("empty service");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("service must not be empty"));
    let refused = api
        .watch(WatchRequest::default())
        .await
        .expect_err("empty service");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let mut keep_alive = KeepAlive::open(&mut api).await;
    let refused = keep_alive.send(&[("", "")]).await.expect_err("empty id");
    assert_eq!(refused.code(), Code::InvalidArgument);

    // The server is fine afterwards.
    api.register(plain(instance("good-1", "good", 80)))
        .await
        .expect("a valid registration");
}

/// Registered with a TTL: critical until the first keep-alive, passing
/// while they come (one write, then memory only), critical once they stop,
/// and removed `deregister_critical_after_ms` later.
async fn ttl_lifecycle(api: &mut RegistryClient<Channel>, observer: &mut RegistryClient<Channel>) {
    let registered = api
        .register(with_ttl(instance("ttl-1", "ttl", 9000)))
        .await
        .expect("register")
        .into_inner();
    let node = registered.node.clone();
    assert_eq!(
        health_of(api, "ttl", "ttl-1").await,
        Some(HealthStatus::Critical)
    );
    let mut keep_alive = KeepAlive::open(api).await;
    let answer = keep_alive
        .send(&[("ttl-1", &node), ("never-registered", &node)])
        .await
        .expect("keep-alive");
    let unknown: Vec<&str> = answer
        .unknown
        .iter()
        .map(|r| r.instance_id.as_str())
        .collect();
    assert_eq!(unknown, ["never-registered"]);
    assert_eq!(answer.ttl_ms, TTL_MS);
    // The first pass was written before the answer.
    assert_eq!(
        health_of(api, "ttl", "ttl-1").await,
        Some(HealthStatus::Passing)
    );
    wait_for(
        "the other server to see ttl-1 passing",
        DEADLINE,
        || async {
            match health_of(&mut observer.clone(), "ttl", "ttl-1").await {
                Some(HealthStatus::Passing) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let passing_revision = api
        .discover(discover_all("ttl"))
        .await
        .expect("discover")
        .into_inner()
        .revision;
    // Further passes stay in memory: over two TTLs of keep-alives the
    // service's revision does not move and the instance stays passing.
    let until = tokio::time::Instant::now() + Duration::from_millis(2 * TTL_MS);
    while tokio::time::Instant::now() < until {
        let answer = keep_alive.send(&[("ttl-1", "")]).await.expect("keep-alive");
        assert!(answer.unknown.is_empty(), "{answer:?}");
        tokio::time::sleep(Duration::from_millis(TTL_MS / 4)).await;
    }
    let now = api
        .discover(discover_all("ttl"))
        .await
        .expect("discover")
        .into_inner();
    assert_eq!(now.revision, passing_revision);
    assert_eq!(
        now.instances.first().map(status_of),
        Some(HealthStatus::Passing)
    );

    // The keep-alives stop.
    drop(keep_alive);
    wait_for("ttl-1 to go critical", DEADLINE, || async {
        match health_of(&mut api.clone(), "ttl", "ttl-1").await {
            Some(HealthStatus::Critical) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    wait_for("ttl-1 to be removed", DEADLINE, || async {
        match health_of(&mut api.clone(), "ttl", "ttl-1").await {
            None => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let mut keep_alive = KeepAlive::open(api).await;
    let answer = keep_alive
        .send(&[("ttl-1", &node)])
        .await
        .expect("keep-alive");
    assert_eq!(answer.unknown.len(), 1, "{answer:?}");
}

#[tokio::test]
async fn a_ttl_instance_lives_by_its_keep_alives() {
    let server = Server::start_dev(BIN).await;
    let mut api = client(server.grpc_addr()).await;
    let mut observer = api.clone();
    ttl_lifecycle(&mut api, &mut observer).await;
}

#[tokio::test]
async fn watch_streams_deltas_in_order_and_resumes() {
    let server = Server::start_dev(BIN).await;
    let mut api = client(server.grpc_addr()).await;
    let mut healthy = watch(
        &mut api,
        WatchRequest {
            service: "api".into(),
            ..WatchRequest::default()
        },
    )
    .await;
    let mut everything = watch(
        &mut api,
        WatchRequest {
            service: "api".into(),
            include_unhealthy: true,
            ..WatchRequest::default()
        },
    )
    .await;
    let (mut healthy_rev, mut all_rev) = (0, 0);
    expect_event(&mut healthy, "reset []", &mut healthy_rev).await;
    expect_event(&mut everything, "reset []", &mut all_rev).await;

    api.register(plain(instance("api-1", "api", 7001)))
        .await
        .expect("register api-1");
    expect_event(
        &mut healthy,
        "add api-1 HEALTH_STATUS_PASSING",
        &mut healthy_rev,
    )
    .await;
    expect_event(
        &mut everything,
        "add api-1 HEALTH_STATUS_PASSING",
        &mut all_rev,
    )
    .await;

    // A TTL instance: critical until kept alive, so only `everything` sees
    // it now. A long TTL and no reaping: it changes only when told to.
    let long_ttl = RegisterRequest {
        ttl_ms: 600_000,
        ..plain(instance("api-2", "api", 7002))
    };
    let node = api
        .register(long_ttl)
        .await
        .expect("register api-2")
        .into_inner()
        .node;
    expect_event(
        &mut everything,
        "add api-2 HEALTH_STATUS_CRITICAL",
        &mut all_rev,
    )
    .await;
    let mut keep_alive = KeepAlive::open(&mut api).await;
    keep_alive
        .send(&[("api-2", &node)])
        .await
        .expect("keep-alive");
    expect_event(
        &mut healthy,
        "add api-2 HEALTH_STATUS_PASSING",
        &mut healthy_rev,
    )
    .await;
    expect_event(
        &mut everything,
        "update api-2 HEALTH_STATUS_PASSING",
        &mut all_rev,
    )
    .await;

    // Its check fails (through the Consul API: the same check).
    let failed = server
        .http()
        .put("/v1/agent/check/fail/service:api-2:ttl", "")
        .await
        .expect("fail the check");
    assert_eq!(failed.status, 200, "{}", failed.text());
    expect_event(&mut healthy, "remove api-2", &mut healthy_rev).await;
    expect_event(
        &mut everything,
        "update api-2 HEALTH_STATUS_CRITICAL",
        &mut all_rev,
    )
    .await;

    // api-1 moves to another port.
    api.register(plain(instance("api-1", "api", 7101)))
        .await
        .expect("re-register api-1");
    let moved = next_event(&mut healthy).await;
    assert_eq!(describe(&moved), "update api-1 HEALTH_STATUS_PASSING");
    assert!(moved.revision > healthy_rev);
    healthy_rev = moved.revision;
    match moved.event {
        Some(Event::Update(state)) => {
            assert_eq!(state.instance.map(|i| i.port), Some(7101));
        }
        other => panic!("{other:?}"),
    }
    expect_event(
        &mut everything,
        "update api-1 HEALTH_STATUS_PASSING",
        &mut all_rev,
    )
    .await;

    api.deregister(DeregisterRequest {
        instance_id: "api-1".into(),
        node: node.clone(),
    })
    .await
    .expect("deregister api-1");
    expect_event(&mut healthy, "remove api-1", &mut healthy_rev).await;
    expect_event(&mut everything, "remove api-1", &mut all_rev).await;

    // Resuming from the last revision seen: nothing until the next change,
    // which comes as a delta, not a Reset.
    let mut resumed = watch(
        &mut api,
        WatchRequest {
            service: "api".into(),
            after_revision: healthy_rev,
            ..WatchRequest::default()
        },
    )
    .await;
    // Resuming from an older revision: the service changed since, so a Reset.
    let mut behind = watch(
        &mut api,
        WatchRequest {
            service: "api".into(),
            include_unhealthy: true,
            after_revision: 1,
            ..WatchRequest::default()
        },
    )
    .await;
    let reset = next_event(&mut behind).await;
    assert_eq!(describe(&reset), "reset [\"api-2\"]");
    assert_eq!(reset.revision, all_rev);

    // Resuming from a revision the cluster never reached (a client that saw
    // a state since lost): a Reset.
    let mut ahead = watch(
        &mut api,
        WatchRequest {
            service: "api".into(),
            include_unhealthy: true,
            after_revision: 1 << 40,
            ..WatchRequest::default()
        },
    )
    .await;
    let reset = next_event(&mut ahead).await;
    assert_eq!(describe(&reset), "reset [\"api-2\"]");

    api.register(plain(instance("api-3", "api", 7003)))
        .await
        .expect("register api-3");
    let mut resumed_rev = healthy_rev;
    expect_event(
        &mut resumed,
        "add api-3 HEALTH_STATUS_PASSING",
        &mut resumed_rev,
    )
    .await;
    expect_event(
        &mut healthy,
        "add api-3 HEALTH_STATUS_PASSING",
        &mut healthy_rev,
    )
    .await;
    assert_eq!(resumed_rev, healthy_rev);
}

#[tokio::test]
async fn followers_of_a_cluster_serve_the_api() {
    let mut cluster = Cluster::start(BIN, 3, ClusterOpts::default()).await;
    let followers = cluster.follower_indexes().await;
    let (a, b) = (followers[0], followers[1]);
    let leader = cluster.leader_index().await;
    let mut via_a = client(cluster.server(a).grpc_addr()).await;
    let mut via_b = client(cluster.server(b).grpc_addr()).await;
    let mut via_leader = client(cluster.server(leader).grpc_addr()).await;

    // A watch on one follower sees what is registered through the other.
    let mut watched = watch(
        &mut via_b,
        WatchRequest {
            service: "orders".into(),
            ..WatchRequest::default()
        },
    )
    .await;
    let mut revision = 0;
    expect_event(&mut watched, "reset []", &mut revision).await;
    let registered = via_a
        .register(plain(instance("orders-1", "orders", 6001)))
        .await
        .expect("register through a follower")
        .into_inner();
    expect_event(
        &mut watched,
        "add orders-1 HEALTH_STATUS_PASSING",
        &mut revision,
    )
    .await;
    assert_eq!(revision, registered.revision);
    // Discover through any server reads what the leader has.
    for api in [&mut via_b, &mut via_leader] {
        assert_eq!(
            discover_ids(api, discover_all("orders")).await,
            ["orders-1"]
        );
    }
    via_b
        .deregister(DeregisterRequest {
            instance_id: "orders-1".into(),
            node: registered.node,
        })
        .await
        .expect("deregister through the other follower");
    expect_event(&mut watched, "remove orders-1", &mut revision).await;

    // TTL checks are owned by any of the servers: keep-alives sent to a
    // server that does not own the check must reach the owner, where the
    // TTL clock lives. Which server owns it follows from its id and the
    // live servers, so it is known before the test registers it.
    via_leader
        .register(with_ttl(instance("ttl-1", "ttl", 9000)))
        .await
        .expect("register ttl-1");
    let owner = wait_for(
        "every server to count all three alive",
        DEADLINE,
        || async {
            let reply = cluster
                .server(leader)
                .http()
                .get("/v1/sextant/health/owners")
                .await
                .map_err(|e| e.to_string())?;
            let owners: serde_json::Value = reply.json().map_err(|e| e.to_string())?;
            let alive = owners["Alive"].as_array().map_or(0, Vec::len);
            let owner = owners["Checks"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["CheckID"] == "service:ttl-1:ttl")
                .and_then(|c| c["Owner"].as_str().map(str::to_owned));
            match owner {
                Some(owner) if alive == 3 => Ok(owner),
                other => Err(format!("{alive} alive, owner {other:?}")),
            }
        },
    )
    .await;
    let not_owner = [a, b, leader]
        .into_iter()
        .find(|i| cluster.server(*i).name() != owner)
        .expect("two servers do not own the check");
    let mut keeper = client(cluster.server(not_owner).grpc_addr()).await;
    ttl_lifecycle(&mut keeper, &mut via_b).await;

    // Without a quorum nothing can be written: Unavailable, not a hang.
    for index in [leader, b] {
        cluster.server_mut(index).kill().await;
    }
    let refused = via_a
        .register(plain(instance("orders-2", "orders", 6002)))
        .await
        .expect_err("no quorum");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
}

/// Applies a watch event to a client's view, as a client does.
fn apply(view: &mut BTreeMap<String, InstanceState>, event: WatchEvent) {
    match event.event {
        Some(Event::Reset(reset)) => {
            view.clear();
            view.extend(reset.instances.into_iter().map(|s| (id_of(&s), s)));
        }
        Some(Event::Add(s) | Event::Update(s)) => {
            view.insert(id_of(&s), s);
        }
        Some(Event::Remove(removed)) => {
            view.remove(&removed.instance_id);
        }
        None => panic!("an empty watch event"),
    }
}

#[tokio::test]
async fn a_watcher_that_does_not_read_holds_up_no_one_and_catches_up() {
    const INSTANCES: u32 = 200;
    let server = Server::start_dev(BIN).await;
    let mut api = client(server.grpc_addr()).await;
    let request = WatchRequest {
        service: "busy".into(),
        ..WatchRequest::default()
    };
    // Opened on its own connection and not read while everything happens.
    let mut stalled = watch(&mut client(server.grpc_addr()).await, request.clone()).await;
    let mut reader = watch(&mut api, request).await;
    let mut seen = BTreeMap::new();
    apply(&mut seen, next_event(&mut reader).await);

    for i in 0..INSTANCES {
        let mut registration = plain(instance(&format!("busy-{i}"), "busy", 10_000 + i));
        if let Some(instance) = registration.instance.as_mut() {
            instance.tags = vec![format!("round-{i}")];
        }
        api.register(registration).await.expect("register");
    }
    while seen.len() < INSTANCES as usize {
        apply(&mut seen, next_event(&mut reader).await);
    }

    // The stalled watcher's view converges on the same set, through far
    // fewer events than there were changes (it skips to the newest state).
    let mut caught_up = BTreeMap::new();
    let mut events = 0;
    while caught_up.len() < INSTANCES as usize {
        apply(&mut caught_up, next_event(&mut stalled).await);
        events += 1;
    }
    let ids = |view: &BTreeMap<String, InstanceState>| view.keys().cloned().collect::<Vec<_>>();
    assert_eq!(ids(&caught_up), ids(&seen));
    let found = api
        .discover(DiscoverRequest {
            service: "busy".into(),
            ..DiscoverRequest::default()
        })
        .await
        .expect("discover")
        .into_inner();
    assert_eq!(found.instances.len(), INSTANCES as usize);
    assert!(events <= INSTANCES as usize + 1, "{events} events");
}
