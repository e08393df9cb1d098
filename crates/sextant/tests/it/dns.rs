//! The Consul DNS interface, judged by the real `dig` (Debian
//! `bind9-dnsutils`) against real agents: instances registered over the
//! Consul HTTP API, health from TTL checks, UDP truncation, TCP, NXDOMAIN,
//! REFUSED, and answers from a follower of a 3-server cluster.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::json;
use testkit::{wait_for, Cluster, ClusterOpts, HttpClient, Server};

const BIN: &str = env!("CARGO_BIN_EXE_sextant");
const DEADLINE: Duration = Duration::from_secs(20);

/// What `dig` printed, split into what the tests look at.
#[derive(Debug)]
struct Dig {
    status: String,
    flags: Vec<String>,
    answers: Vec<String>,
    additionals: Vec<String>,
    text: String,
}

impl Dig {
    /// The data of each answer (the last fields after the type), sorted.
    fn data(&self) -> Vec<String> {
        let mut data: Vec<String> = self
            .answers
            .iter()
            .map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                fields.get(4..).unwrap_or_default().join(" ")
            })
            .collect();
        data.sort();
        data
    }
}

async fn dig(dns: SocketAddr, args: &[&str]) -> anyhow::Result<Dig> {
    let output = tokio::process::Command::new("dig")
        .arg(format!("@{}", dns.ip()))
        .args(["-p", &dns.port().to_string(), "+time=2", "+tries=1"])
        .args(args)
        .output()
        .await
        .context("cannot run dig (Debian: apt-get install bind9-dnsutils)")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!("dig {args:?} failed: {text}");
    }
    let mut status = String::new();
    let mut flags = Vec::new();
    let mut answers = Vec::new();
    let mut additionals = Vec::new();
    let mut section = "";
    for line in text.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            status = rest.split(',').next().unwrap_or_default().to_string();
        }
        if let Some(rest) = line.strip_prefix(";; flags: ") {
            let list = rest.split(';').next().unwrap_or_default();
            flags = list.split_whitespace().map(str::to_string).collect();
        }
        if line.starts_with(";; ") && line.ends_with("SECTION:") {
            section = if line.contains("ANSWER") {
                "answer"
            } else if line.contains("ADDITIONAL") {
                "additional"
            } else {
                "other"
            };
            continue;
        }
        if line.is_empty() {
            section = "";
            continue;
        }
        if line.starts_with(';') {
            continue;
        }
        match section {
            "answer" => answers.push(line.to_string()),
            "additional" => additionals.push(line.to_string()),
            _ => {}
        }
    }
    Ok(Dig {
        status,
        flags,
        answers,
        additionals,
        text,
    })
}

async fn register(http: &HttpClient, body: serde_json::Value) {
    let reply = http
        .put("/v1/agent/service/register", body.to_string())
        .await
        .expect("register");
    assert_eq!(reply.status, 200, "register: {}", reply.text());
}

async fn check(http: &HttpClient, verb: &str, check_id: &str) {
    let reply = http
        .put(&format!("/v1/agent/check/{verb}/{check_id}"), "")
        .await
        .expect("check update");
    assert_eq!(reply.status, 200, "check {verb}: {}", reply.text());
}

/// `user-service`: web-1 and web-2 passing (tag v1 on web-1 only), web-3 critical.
async fn register_user_service(http: &HttpClient) {
    for (id, address, port, tags, weight) in [
        ("web-1", "127.0.0.11", 8081, vec!["v1"], 5),
        ("web-2", "127.0.0.12", 8082, vec!["v2"], 3),
        ("web-3", "127.0.0.13", 8083, vec!["v1"], 1),
    ] {
        register(
            http,
            json!({
                "ID": id, "Name": "user-service", "Address": address, "Port": port,
                "Tags": tags, "Weights": {"Passing": weight, "Warning": 1},
                "Check": {"TTL": "60s"},
            }),
        )
        .await;
    }
    check(http, "pass", "service:web-1").await;
    check(http, "pass", "service:web-2").await;
}

/// The catalog address of node `name`.
/// Waits for the server to register itself, so that the node's address no
/// longer depends on which registration came first.
async fn node_address(http: &HttpClient, name: &str) -> String {
    wait_for("the server's own catalog node", DEADLINE, || async {
        let checks = http
            .get(&format!("/v1/health/node/{name}"))
            .await
            .map_err(|e| e.to_string())?;
        if !checks.text().contains("serfHealth") {
            return Err(checks.text());
        }
        let reply = http
            .get(&format!("/v1/catalog/node/{name}"))
            .await
            .map_err(|e| e.to_string())?;
        let node: serde_json::Value = reply.json().map_err(|e| e.to_string())?;
        match node["Node"]["Address"].as_str() {
            Some(address) => Ok(address.to_string()),
            None => Err(reply.text()),
        }
    })
    .await
}

