//! Consul compatibility, judged by clients nobody on this project wrote:
//! the acceptance script `shared/tools/consul_smoke.py` (py-consul 1.8.0)
//! against a dev agent and against a 3-server cluster through a follower,
//! the exact JSON of the article's Go snippet, malformed registrations, and
//! a check whose owner dies.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use testkit::{wait_for, Cluster, ClusterOpts, HttpClient, Server};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_sextant");

fn shared_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// A base port with the two after it free too (the smoke script serves
/// /health on port, port+1 and port+2).
fn three_free_ports() -> u16 {
    for _ in 0..100 {
        let Ok(first) = StdListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = first.local_addr() else {
            continue;
        };
        let base = addr.port();
        if base > 65_000 {
            continue;
        }
        let rest: Vec<_> = (1..=2)
            .map(|i| StdListener::bind(("127.0.0.1", base + i)))
            .collect();
        if rest.iter().all(Result::is_ok) {
            return base;
        }
    }
    panic!("no three consecutive free ports on 127.0.0.1");
}

async fn run_smoke(http: SocketAddr) {
    let script = shared_dir().join("tools/consul_smoke.py");
    let health_port = three_free_ports();
    let output = tokio::process::Command::new("python3")
        .arg(&script)
        .args(["--host", "127.0.0.1", "--port", &http.port().to_string()])
        .args(["--health-port", &health_port.to_string()])
        .args(["--dereg-timeout", "30"])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(200), output)
        .await
        .expect("consul_smoke.py did not finish within 200 s")
        .expect("cannot run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("22 passed, 0 failed"),
        "consul_smoke.py failed ({:?})\n{stdout}\n{stderr}",
        output.status
    );
}

