//! Consul compatibility, judged by clients nobody on this project wrote, and
//! the README's Consul compatibility matrix generated from this run.
//!
//! One test runs the py-consul suites — the acceptance script
//! `shared/tools/consul_smoke.py` (py-consul 1.8.0, 22 checks) and
//! `tests/python/consul_interop.py` (9 checks), each against a dev agent and
//! against a 3-server cluster through a follower — records every check the
//! scripts print (`PASS  name` / `FAIL  name`) in
//! `target/compat/consul-<suite>.json`, renders the matrix and compares it
//! with the README between `<!-- compat:consul:start -->` and
//! `<!-- compat:consul:end -->` (`UPDATE_README=1` rewrites it;
//! `SEXTANT_COMPAT_ONLY=smoke` runs only that suite and leaves the README
//! alone). Reports and rendering are `testkit::compat`'s, shared with
//! `tests/it/etcd_compat`.
//!
//! The other tests here check what no client script covers: the exact JSON
//! of the article's Go snippet, malformed registrations, several tags, the
//! CLI, and a check whose owner dies.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;
use testkit::compat::{guarded, selected, Matrix, Report, Suite};
use testkit::{wait_for, Cluster, ClusterOpts, HttpClient, Server};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_sextant");

fn shared_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// A base port with the two after it free too (the smoke script serves
/// /health on port, port+1 and port+2). Taken below Linux's ephemeral range
/// (32768 and up): the ports are free only until the script binds them, and
/// there the many outgoing connections of the tests running beside this one
/// could take them meanwhile; below it, only an explicit bind can.
fn three_free_ports() -> u16 {
    let start = 20_000 + (std::process::id() % 4_000) as u16 * 3;
    for base in (start..32_000).step_by(3).chain((20_000..start).step_by(3)) {
        let all_free = (0..=2).all(|i| StdListener::bind(("127.0.0.1", base + i)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no three consecutive free ports on 127.0.0.1 below 32000");
}

const MATRIX: Matrix = Matrix {
    name: "consul",
    intro: "Consul HTTP API on `--http-addr` — KV (`/v1/kv`: get, put, delete, `recurse`, \
            `keys`+`separator`, `raw`, `cas`, `flags`, `acquire`/`release`, blocking \
            `index`/`wait`, `stale`/`consistent`); the registry (agent service/check register, \
            deregister, list; TTL `pass`/`warn`/`fail`/`update`; `agent/health/service`; catalog \
            services/service/nodes/node/register/deregister; health service \
            (`passing`, `tag`, `filter`)/checks/state/node; sessions), with HTTP, TCP, gRPC and \
            TTL checks run on the servers; operations (`/v1/status/leader`, `/v1/status/peers`, \
            `/v1/operator/raft/configuration`, `DELETE /v1/operator/raft/peer`, \
            `/v1/agent/self`, `/v1/agent/members`) — checked with real clients by \
            `crates/sextant/tests/it/consul_compat.rs`:",
    client_heading: "Consul client",
    test: "consul_compat",
    target_tmpdir: env!("CARGO_TARGET_TMPDIR"),
};

const SMOKE: Suite = Suite {
    id: "smoke",
    client: "py-consul",
    scope: "`shared/tools/consul_smoke.py`, the acceptance script (the article's registration \
            with an HTTP check: passing, critical when its target stops, deregistered after \
            `DeregisterCriticalServiceAfter`; HTTP and TTL check states; the Go api client's wire \
            format; KV with CAS, flags, recurse, keys and blocking queries; catalog \
            register/deregister; status, agent self) against a dev agent and through a follower \
            of a 3-server cluster",
};

const INTEROP: Suite = Suite {
    id: "interop",
    client: "py-consul",
    scope: "`crates/sextant/tests/python/consul_interop.py` (registration round trip, TCP and TTL \
            checks, agent health codes, health queries by `passing`, `tag` and `filter`, catalog, \
            sessions with locks, session invalidation and TTLs, blocking health queries that \
            wake only for their own service) against a dev agent and through a follower of a \
            3-server cluster",
};

/// How many checks each script prints a PASS or FAIL line for.
const SMOKE_CHECKS: usize = 22;
const INTEROP_CHECKS: usize = 9;
/// One run of either script; the smoke script waits for a deregistration.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(200);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn py_consul_passes_and_the_readme_matrix_is_current() {
    // Two lanes, one per script, each run against a dev agent and then
    // through a follower of a cluster of its own: about 40 s in all.
    let smoke_lane = async {
        if selected(SMOKE) {
            Some(guarded(SMOKE, smoke()).await)
        } else {
            None
        }
    };
    let interop_lane = async {
        if selected(INTEROP) {
            Some(guarded(INTEROP, interop()).await)
        } else {
            None
        }
    };
    let (smoke, interop) = tokio::join!(smoke_lane, interop_lane);
    let reports: Vec<Report> = smoke.into_iter().chain(interop).collect();
    MATRIX.conclude(&reports);
}

async fn smoke() -> Report {
    let mut report = Report::new(SMOKE);
    let script = shared_dir().join("tools/consul_smoke.py");
    let run = async {
        report.version = py_consul_version().await?;
        let dev = Server::start_dev(BIN).await;
        let args = smoke_args(dev.http_addr());
        run_script(&mut report, "dev agent", &script, &args, SMOKE_CHECKS).await?;
        drop(dev);
        let cluster = Cluster::start(BIN, 3, ClusterOpts::default()).await;
        let args = smoke_args(cluster.followers().await[0].http_addr());
        run_script(
            &mut report,
            "cluster follower",
            &script,
            &args,
            SMOKE_CHECKS,
        )
        .await
    };
    if let Err(err) = run.await {
        report.aborted(&err);
    }
    report
}

fn smoke_args(http: SocketAddr) -> Vec<String> {
    vec![
        String::from("--host"),
        String::from("127.0.0.1"),
        String::from("--port"),
        http.port().to_string(),
        // The script serves /health on this port and the two after it.
        String::from("--health-port"),
        three_free_ports().to_string(),
        String::from("--dereg-timeout"),
        String::from("30"),
    ]
}

async fn interop() -> Report {
    let mut report = Report::new(INTEROP);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/consul_interop.py");
    let args = |http: SocketAddr| vec![String::from("--port"), http.port().to_string()];
    let run = async {
        report.version = py_consul_version().await?;
        let dev = Server::start_dev(BIN).await;
        let on_dev = args(dev.http_addr());
        run_script(&mut report, "dev agent", &script, &on_dev, INTEROP_CHECKS).await?;
        drop(dev);
        let cluster = Cluster::start(BIN, 3, ClusterOpts::default()).await;
        let on_follower = args(cluster.followers().await[0].http_addr());
        run_script(
            &mut report,
            "cluster follower",
            &script,
            &on_follower,
            INTEROP_CHECKS,
        )
        .await
    };
    if let Err(err) = run.await {
        report.aborted(&err);
    }
    report
}

/// The py-consul that `python3` imports.
async fn py_consul_version() -> anyhow::Result<String> {
    let output = tokio::process::Command::new("python3")
        .args(["-c", "import consul; print(consul.__version__)"])
        .kill_on_drop(true)
        .output()
        .await
        .context("cannot run python3")?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() || version.is_empty() {
        bail!(
            "python3 cannot import consul (pip install py-consul==1.8.0 requests): {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(version)
}

/// Runs a py-consul script and records each check it prints as
/// `<label>: <check>`: `PASS  name (1.2s) ...` or `FAIL  name (1.2s) why`.
async fn run_script(
    report: &mut Report,
    label: &str,
    script: &Path,
    args: &[String],
    expected: usize,
) -> anyhow::Result<()> {
    let file = script.file_name().unwrap_or_default().to_string_lossy();
    let run = tokio::process::Command::new("python3")
        .arg(script)
        .args(args)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, run)
        .await
        .with_context(|| format!("{label}: {file} did not finish in {SCRIPT_TIMEOUT:?}"))?
        .with_context(|| format!("{label}: cannot run python3 {}", script.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("===== {label}: {file} {} =====\n{stdout}", args.join(" "));
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !stderr.trim().is_empty() {
        println!("----- stderr -----\n{stderr}");
    }

    let (mut counted, mut failed) = (0, 0);
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("PASS  ") {
            report.pass(format!("{label}: {}", check_name(rest)));
            counted += 1;
        } else if let Some(rest) = line.strip_prefix("FAIL  ") {
            let name = check_name(rest);
            let why = rest.split_once(") ").map_or(rest, |(_, why)| why);
            report.fail(format!("{label}: {name}"), why.trim());
            counted += 1;
            failed += 1;
        }
    }
    let summary = stdout.lines().last().unwrap_or_default();
    if counted != expected || output.status.success() != (failed == 0) {
        report.fail(
            format!("{label}: the script ran its {expected} checks"),
            format!(
                "{counted} reported, exit {:?}, summary {summary:?}",
                output.status.code()
            ),
        );
    }
    Ok(())
}

/// `name` of `name (1.2s) ...`; `preflight` of `preflight: ...`.
fn check_name(rest: &str) -> &str {
    let name = rest.split_whitespace().next().unwrap_or(rest);
    name.trim_end_matches(':')
}

#[test]
fn script_lines_name_their_checks() {
    assert_eq!(check_name("kv_cas (0.1s) "), "kv_cas");
    assert_eq!(
        check_name("kv_cas (0.1s) AssertionError: x line 3"),
        "kv_cas"
    );
    assert_eq!(check_name("preflight: http://x unreachable"), "preflight");
}
/// The body `github.com/hashicorp/consul/api` sends for the article's
/// registration, byte for byte.
const SEED_GO_BODY: &str = r#"{"Name":"user-service","Port":8080,"Address":"127.0.0.1","Check":{"Interval":"10s","Timeout":"5s","HTTP":"http://127.0.0.1:8080/health","DeregisterCriticalServiceAfter":"30s"}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_articles_go_registration_is_accepted_byte_for_byte() {
    let dev = Server::start_dev(BIN).await;
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
    let dev = Server::start_dev(BIN).await;
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
    let dev = Server::start_dev(BIN).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_registers_lists_watches_and_deregisters() {
    let dev = Server::start_dev(BIN).await;
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