/// Polls `dig` until the sorted answer data is `expected`.
async fn wait_answers(dns: SocketAddr, args: &[&str], expected: &[&str]) -> Dig {
    wait_for(
        &format!("dig {args:?} → {expected:?}"),
        DEADLINE,
        || async {
            let dug = dig(dns, args).await.map_err(|e| e.to_string())?;
            if dug.data() == expected {
                Ok(dug)
            } else {
                Err(format!("{:?}\n{}", dug.data(), dug.text))
            }
        },
    )
    .await
}

#[tokio::test]
async fn dig_sees_healthy_instances_of_a_dev_agent() {
    let server = Server::start_dev(BIN).await;
    let dns = server.dns_addr();
    assert_ne!(dns.port(), 0, "the real DNS port is reported");
    let node_address = node_address(server.http(), server.name()).await;
    register_user_service(server.http()).await;

    // SRV: exactly the passing instances, targets with their A records.
    let srv = wait_for("SRV answers", DEADLINE, || async {
        let dug = dig(dns, &["user-service.service.consul", "SRV"])
            .await
            .map_err(|e| e.to_string())?;
        let ports: Vec<String> = dug
            .data()
            .iter()
            .map(|d| d.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .collect();
        if ports == ["1 3 8082", "1 5 8081"] {
            Ok(dug)
        } else {
            Err(dug.text)
        }
    })
    .await;
    assert_eq!(srv.status, "NOERROR");
    assert!(srv.flags.contains(&"aa".to_string()), "{}", srv.text);
    assert!(!srv.flags.contains(&"ra".to_string()), "{}", srv.text);
    // Every target has its address in the additional section: `<node>.node`
    // for an instance at its node's address, Consul's `<hex>.addr` for one
    // with an address of its own (web-2's is never the node's).
    let mut targets: Vec<(String, String)> = srv
        .data()
        .iter()
        .filter_map(|d| d.split_whitespace().nth(3).map(str::to_string))
        .map(|target| {
            let address = srv
                .additionals
                .iter()
                .find(|a| a.starts_with(&target))
                .and_then(|a| a.split_whitespace().last())
                .unwrap_or_default()
                .to_string();
            (target, address)
        })
        .collect();
    targets.sort();
    assert!(
        targets.contains(&("7f00000c.addr.dc1.consul.".into(), "127.0.0.12".into())),
        "{targets:?}\n{}",
        srv.text
    );
    let web1_target = if node_address == "127.0.0.11" {
        format!("{}.node.dc1.consul.", server.name())
    } else {
        "7f00000b.addr.dc1.consul.".to_string()
    };
    assert!(
        targets.contains(&(web1_target, "127.0.0.11".into())),
        "{targets:?}\n{}",
        srv.text
    );
    // An instance without an address of its own: the node is the target.
    register(
        server.http(),
        json!({"ID": "bare-1", "Name": "bare", "Port": 7000}),
    )
    .await;
    let target = format!("{}.node.dc1.consul.", server.name());
    let bare = wait_answers(
        dns,
        &["bare.service.consul", "SRV"],
        &[&format!("1 1 7000 {target}")],
    )
    .await;
    assert!(
        bare.additionals
            .iter()
            .any(|a| a.starts_with(&target) && a.ends_with(&node_address)),
        "{}",
        bare.text
    );

    // RFC 2782 form, with `_tcp` meaning any tag, and the datacenter label.
    let rfc = dig(dns, &["_user-service._tcp.service.dc1.consul", "SRV"])
        .await
        .expect("dig");
    assert_eq!(rfc.answers.len(), 2, "{}", rfc.text);

    // A, with and without the datacenter label.
    wait_answers(
        dns,
        &["user-service.service.consul", "A"],
        &["127.0.0.11", "127.0.0.12"],
    )
    .await;
    wait_answers(
        dns,
        &["user-service.service.dc1.consul", "A"],
        &["127.0.0.11", "127.0.0.12"],
    )
    .await;

    // Tags: web-3 has v1 too but is critical.
    wait_answers(
        dns,
        &["v1.user-service.service.consul", "A"],
        &["127.0.0.11"],
    )
    .await;
    let tagged = dig(dns, &["_user-service._v2.service.consul", "SRV"])
        .await
        .expect("dig");
    assert_eq!(tagged.answers.len(), 1, "{}", tagged.text);
    assert!(tagged.data()[0].starts_with("1 3 8082 "), "{}", tagged.text);

    // The node.
    let node = dig(dns, &[&format!("{}.node.consul", server.name()), "A"])
        .await
        .expect("dig");
    assert_eq!(node.status, "NOERROR", "{}", node.text);
    assert_eq!(node.data(), [node_address.as_str()], "{}", node.text);

    // A failing instance disappears; a recovered one comes back.
    check(server.http(), "fail", "service:web-1").await;
    wait_answers(dns, &["user-service.service.consul", "A"], &["127.0.0.12"]).await;
    check(server.http(), "pass", "service:web-3").await;
    wait_answers(
        dns,
        &["user-service.service.consul", "A"],
        &["127.0.0.12", "127.0.0.13"],
    )
    .await;

    // Unknown names, names outside the domain.
    let unknown = dig(dns, &["no-such-service.service.consul", "A"])
        .await
        .expect("dig");
    assert_eq!(unknown.status, "NXDOMAIN", "{}", unknown.text);
    assert!(unknown.text.contains("SOA"), "{}", unknown.text);
    let nonsense = dig(dns, &["what.ever.consul", "A"]).await.expect("dig");
    assert_eq!(nonsense.status, "NXDOMAIN", "{}", nonsense.text);
    let outside = dig(dns, &["google.com", "A"]).await.expect("dig");
    assert_eq!(outside.status, "REFUSED", "{}", outside.text);
    assert!(
        !outside.flags.contains(&"ra".to_string()),
        "{}",
        outside.text
    );

    // Garbage does not stop the server.
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    for junk in [
        &b""[..],
        b"\x00",
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff\xff",
    ] {
        socket.send_to(junk, dns).await.expect("send");
    }
    let mut tcp = tokio::net::TcpStream::connect(dns).await.expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut tcp, b"\x00\x05junk!")
        .await
        .expect("write");
    let still = dig(dns, &["user-service.service.consul", "A"])
        .await
        .expect("dig after garbage");
    assert_eq!(still.status, "NOERROR", "{}", still.text);
}

