//! The Nacos v1 naming API (`--nacos-addr`), against a dev agent and through
//! a follower of a 3-server cluster: registration, lists (healthy only, by
//! cluster, with the protection threshold), beats, instances whose beats stop
//! (unhealthy, then removed), service definitions, and bad input, which gets
//! Nacos's error shape and changes nothing. The real `nacos-sdk-python` v1
//! client drives `tests/python/nacos_interop.py` against both.
//!
//! The agents run with short Nacos timers (`--nacos-beat-timeout`,
//! `--nacos-delete-timeout`) so that expiry takes seconds, not Nacos's 15 s
//! and 30 s.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::{wait_for, Cluster, ClusterOpts, Server, ServerOpts};

const BIN: &str = env!("CARGO_BIN_EXE_sextant");
const BEAT_TIMEOUT: Duration = Duration::from_secs(2);
const DELETE_TIMEOUT: Duration = Duration::from_secs(4);
/// How late an expiry may come: the health tick, the write, the apply, on
/// a loaded machine. Only an upper bound: how early is checked exactly.
const EXPIRY_SLACK: Duration = Duration::from_secs(10);

fn timer_args() -> Vec<String> {
    vec![
        "--nacos-beat-timeout".into(),
        format!("{}ms", BEAT_TIMEOUT.as_millis()),
        "--nacos-delete-timeout".into(),
        format!("{}ms", DELETE_TIMEOUT.as_millis()),
    ]
}

async fn dev_agent() -> Server {
    Server::start_dev_with(BIN, &timer_args()).await
}

async fn cluster() -> Cluster {
    let opts = ClusterOpts {
        server: ServerOpts {
            extra_args: timer_args(),
            ..ServerOpts::default()
        },
        ..ClusterOpts::default()
    };
    Cluster::start(BIN, 3, opts).await
}

/// A client of one server's Nacos API, sending form parameters as Nacos's
/// Java client does (in the body for POST and PUT, in the query otherwise).
#[derive(Clone)]
struct Nacos {
    http: reqwest::Client,
    base: String,
}

impl Nacos {
    fn new(addr: SocketAddr) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("HTTP client"),
            base: format!("http://{addr}/nacos/v1/ns"),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        params: &[(&str, &str)],
    ) -> (u16, String) {
        let url = format!("{}{path}", self.base);
        let request = if method == reqwest::Method::POST || method == reqwest::Method::PUT {
            self.http.request(method, url).form(params)
        } else {
            self.http.request(method, url).query(params)
        };
        let answer = request.send().await.expect("request sent");
        let status = answer.status().as_u16();
        (status, answer.text().await.expect("body"))
    }

    async fn ok(&self, method: reqwest::Method, path: &str, params: &[(&str, &str)]) {
        let (status, body) = self.call(method.clone(), path, params).await;
        assert_eq!(
            (status, body.as_str()),
            (200, "ok"),
            "{method} {path} {params:?}"
        );
    }

    async fn json(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, params).await;
        assert_eq!(status, 200, "GET {path} {params:?}: {body}");
        serde_json::from_str(&body).expect("JSON")
    }

    async fn register(&self, service: &str, port: u16, extra: &[(&str, &str)]) {
        let port = port.to_string();
        let mut params = vec![
            ("serviceName", service),
            ("ip", "127.0.0.1"),
            ("port", port.as_str()),
        ];
        params.extend_from_slice(extra);
        self.ok(reqwest::Method::POST, "/instance", &params).await;
    }

    async fn beat(&self, service: &str, port: u16, cluster: &str) -> Value {
        let beat = serde_json::json!({
            "serviceName": format!("DEFAULT_GROUP@@{service}"),
            "ip": "127.0.0.1",
            "port": port,
            "cluster": cluster,
        })
        .to_string();
        let (status, body) = self
            .call(
                reqwest::Method::PUT,
                "/instance/beat",
                &[("beat", beat.as_str())],
            )
            .await;
        assert_eq!(status, 200, "beat: {body}");
        serde_json::from_str(&body).expect("JSON")
    }

    async fn list(&self, service: &str, extra: &[(&str, &str)]) -> Value {
        let mut params = vec![("serviceName", service)];
        params.extend_from_slice(extra);
        self.json("/instance/list", &params).await
    }

    /// (port, healthy) of every host a list returns, by port.
    async fn hosts(&self, service: &str, extra: &[(&str, &str)]) -> Vec<(u16, bool)> {
        let list = self.list(service, extra).await;
        let mut hosts: Vec<(u16, bool)> = list["hosts"]
            .as_array()
            .expect("hosts")
            .iter()
            .map(|h| {
                (
                    h["port"].as_u64().expect("port") as u16,
                    h["healthy"] == true,
                )
            })
            .collect();
        hosts.sort();
        hosts
    }
}