async fn dev() -> Server {
    let dev = Server::start_dev(BIN).await;
    wait_for(
        "the dev agent's leader",
        Duration::from_secs(30),
        || async {
            match dev.http().status_leader().await {
                Ok(leader) if !leader.is_empty() => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    dev
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_smoke_passes_against_a_dev_agent() {
    let dev = dev().await;
    run_smoke(dev.http_addr()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_smoke_passes_against_a_cluster_through_a_follower() {
    let cluster = Cluster::start(BIN, 3, ClusterOpts::default()).await;
    let follower = cluster.followers().await[0].http_addr();
    run_smoke(follower).await;
}

/// The body `github.com/hashicorp/consul/api` sends for the article's
/// registration, byte for byte.
const SEED_GO_BODY: &str = r#"{"Name":"user-service","Port":8080,"Address":"127.0.0.1","Check":{"Interval":"10s","Timeout":"5s","HTTP":"http://127.0.0.1:8080/health","DeregisterCriticalServiceAfter":"30s"}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_articles_go_registration_is_accepted_byte_for_byte() {
    let dev = dev().await;
    let http = dev.http();
    let reply = http
        .put("/v1/agent/service/register", SEED_GO_BODY)
        .await
        .expect("register");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let services: Value = http.get_json("/v1/agent/services").await.expect("services");
    let service = &services["user-service"];
    assert_eq!(service["Service"], "user-service");
    assert_eq!(service["Port"], 8080);
    assert_eq!(service["Address"], "127.0.0.1");
    let checks: Value = http.get_json("/v1/agent/checks").await.expect("checks");
    let check = &checks["service:user-service"];
    assert_eq!(check["Type"], "http");
    assert_eq!(check["Interval"], "10s");
    assert_eq!(check["Timeout"], "5s");
    assert_eq!(check["Definition"]["HTTP"], "http://127.0.0.1:8080/health");
    assert_eq!(check["Definition"]["DeregisterCriticalServiceAfter"], "30s");
    assert_eq!(check["ServiceName"], "user-service");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_tags_must_all_match() {
    let dev = dev().await;
    let http = dev.http();
    for (id, tags) in [("web-1", r#"["a","b"]"#), ("web-2", r#"["a"]"#)] {
        let body = format!(r#"{{"Name":"web","ID":"{id}","Port":80,"Tags":{tags}}}"#);
        let reply = http
            .put("/v1/agent/service/register", body)
            .await
            .expect("register");
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    for path in ["/v1/health/service/web", "/v1/catalog/service/web"] {
        let ids = |answer: Value| -> Vec<String> {
            let mut ids: Vec<String> = answer
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    let id = e.pointer("/Service/ID").or_else(|| e.get("ServiceID"));
                    id.and_then(Value::as_str).unwrap_or("").to_string()
                })
                .collect();
            ids.sort();
            ids
        };
        let one: Value = http
            .get_json(&format!("{path}?tag=a"))
            .await
            .expect("query");
        assert_eq!(ids(one), ["web-1", "web-2"], "{path}?tag=a");
        for query in ["tag=a&tag=b", "tag=b&tag=a"] {
            let both: Value = http
                .get_json(&format!("{path}?{query}"))
                .await
                .expect("query");
            assert_eq!(ids(both), ["web-1"], "{path}?{query}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_registrations_get_400_with_a_reason_and_store_nothing() {
    let dev = dev().await;
    let http = dev.http();
    let cases = [
        (r#"{"Port":80}"#, "Missing service name"),
        (r#"{"Name":"bad-port","Port":-1}"#, "port"),
        (
            r#"{"Name":"bad-duration","Check":{"HTTP":"http://127.0.0.1:1/","Interval":"sometimes"}}"#,
            "invalid duration",
        ),
        (
            r#"{"Name":"bad-kind","Check":{"Args":["/bin/true"],"Interval":"10s"}}"#,
            "check kind",
        ),
        (
            r#"{"Name":"no-kind","Check":{"Interval":"10s"}}"#,
            "check kind",
        ),
        (r#"{"Name":"bad-json""#, "decode"),
    ];
    for (body, reason) in cases {
        let reply = http
            .put("/v1/agent/service/register", body)
            .await
            .expect("register");
        assert_eq!(reply.status, 400, "{body} -> {}", reply.text());
        assert!(
            reply.text().contains(reason),
            "{body} -> {:?}, expected it to mention {reason:?}",
            reply.text()
        );
    }
    let reply = http
        .put("/v1/agent/check/register", r#"{"TTL":"10s"}"#)
        .await
        .expect("check register");
    assert_eq!(reply.status, 400, "{}", reply.text());
    let services: Value = http.get_json("/v1/agent/services").await.expect("services");
    assert_eq!(services, serde_json::json!({}), "something was stored");
    let checks: Value = http.get_json("/v1/agent/checks").await.expect("checks");
    assert_eq!(checks, serde_json::json!({}), "a check was stored");
    let names: Value = http
        .get_json("/v1/catalog/services")
        .await
        .expect("catalog");
    assert_eq!(names, serde_json::json!({}), "the catalog changed");
}

/// A tiny HTTP target whose answer code the test sets.
async fn health_target() -> (SocketAddr, Arc<AtomicU16>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the health target");
    let addr = listener.local_addr().expect("its address");
    let code = Arc::new(AtomicU16::new(200));
    let answer = code.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let code = answer.load(Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = socket.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.1 {code} Set By Test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    (addr, code)
}

async fn owner_of(http: &HttpClient, check_id: &str) -> Result<String, String> {
    let owners: Value = http
        .get_json("/v1/sextant/health/owners")
        .await
        .map_err(|e| e.to_string())?;
    owners["Checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["CheckID"] == check_id))
        .and_then(|c| c["Owner"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| format!("{check_id} not in {owners}"))
}

async fn check_status(http: &HttpClient, service: &str) -> Result<String, String> {
    let entries: Value = http
        .get_json(&format!("/v1/health/service/{service}"))
        .await
        .map_err(|e| e.to_string())?;
    entries[0]["Checks"]
        .as_array()
        .and_then(|checks| {
            checks
                .iter()
                .find(|c| c["CheckID"] == format!("service:{service}"))
        })
        .and_then(|c| c["Status"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| format!("no check in {entries}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_keeps_running_when_its_owner_dies() {
    let mut cluster = Cluster::start(BIN, 3, ClusterOpts::default()).await;
    let (target, code) = health_target().await;
    let entry = cluster.server(0).http().clone();
    let entry_name = cluster.server(0).name().to_owned();
    wait_for(
        "the entry server to see all three servers alive",
        Duration::from_secs(15),
        || async {
            let owners: Value = entry
                .get_json("/v1/sextant/health/owners")
                .await
                .map_err(|e| e.to_string())?;
            match owners["Alive"].as_array().map(Vec::len) {
                Some(3) => Ok(()),
                _ => Err(owners.to_string()),
            }
        },
    )
    .await;
    // Find a service whose check another server runs than the one it is
    // registered through (whose node must stay alive).
    let mut chosen = None;
    for i in 0..30 {
        let name = format!("owned-{i}");
        let body = format!(
            r#"{{"Name":"{name}","Port":9000,"Check":{{"HTTP":"http://{target}/health","Interval":"500ms","Timeout":"1s"}}}}"#
        );
        let reply = entry
            .put("/v1/agent/service/register", body)
            .await
            .expect("register");
        assert_eq!(reply.status, 200, "{}", reply.text());
        let check_id = format!("service:{name}");
        let owner = wait_for("an owner", Duration::from_secs(10), || {
            owner_of(&entry, &check_id)
        })
        .await;
        if owner != entry_name {
            chosen = Some((name, owner));
            break;
        }
    }
    let (service, owner) = chosen.expect("every check landed on the entry server");
    wait_for("the check to pass", Duration::from_secs(15), || async {
        match check_status(&entry, &service).await? {
            s if s == "passing" => Ok(()),
            s => Err(s),
        }
    })
    .await;

    let owner_index = (0..cluster.len())
        .find(|i| cluster.server(*i).name() == owner)
        .expect("the owner is one of the servers");
    cluster.server_mut(owner_index).kill().await;
    let check_id = format!("service:{service}");
    let new_owner = wait_for("the check to move", Duration::from_secs(15), || async {
        match owner_of(&entry, &check_id).await? {
            o if o == owner => Err(format!("still owned by {o}")),
            o => Ok(o),
        }
    })
    .await;
    assert_ne!(new_owner, owner);

    // The check follows its target from its new owner.
    code.store(500, Ordering::SeqCst);
    wait_for(
        "the check to go critical",
        Duration::from_secs(20),
        || async {
            match check_status(&entry, &service).await? {
                s if s == "critical" => Ok(()),
                s => Err(s),
            }
        },
    )
    .await;
    code.store(200, Ordering::SeqCst);
    wait_for(
        "the check to pass again",
        Duration::from_secs(20),
        || async {
            match check_status(&entry, &service).await? {
                s if s == "passing" => Ok(()),
                s => Err(s),
            }
        },
    )
    .await;

    // Writes through any server while one is down are kept once it is back.
    let other = (0..cluster.len())
        .find(|i| *i != owner_index && *i != 0)
        .expect("a third server");
    let via_other = cluster.server(other).http().clone();
    let reply = via_other
        .put(
            "/v1/agent/service/register",
            r#"{"Name":"while-down","Port":1}"#,
        )
        .await
        .expect("register while down");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let reply = via_other
        .put(&format!("/v1/agent/service/deregister/{service}"), "")
        .await
        .expect("deregister while down");
    assert_eq!(reply.status, 200, "{}", reply.text());
    cluster.server_mut(owner_index).restart().await;
    let back = cluster.server(owner_index).http().clone();
    wait_for(
        "the restarted server to see both writes",
        Duration::from_secs(30),
        || async {
            let names: Value = back
                .get_json("/v1/catalog/services?stale")
                .await
                .map_err(|e| e.to_string())?;
            if names.get("while-down").is_some() && names.get(&service).is_none() {
                Ok(())
            } else {
                Err(names.to_string())
            }
        },
    )
    .await;
}

async fn run_interop(http: SocketAddr) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/consul_interop.py");
    let output = tokio::process::Command::new("python3")
        .arg(&script)
        .args(["--port", &http.port().to_string()])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(200), output)
        .await
        .expect("consul_interop.py did not finish within 200 s")
        .expect("cannot run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(" passed, 0 failed"),
        "consul_interop.py failed ({:?})\n{stdout}\n{stderr}",
        output.status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn py_consul_interop_against_a_dev_agent() {
    let dev = dev().await;
    run_interop(dev.http_addr()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn py_consul_interop_against_a_cluster_through_a_follower() {
    let cluster = Cluster::start(BIN, 3, ClusterOpts::default()).await;
    let follower = cluster.followers().await[0].http_addr();
    run_interop(follower).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_registers_lists_watches_and_deregisters() {
    let dev = dev().await;
    let addr = dev.http_addr();
    let file = dev.data_dir().join("web.json");
    std::fs::write(
        &file,
        r#"{"service": {"name": "cli-web", "id": "cli-web-1", "port": 7000, "tags": ["blue"],
             "check": {"ttl": "60s"}}}"#,
    )
    .expect("write the definition");
    let file_arg = file.display().to_string();
    let out = testkit::run_cli(BIN, addr, &["register", &file_arg]).await;
    out.assert_success("sextant register");
    assert!(
        out.stdout.contains("Registered service: cli-web"),
        "{}",
        out.stdout
    );

    let out = testkit::run_cli(BIN, addr, &["services"]).await;
    out.assert_success("sextant services");
    assert!(
        out.stdout.contains("cli-web") && out.stdout.contains("blue"),
        "{}",
        out.stdout
    );

    let out = testkit::run_cli(BIN, addr, &["catalog", "nodes"]).await;
    out.assert_success("sextant catalog nodes");
    assert!(out.stdout.contains(dev.name()), "{}", out.stdout);

    let out = testkit::run_cli(BIN, addr, &["health", "cli-web"]).await;
    out.assert_success("sextant health");
    assert!(
        out.stdout.contains("cli-web-1") && out.stdout.contains("critical"),
        "{}",
        out.stdout
    );

    let mut watch = tokio::process::Command::new(BIN)
        .args(["watch", "service", "cli-web"])
        .env("SEXTANT_HTTP_ADDR", addr.to_string())
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start sextant watch");
    let stdout = watch.stdout.take().expect("the watch's stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut seen = String::new();
    // The first answer shows the new instance critical; the pass is a change.
    read_until(&mut lines, &mut seen, "critical").await;
    let reply = dev
        .http()
        .put("/v1/agent/check/pass/service:cli-web-1", "")
        .await
        .expect("pass");
    assert_eq!(reply.status, 200, "{}", reply.text());
    read_until(&mut lines, &mut seen, "passing").await;
    drop(lines);
    let _ = watch.kill().await;

    let out = testkit::run_cli(BIN, addr, &["deregister", "cli-web-1"]).await;
    out.assert_success("sextant deregister");
    let out = testkit::run_cli(BIN, addr, &["health", "cli-web"]).await;
    assert!(!out.stdout.contains("cli-web-1"), "{}", out.stdout);
}

/// Reads the watch's output until a line shows cli-web-1 with `needle`.
async fn read_until(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    seen: &mut String,
    needle: &str,
) {
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(line)) = lines.next_line().await {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("cli-web-1") && line.contains(needle) {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(found, Ok(true)),
        "the watch never printed cli-web-1 {needle}:\n{seen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_change_expires_no_ttl_check_or_session() {
    let mut cluster = Cluster::start(BIN, 3, ClusterOpts::default()).await;
    let leader = cluster.leader_index().await;
    let entry_index = (0..cluster.len())
        .find(|i| *i != leader)
        .expect("a follower");
    let entry = cluster.server(entry_index).http().clone();
    let reply = entry
        .put(
            "/v1/agent/service/register",
            r#"{"Name":"ttl-election","Check":{"TTL":"8s","Status":"passing"}}"#,
        )
        .await
        .expect("register");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let session: Value = {
        let reply = entry
            .put("/v1/session/create", r#"{"TTL":"10s","Checks":[]}"#)
            .await
            .expect("create a session");
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.json().expect("a session id")
    };
    let session_id = session["ID"].as_str().expect("an ID").to_owned();
    let reply = entry
        .put("/v1/agent/check/pass/service:ttl-election", "")
        .await
        .expect("pass");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let passed_at = std::time::Instant::now();
    cluster.server_mut(leader).kill().await;
    // Until 7 s after the last pass (TTL 8 s) the check must stay passing and
    // the session alive, whatever the election did.
    while passed_at.elapsed() < Duration::from_secs(7) {
        let status = check_status(&entry, "ttl-election").await;
        assert!(
            matches!(status.as_deref(), Ok("passing")),
            "the TTL check left passing {:?} after its pass: {status:?}",
            passed_at.elapsed()
        );
        let info: Value = entry
            .get_json(&format!("/v1/session/info/{session_id}?stale"))
            .await
            .expect("session info");
        assert_eq!(
            info.as_array().map(Vec::len),
            Some(1),
            "the session ended: {info}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Without passes it does expire, from its new owner if it moved.
    wait_for(
        "the TTL check to expire",
        Duration::from_secs(20),
        || async {
            match check_status(&entry, "ttl-election").await? {
                s if s == "critical" => Ok(()),
                s => Err(s),
            }
        },
    )
    .await;
}