#[tokio::test]
async fn udp_answers_are_truncated_and_tcp_carries_them_all() {
    let server = Server::start_dev(BIN).await;
    let dns = server.dns_addr();
    for i in 0..10 {
        register(
            server.http(),
            json!({
                "ID": format!("many-{i}"), "Name": "many",
                "Address": format!("127.0.1.{}", i + 1), "Port": 9000 + i,
            }),
        )
        .await;
    }
    let all = wait_for("10 instances over TCP", DEADLINE, || async {
        let dug = dig(dns, &["+tcp", "many.service.consul", "SRV"])
            .await
            .map_err(|e| e.to_string())?;
        if dug.answers.len() == 10 {
            Ok(dug)
        } else {
            Err(dug.text)
        }
    })
    .await;
    assert!(!all.flags.contains(&"tc".to_string()), "{}", all.text);
    assert_eq!(all.additionals.len(), 10, "{}", all.text);

    for qtype in ["SRV", "A"] {
        let udp = dig(dns, &["+ignore", "many.service.consul", qtype])
            .await
            .expect("dig");
        assert!(udp.flags.contains(&"tc".to_string()), "{}", udp.text);
        assert_eq!(udp.answers.len(), 3, "{}", udp.text);
    }
    let tcp = dig(dns, &["+tcp", "many.service.consul", "A"])
        .await
        .expect("dig");
    assert_eq!(tcp.answers.len(), 10, "{}", tcp.text);

    // Answers are shuffled per query.
    let mut firsts = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let udp = dig(dns, &["+ignore", "many.service.consul", "A"])
            .await
            .expect("dig");
        firsts.insert(udp.answers.first().cloned().unwrap_or_default());
    }
    assert!(firsts.len() > 1, "always the same first answer: {firsts:?}");
}

#[tokio::test]
async fn a_follower_answers_from_its_own_state() {
    let cluster = Cluster::start(BIN, 3, ClusterOpts::default()).await;
    let leader = cluster.leader().await;
    register_user_service(leader.http()).await;
    for follower in cluster.followers().await {
        wait_answers(
            follower.dns_addr(),
            &["user-service.service.consul", "A"],
            &["127.0.0.11", "127.0.0.12"],
        )
        .await;
        let outside = dig(follower.dns_addr(), &["google.com", "A"])
            .await
            .expect("dig");
        assert_eq!(outside.status, "REFUSED", "{}", outside.text);
    }
}