/// Registration, lists, beats, deregistration, bad input.
async fn naming_round_trip(nacos: &Nacos) {
    let svc = "orders";
    nacos
        .register(
            svc,
            8001,
            &[("clusterName", "a"), ("metadata", r#"{"zone":"z1"}"#)],
        )
        .await;
    nacos
        .register(svc, 8002, &[("clusterName", "b"), ("weight", "3")])
        .await;
    nacos
        .register(
            svc,
            8003,
            &[
                ("clusterName", "a"),
                ("ephemeral", "false"),
                ("healthy", "false"),
            ],
        )
        .await;

    let list = nacos.list(svc, &[]).await;
    assert_eq!(list["name"], "DEFAULT_GROUP@@orders");
    assert_eq!(list["valid"], true);
    assert_eq!(list["reachProtectionThreshold"], false);
    assert!(list["cacheMillis"].as_u64().is_some() && list["lastRefTime"].as_u64().is_some());
    assert!(list["checksum"].as_str().is_some_and(|c| !c.is_empty()));
    let first = list["hosts"]
        .as_array()
        .and_then(|h| h.iter().find(|h| h["port"] == 8001))
        .expect("instance 8001");
    assert_eq!(
        first["instanceId"],
        "127.0.0.1#8001#a#DEFAULT_GROUP@@orders"
    );
    assert_eq!(first["serviceName"], "DEFAULT_GROUP@@orders");
    assert_eq!(first["metadata"]["zone"], "z1");
    assert_eq!(
        (first["ephemeral"].clone(), first["enabled"].clone()),
        (true.into(), true.into())
    );
    assert_eq!(
        nacos.hosts(svc, &[]).await,
        vec![(8001, true), (8002, true), (8003, false)]
    );
    assert_eq!(
        nacos.hosts(svc, &[("healthyOnly", "true")]).await,
        vec![(8001, true), (8002, true)]
    );
    assert_eq!(
        nacos.hosts(svc, &[("clusters", "a")]).await,
        vec![(8001, true), (8003, false)]
    );
    assert_eq!(
        nacos
            .hosts(svc, &[("clusters", "b,c"), ("healthyOnly", "true")])
            .await,
        vec![(8002, true)]
    );
    // Another namespace or group sees nothing of it, and the reverse.
    assert_eq!(nacos.hosts(svc, &[("namespaceId", "dev")]).await, vec![]);
    assert_eq!(nacos.hosts(svc, &[("groupName", "other")]).await, vec![]);
    nacos
        .register(svc, 8001, &[("namespaceId", "dev"), ("groupName", "g2")])
        .await;
    let in_dev = [("namespaceId", "dev"), ("groupName", "g2")];
    assert_eq!(nacos.hosts(svc, &in_dev).await, vec![(8001, true)]);
    assert_eq!(nacos.list(svc, &in_dev).await["name"], "g2@@orders");
    assert_eq!(nacos.hosts(svc, &[]).await.len(), 3);
    let mut dev_instance = vec![("serviceName", svc), ("ip", "127.0.0.1"), ("port", "8001")];
    dev_instance.extend_from_slice(&in_dev);
    nacos
        .ok(reqwest::Method::DELETE, "/instance", &dev_instance)
        .await;
    assert_eq!(nacos.hosts(svc, &in_dev).await, vec![]);

    // A persistent instance's health is set by hand; an ephemeral one's is not.
    let persistent = [
        ("serviceName", svc),
        ("ip", "127.0.0.1"),
        ("port", "8003"),
        ("clusterName", "a"),
    ];
    let mut healthy = persistent.to_vec();
    healthy.push(("healthy", "true"));
    nacos
        .ok(reqwest::Method::PUT, "/health/instance", &healthy)
        .await;
    assert!(nacos.hosts(svc, &[]).await.contains(&(8003, true)));
    let mut unhealthy = persistent.to_vec();
    unhealthy.push(("healthy", "false"));
    nacos
        .ok(reqwest::Method::PUT, "/health/instance", &unhealthy)
        .await;
    assert!(nacos.hosts(svc, &[]).await.contains(&(8003, false)));
    let (status, body) = nacos
        .call(
            reqwest::Method::PUT,
            "/health/instance",
            &[
                ("serviceName", svc),
                ("ip", "127.0.0.1"),
                ("port", "8001"),
                ("clusterName", "a"),
                ("healthy", "false"),
            ],
        )
        .await;
    assert_eq!(
        status, 400,
        "manual health of an ephemeral instance: {body}"
    );

    let beat = nacos.beat(svc, 8001, "a").await;
    assert_eq!(beat["code"], 10200, "{beat}");
    assert_eq!(beat["lightBeatEnabled"], true);
    assert!(beat["clientBeatInterval"].as_u64().is_some_and(|ms| ms > 0));
    // A light beat: parameters only.
    let (status, body) = nacos
        .call(
            reqwest::Method::PUT,
            "/instance/beat",
            &[
                ("serviceName", svc),
                ("ip", "127.0.0.1"),
                ("port", "8002"),
                ("clusterName", "b"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    assert!(body.contains("10200"), "{body}");
    let unknown = nacos.beat(svc, 9999, "a").await;
    assert_eq!(unknown["code"], 20404, "{unknown}");

    let detail = nacos
        .json(
            "/instance",
            &[
                ("serviceName", svc),
                ("ip", "127.0.0.1"),
                ("port", "8002"),
                ("clusterName", "b"),
            ],
        )
        .await;
    assert_eq!(detail["weight"], 3.0);
    assert_eq!(detail["service"], "DEFAULT_GROUP@@orders");

    bad_input_changes_nothing(nacos, svc).await;

    for (port, cluster) in [("8001", "a"), ("8002", "b"), ("8003", "a")] {
        nacos
            .ok(
                reqwest::Method::DELETE,
                "/instance",
                &[
                    ("serviceName", svc),
                    ("ip", "127.0.0.1"),
                    ("port", port),
                    ("clusterName", cluster),
                ],
            )
            .await;
    }
    assert_eq!(nacos.hosts(svc, &[]).await, vec![]);
    // Deregistering again is fine, and beats now ask to register again.
    nacos
        .ok(
            reqwest::Method::DELETE,
            "/instance",
            &[
                ("serviceName", svc),
                ("ip", "127.0.0.1"),
                ("port", "8001"),
                ("clusterName", "a"),
            ],
        )
        .await;
    assert_eq!(nacos.beat(svc, 8001, "a").await["code"], 20404);
}

/// A request that must be refused: method, path, parameters.
type BadRequest<'a> = (reqwest::Method, &'a str, Vec<(&'a str, &'a str)>);

/// Each malformed request answers 400 with `caused: …;` and the instances
/// of `svc` stay as they were.
async fn bad_input_changes_nothing(nacos: &Nacos, svc: &str) {
    let before = nacos.hosts(svc, &[]).await;
    let bad: Vec<BadRequest> = vec![
        (
            reqwest::Method::POST,
            "/instance",
            vec![("ip", "127.0.0.1"), ("port", "1")],
        ),
        (
            reqwest::Method::POST,
            "/instance",
            vec![("serviceName", svc), ("port", "1")],
        ),
        (
            reqwest::Method::POST,
            "/instance",
            vec![("serviceName", svc), ("ip", "127.0.0.1"), ("port", "x")],
        ),
        (
            reqwest::Method::POST,
            "/instance",
            vec![("serviceName", svc), ("ip", "127.0.0.1"), ("port", "70000")],
        ),
        (
            reqwest::Method::POST,
            "/instance",
            vec![
                ("serviceName", svc),
                ("ip", "127.0.0.1"),
                ("port", "1"),
                ("weight", "-1"),
            ],
        ),
        (
            reqwest::Method::POST,
            "/instance",
            vec![
                ("serviceName", svc),
                ("ip", "127.0.0.1"),
                ("port", "1"),
                ("metadata", "{bad"),
            ],
        ),
        (
            reqwest::Method::POST,
            "/instance",
            vec![
                ("serviceName", svc),
                ("ip", "127.0.0.1"),
                ("port", "1"),
                ("clusterName", "no spaces"),
            ],
        ),
        (
            reqwest::Method::POST,
            "/instance",
            vec![
                ("serviceName", "a@@b@@c"),
                ("ip", "127.0.0.1"),
                ("port", "1"),
            ],
        ),
        (
            reqwest::Method::POST,
            "/instance",
            vec![
                ("serviceName", svc),
                ("ip", "127.0.0.1"),
                ("port", "1"),
                ("ephemeral", "perhaps"),
            ],
        ),
        (
            reqwest::Method::PUT,
            "/instance",
            vec![("serviceName", svc), ("ip", "127.0.0.9"), ("port", "1")],
        ),
        (
            reqwest::Method::PUT,
            "/instance/beat",
            vec![("beat", "{not json")],
        ),
        (
            reqwest::Method::GET,
            "/instance/list",
            vec![("healthyOnly", "true")],
        ),
        (
            reqwest::Method::POST,
            "/service",
            vec![("serviceName", svc), ("protectThreshold", "2")],
        ),
    ];
    for (method, path, params) in bad {
        let (status, body) = nacos.call(method.clone(), path, &params).await;
        assert_eq!(status, 400, "{method} {path} {params:?}: {body}");
        assert!(
            body.starts_with("caused: ") && body.ends_with(';'),
            "{method} {path} {params:?}: {body}"
        );
    }
    let (status, body) = nacos
        .call(
            reqwest::Method::POST,
            "/instance",
            &[("serviceName", svc), ("port", "1")],
        )
        .await;
    assert_eq!(
        (status, body.as_str()),
        (400, "caused: Param 'ip' is required.;")
    );
    assert_eq!(nacos.hosts(svc, &[]).await, before);
}

/// A service's protection threshold: at or below it, every instance comes back.
async fn protection_threshold(nacos: &Nacos) {
    let svc = "payments";
    nacos
        .ok(
            reqwest::Method::POST,
            "/service",
            &[
                ("serviceName", svc),
                ("protectThreshold", "0.5"),
                ("metadata", "owner=team-a"),
            ],
        )
        .await;
    let (status, body) = nacos
        .call(reqwest::Method::POST, "/service", &[("serviceName", svc)])
        .await;
    assert_eq!(status, 400, "creating twice: {body}");
    nacos.register(svc, 7001, &[("ephemeral", "false")]).await;
    nacos
        .register(svc, 7002, &[("ephemeral", "false"), ("healthy", "false")])
        .await;
    nacos
        .register(svc, 7003, &[("ephemeral", "false"), ("healthy", "false")])
        .await;
    // 1 of 3 healthy: 0.33 <= 0.5, so every instance is returned.
    let list = nacos.list(svc, &[("healthyOnly", "true")]).await;
    assert_eq!(list["reachProtectionThreshold"], true, "{list}");
    assert_eq!(
        nacos.hosts(svc, &[("healthyOnly", "true")]).await,
        vec![(7001, true), (7002, false), (7003, false)]
    );
    nacos
        .ok(
            reqwest::Method::PUT,
            "/service",
            &[("serviceName", svc), ("protectThreshold", "0.2")],
        )
        .await;
    let detail = nacos.json("/service", &[("serviceName", svc)]).await;
    assert_eq!(detail["protectThreshold"], 0.2);
    assert_eq!(detail["metadata"]["owner"], "team-a");
    let list = nacos.list(svc, &[("healthyOnly", "true")]).await;
    assert_eq!(list["reachProtectionThreshold"], false, "{list}");
    assert_eq!(
        nacos.hosts(svc, &[("healthyOnly", "true")]).await,
        vec![(7001, true)]
    );

    let services = nacos
        .json("/service/list", &[("pageNo", "1"), ("pageSize", "100")])
        .await;
    let names: Vec<&str> = services["doms"]
        .as_array()
        .expect("doms")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(names.contains(&svc), "{services}");
    let (status, body) = nacos
        .call(reqwest::Method::DELETE, "/service", &[("serviceName", svc)])
        .await;
    assert_eq!(status, 400, "deleting a service with instances: {body}");
    for port in ["7001", "7002", "7003"] {
        nacos
            .ok(
                reqwest::Method::DELETE,
                "/instance",
                &[
                    ("serviceName", svc),
                    ("ip", "127.0.0.1"),
                    ("port", port),
                    ("ephemeral", "false"),
                ],
            )
            .await;
    }
    nacos
        .ok(reqwest::Method::DELETE, "/service", &[("serviceName", svc)])
        .await;
    let (status, _) = nacos
        .call(reqwest::Method::GET, "/service", &[("serviceName", svc)])
        .await;
    assert_eq!(status, 404);
}

/// An instance that stops beating turns unhealthy after the beat timeout
/// and is removed after the delete timeout, while one that keeps beating
/// stays healthy all along.
async fn silent_instances_expire(nacos: &Nacos) {
    let svc = "inventory";
    nacos.register(svc, 6001, &[]).await;
    nacos.register(svc, 6002, &[]).await;
    let beater = {
        let nacos = nacos.clone();
        tokio::spawn(async move {
            loop {
                let answer = nacos.beat(svc, 6002, "DEFAULT").await;
                assert_eq!(answer["code"], 10200, "{answer}");
                tokio::time::sleep(BEAT_TIMEOUT / 5).await;
            }
        })
    };
    // Taken before the beat is sent, so no earlier than the server's renewal.
    let last_beat = Instant::now();
    assert_eq!(nacos.beat(svc, 6001, "DEFAULT").await["code"], 10200);

    wait_for(
        "the silent instance to turn unhealthy",
        BEAT_TIMEOUT + EXPIRY_SLACK,
        || async {
            match nacos.hosts(svc, &[]).await.as_slice() {
                [(6001, false), (6002, true)] => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert!(
        last_beat.elapsed() >= BEAT_TIMEOUT,
        "unhealthy after {:?}, before the beat timeout",
        last_beat.elapsed()
    );
    assert_eq!(
        nacos.hosts(svc, &[("healthyOnly", "true")]).await,
        vec![(6002, true)]
    );
    wait_for(
        "the silent instance to be removed",
        DELETE_TIMEOUT + EXPIRY_SLACK,
        || async {
            match nacos.hosts(svc, &[]).await.as_slice() {
                [(6002, true)] => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert!(
        last_beat.elapsed() >= DELETE_TIMEOUT,
        "removed after {:?}, before the delete timeout",
        last_beat.elapsed()
    );
    assert_eq!(nacos.beat(svc, 6001, "DEFAULT").await["code"], 20404);
    beater.abort();
    // Re-registering brings it back, healthy.
    nacos.register(svc, 6001, &[]).await;
    assert_eq!(
        nacos.hosts(svc, &[("healthyOnly", "true")]).await,
        vec![(6001, true), (6002, true)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_agent_serves_the_nacos_naming_api() {
    let dev = dev_agent().await;
    let nacos = Nacos::new(dev.nacos_addr());
    naming_round_trip(&nacos).await;
    protection_threshold(&nacos).await;
    silent_instances_expire(&nacos).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_serves_the_nacos_naming_api() {
    let cluster = cluster().await;
    let followers = cluster.followers().await;
    let nacos = Nacos::new(followers[0].nacos_addr());
    naming_round_trip(&nacos).await;
    protection_threshold(&nacos).await;
    silent_instances_expire(&nacos).await;
    // The other follower sees the replicated instances too.
    let other = Nacos::new(followers[1].nacos_addr());
    wait_for(
        "the other follower to apply",
        Duration::from_secs(10),
        || async {
            match other.hosts("inventory", &[]).await.len() {
                2 => Ok(()),
                n => Err(format!("{n} instances")),
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_nacos_client_works() {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/nacos_interop.py");
    let dev = dev_agent().await;
    run_python(&script, dev.nacos_addr(), "py-dev").await;
    drop(dev);
    let cluster = cluster().await;
    let followers = cluster.followers().await;
    run_python(&script, followers[0].nacos_addr(), "py-follower").await;
}

async fn run_python(script: &std::path::Path, nacos: SocketAddr, service: &str) {
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("python3")
            .arg(script)
            .args(["--port", &nacos.port().to_string(), "--service", service])
            .output(),
    )
    .await
    .expect("the Python script finishes in time")
    .expect("python3 runs (nacos-sdk-python is installed by scripts/test.sh)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success() && stdout.contains("8 passed, 0 failed"),
        "nacos_interop.py against {nacos}:\n{stdout}\n{stderr}"
    );
}
