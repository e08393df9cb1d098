//! Every port answers malformed input with its protocol's own error, or
//! drops the connection, and keeps serving: raw garbage on the HTTP port,
//! garbage and broken HTTP/2 frames on the gRPC and Raft ports, malformed DNS
//! messages over UDP and TCP, and malformed Nacos form bodies. After each
//! kind, a well-formed request through the same port must still work.
//!
//! Random payloads derive from one printed seed (`SEXTANT_TEST_SEED`).

use std::net::SocketAddr;
use std::time::Duration;

use rand::{Rng, RngCore};
use testkit::{test_rng, wait_for, Cluster, ClusterOpts, Consistency, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

const BIN: &str = env!("CARGO_BIN_EXE_sextant");
/// How long a port may take to answer or drop a bad connection.
const DEADLINE: Duration = Duration::from_secs(10);
/// How long to wait for a UDP reply that may rightly never come.
const UDP_WAIT: Duration = Duration::from_secs(1);
/// The connection preface every HTTP/2 client sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a server did with a connection that sent garbage and half-closed.
struct Outcome {
    /// Everything it sent before closing.
    received: Vec<u8>,
}

/// Sends `payload`, closes the write side, and reads until the server
/// closes. A server that neither answers nor closes within `DEADLINE` fails
/// the test: garbage must not hold a connection open.
async fn send_garbage(addr: SocketAddr, payload: &[u8], what: &str) -> Outcome {
    let mut stream = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{what}: connect {addr}: {e}"));
    // The server may close before it has read everything; a failed write is
    // then its answer, not an error of the test.
    if stream.write_all(payload).await.is_ok() {
        let _ = stream.shutdown().await;
    }
    let mut received = Vec::new();
    let read = timeout(DEADLINE, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "{what}: the connection was still open after {DEADLINE:?} ({} bytes received)",
        received.len()
    );
    Outcome { received }
}

fn random_bytes(rng: &mut impl RngCore, max: usize) -> Vec<u8> {
    let len = rng.random_range(1..=max);
    let mut bytes = vec![0u8; len];
    rng.fill_bytes(&mut bytes);
    bytes
}

/// One HTTP/2 frame: 24-bit length, type, flags, stream id, payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut frame = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// HTTP/2 frames as they arrive in a connection's byte stream; stops at
/// the first incomplete one.
fn h2_frame_types(mut bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while bytes.len() >= 9 {
        let len =
            (usize::from(bytes[0]) << 16) | (usize::from(bytes[1]) << 8) | usize::from(bytes[2]);
        types.push(bytes[3]);
        match bytes.get(9 + len..) {
            Some(rest) => bytes = rest,
            None => break,
        }
    }
    types
}

const H2_GOAWAY: u8 = 7;

/// Garbage for an HTTP/2 port: raw bytes instead of a preface, and after a
/// valid preface, frames no peer may send.
fn h2_garbage(rng: &mut impl RngCore) -> Vec<(&'static str, Vec<u8>, bool)> {
    let after_preface = |frames: &[Vec<u8>]| {
        let mut out = H2_PREFACE.to_vec();
        // An empty SETTINGS frame, so the connection is established first.
        out.extend(h2_frame(4, 0, 0, &[]));
        for frame in frames {
            out.extend_from_slice(frame);
        }
        out
    };
    let random = random_bytes(rng, 2048);
    let mut random_after_preface = H2_PREFACE.to_vec();
    random_after_preface.extend(random_bytes(rng, 2048));
    // (description, bytes, whether a GOAWAY is the expected answer)
    vec![
        ("random bytes instead of a preface", random, false),
        (
            "an HTTP/1.1 request",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            false,
        ),
        (
            "random bytes after the preface",
            random_after_preface,
            false,
        ),
        (
            "HEADERS whose block is not HPACK",
            after_preface(&[h2_frame(1, 0x4 | 0x1, 1, &[0xff; 40])]),
            true,
        ),
        (
            "a frame longer than the maximum frame size",
            after_preface(&[h2_frame(0, 0, 1, &vec![0u8; 20_000])]),
            true,
        ),
        (
            "a SETTINGS frame on a stream",
            after_preface(&[h2_frame(4, 0, 3, &[0, 1, 0, 0, 0, 0])]),
            true,
        ),
        (
            "DATA on a stream never opened",
            after_preface(&[h2_frame(0, 1, 7, b"hello")]),
            true,
        ),
        (
            "a WINDOW_UPDATE of zero",
            after_preface(&[h2_frame(8, 0, 0, &[0, 0, 0, 0])]),
            true,
        ),
    ]
}

/// Sends every kind of HTTP/2 garbage to `addr`: each connection must end.
/// With `goaway`, a connection whose peer already sent a valid preface must
/// get a GOAWAY before the close (RFC 9113 §5.4.1). The gRPC port's
/// `:authority` relay (`etcd/authority.rs`) drops a connection whose header
/// block it cannot decode without one, which the RFC allows ("SHOULD").
async fn h2_port_survives_garbage(
    addr: SocketAddr,
    port: &str,
    goaway: bool,
    rng: &mut impl RngCore,
) {
    for (what, bytes, goaway_expected) in h2_garbage(rng) {
        let shown = format!("{port} port, {what}");
        let outcome = send_garbage(addr, &bytes, &shown).await;
        let types = h2_frame_types(&outcome.received);
        println!("{shown}: closed after frames {types:?}");
        if goaway && goaway_expected {
            assert!(
                types.contains(&H2_GOAWAY),
                "{shown}: no GOAWAY before the close (frame types {types:?})"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn http_port_answers_garbage_with_400_or_a_close() {
    let mut rng = test_rng("http_port_answers_garbage_with_400_or_a_close");
    let dev = Server::start_dev(BIN).await;
    let http = dev.http();
    let payloads: Vec<(&str, Vec<u8>)> = vec![
        ("random bytes", random_bytes(&mut rng, 4096)),
        ("a request line of garbage", b"\x00\x01\x02 / HTTP/1.1\r\n\r\n".to_vec()),
        ("an unknown HTTP version", b"GET /v1/status/leader HTTP/7.3\r\n\r\n".to_vec()),
        ("a header without a colon", b"GET /v1/status/leader HTTP/1.1\r\nHost x\r\n\r\n".to_vec()),
        (
            "a broken chunked body",
            b"PUT /v1/kv/malformed/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnot a chunk\r\n\r\n".to_vec(),
        ),
        (
            "a Content-Length that is not a number",
            b"PUT /v1/kv/malformed/length HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\nvalue".to_vec(),
        ),
        (
            "a body shorter than its Content-Length",
            b"PUT /v1/kv/malformed/short HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nvalue".to_vec(),
        ),
        (
            "a JSON body that is not JSON",
            b"PUT /v1/agent/service/register HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\nConnection: close\r\n\r\n{\"Name\":\x80".to_vec(),
        ),
    ];
    for (what, payload) in payloads {
        let outcome = send_garbage(dev.http_addr(), &payload, what).await;
        let text = String::from_utf8_lossy(&outcome.received);
        let status_line = text.lines().next().unwrap_or_default().to_owned();
        println!("HTTP port, {what}: {status_line:?}");
        assert!(
            outcome.received.is_empty() || status_line.starts_with("HTTP/1.1 4"),
            "HTTP port, {what}: expected a 4xx or a close, got {status_line:?}"
        );
        let alive = http
            .get("/v1/status/leader")
            .await
            .unwrap_or_else(|e| panic!("the HTTP port stopped answering after {what}: {e:#}"));
        assert_eq!(alive.status, 200, "GET /v1/status/leader after {what}");
    }
    // Regression: a filter of 5000 nested parentheses overflowed a worker's
    // stack and aborted the whole agent.
    let deep = format!("{}Node==x{}", "(".repeat(5000), ")".repeat(5000));
    let reply = http
        .get(&format!("/v1/agent/services?filter={deep}"))
        .await
        .expect("GET with a deeply nested filter");
    assert_eq!(reply.status, 400, "deeply nested filter: {}", reply.text());
    assert!(
        http.kv_put("malformed/after", "ok").await.expect("PUT"),
        "PUT returned false"
    );
    let keys = http
        .kv_keys("malformed/", Consistency::Default)
        .await
        .expect("GET ?keys");
    assert_eq!(
        keys,
        vec!["malformed/after".to_owned()],
        "keys written by garbage"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_port_drops_garbage_and_keeps_serving_etcd() {
    let mut rng = test_rng("grpc_port_drops_garbage_and_keeps_serving_etcd");
    let dev = Server::start_dev(BIN).await;
    h2_port_survives_garbage(dev.grpc_addr(), "gRPC", false, &mut rng).await;

    let mut etcd = etcd_client::Client::connect([format!("http://{}", dev.grpc_addr())], None)
        .await
        .expect("etcd client connects after the garbage");
    etcd.put("malformed/etcd", "ok", None)
        .await
        .expect("etcd Put");
    let got = etcd.get("malformed/etcd", None).await.expect("etcd Range");
    let values: Vec<&[u8]> = got.kvs().iter().map(|kv| kv.value()).collect();
    assert_eq!(values, vec![&b"ok"[..]], "etcd Range after the garbage");
}

#[tokio::test(flavor = "multi_thread")]
async fn raft_port_drops_garbage_and_the_cluster_stays_healthy() {
    let mut rng = test_rng("raft_port_drops_garbage_and_the_cluster_stays_healthy");
    let cluster = Cluster::start(BIN, 3, ClusterOpts::default()).await;
    let leader = cluster.leader_index().await;
    let follower = cluster.follower_indexes().await[0];
    for index in [leader, follower] {
        let addr = cluster.server(index).raft_addr();
        h2_port_survives_garbage(addr, &format!("Raft (server {index})"), true, &mut rng).await;
    }
    // Still one leader, and a write commits and reaches every server.
    let leader = cluster.leader().await.http().clone();
    assert!(
        leader.kv_put("malformed/raft", "ok").await.expect("PUT"),
        "PUT returned false"
    );
    for server in cluster.servers() {
        let http = server.http().clone();
        wait_for("the write to reach every server", DEADLINE, || {
            let http = http.clone();
            async move {
                match http.kv_get("malformed/raft", Consistency::Stale).await {
                    Ok(Some(entry)) if entry.value.as_deref() == Some(&b"ok"[..]) => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            }
        })
        .await;
    }
}

/// A DNS query message for `name`, type A, class IN, with recursion desired.
fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut msg = id.to_be_bytes().to_vec();
    msg.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        msg.push(label.len() as u8);
        msg.extend_from_slice(label.as_bytes());
    }
    msg.extend_from_slice(&[0, 0, 1, 0, 1]);
    msg
}

const FORMERR: u8 = 1;

/// Malformed DNS messages, each with the id a reply must carry (if any).
fn dns_garbage(rng: &mut impl RngCore) -> Vec<(&'static str, Vec<u8>)> {
    let id = |n: u16| n.to_be_bytes().to_vec();
    let with_header = |id_bytes: Vec<u8>, rest: &[u8]| {
        let mut m = id_bytes;
        m.extend_from_slice(rest);
        m
    };
    vec![
        ("random bytes", random_bytes(rng, 512)),
        ("a lone byte", vec![0x42]),
        ("a truncated header", vec![0x12, 0x34, 0x01]),
        (
            "a question count with no question",
            with_header(id(0x1111), &[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]),
        ),
        (
            "65535 questions claimed",
            with_header(
                id(0x2222),
                &[
                    0x01, 0x00, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 1, b'a', 0, 0, 1, 0, 1,
                ],
            ),
        ),
        (
            "a name that points at itself",
            with_header(
                id(0x3333),
                &[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1],
            ),
        ),
        (
            "a label running past the end",
            with_header(
                id(0x4444),
                &[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 60, b'a', b'b'],
            ),
        ),
        (
            "a response instead of a query",
            with_header(id(0x5555), &[0x81, 0x80, 0, 0, 0, 0, 0, 0, 0, 0]),
        ),
    ]
}

/// A reply to malformed input, if any, must be FORMERR for that message's id.
fn assert_formerr_or_nothing(what: &str, sent: &[u8], reply: Option<&[u8]>) {
    let Some(reply) = reply else {
        println!("DNS {what}: no answer");
        return;
    };
    assert!(
        reply.len() >= 12,
        "DNS {what}: a reply shorter than a header: {reply:02x?}"
    );
    let rcode = reply[3] & 0x0f;
    println!("DNS {what}: rcode {rcode}");
    if sent.len() >= 2 {
        assert_eq!(&reply[..2], &sent[..2], "DNS {what}: the reply's id");
    }
    // A response sent to the server has nothing to answer: no reply is
    // right, and so is FORMERR; nothing else is.
    assert_eq!(rcode, FORMERR, "DNS {what}: reply {reply:02x?}");
}

/// Checks a real reply: NOERROR, at least one answer.
fn assert_answers(reply: &[u8], id: u16, what: &str) {
    assert!(reply.len() >= 12, "{what}: short reply {reply:02x?}");
    assert_eq!(&reply[..2], &id.to_be_bytes(), "{what}: reply id");
    assert_eq!(reply[3] & 0x0f, 0, "{what}: rcode of {reply:02x?}");
    let answers = u16::from_be_bytes([reply[6], reply[7]]);
    assert!(answers >= 1, "{what}: no answer in {reply:02x?}");
}

async fn udp_exchange(socket: &UdpSocket, msg: &[u8]) -> Option<Vec<u8>> {
    socket.send(msg).await.expect("UDP send");
    let mut buf = vec![0u8; 4096];
    match timeout(UDP_WAIT, socket.recv(&mut buf)).await {
        Ok(Ok(n)) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

/// Sends one length-prefixed message over TCP; the reply, or `None` when
/// the server closed the connection instead.
async fn tcp_exchange(addr: SocketAddr, msg: &[u8]) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).await.expect("DNS TCP connect");
    let mut framed = (msg.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(msg);
    stream.write_all(&framed).await.ok()?;
    let read = async {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await.ok()?;
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut reply).await.ok()?;
        Some(reply)
    };
    timeout(DEADLINE, read)
        .await
        .unwrap_or_else(|_| panic!("DNS over TCP: neither a reply nor a close within {DEADLINE:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_port_answers_malformed_messages_with_formerr_or_nothing() {
    let mut rng = test_rng("dns_port_answers_malformed_messages_with_formerr_or_nothing");
    let dev = Server::start_dev(BIN).await;
    let dns = dev.dns_addr();
    let node_name = format!("{}.node.consul", dev.name());

    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind UDP");
    socket.connect(dns).await.expect("connect UDP");
    for (what, msg) in dns_garbage(&mut rng) {
        let reply = udp_exchange(&socket, &msg).await;
        assert_formerr_or_nothing(&format!("over UDP, {what}"), &msg, reply.as_deref());
    }
    let id = rng.random();
    let reply = udp_exchange(&socket, &dns_query(id, &node_name))
        .await
        .expect("no UDP answer to a real query after the garbage");
    assert_answers(&reply, id, "a UDP query after the garbage");

    for (what, msg) in dns_garbage(&mut rng) {
        let reply = tcp_exchange(dns, &msg).await;
        assert_formerr_or_nothing(&format!("over TCP, {what}"), &msg, reply.as_deref());
    }
    // A length prefix promising more than ever comes, then a close.
    let outcome = send_garbage(dns, &[0xff, 0xff, 1, 2, 3], "DNS over TCP, a short message").await;
    println!(
        "DNS over TCP, a short message: {} bytes back",
        outcome.received.len()
    );
    let id = rng.random();
    let reply = tcp_exchange(dns, &dns_query(id, &node_name))
        .await
        .expect("no TCP answer to a real query after the garbage");
    assert_answers(&reply, id, "a TCP query after the garbage");
}

#[tokio::test(flavor = "multi_thread")]
async fn nacos_port_answers_malformed_forms_with_caused() {
    let mut rng = test_rng("nacos_port_answers_malformed_forms_with_caused");
    let dev = Server::start_dev(BIN).await;
    let base = format!("http://{}/nacos/v1/ns", dev.nacos_addr());
    let client = reqwest::Client::new();
    let mut random_form = b"serviceName=svc&ip=".to_vec();
    random_form.extend(random_bytes(&mut rng, 256));
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        (
            "a broken %-escape",
            b"serviceName=svc&ip=127.0.0.1&port=%zz".to_vec(),
        ),
        (
            "a truncated %-escape",
            b"serviceName=svc&ip=127.0.0.1&port=8%".to_vec(),
        ),
        (
            "bytes that are not UTF-8",
            b"serviceName=\xff\xfe&ip=127.0.0.1&port=1".to_vec(),
        ),
        (
            "an escape that is not UTF-8",
            b"serviceName=%C3%28&ip=127.0.0.1&port=1".to_vec(),
        ),
        ("no names at all", b"=&==&=x".to_vec()),
        (
            "a JSON body",
            br#"{"serviceName":"svc","ip":"127.0.0.1","port":1}"#.to_vec(),
        ),
        ("random bytes in a value", random_form),
    ];
    for (what, body) in bodies {
        let reply = client
            .post(format!("{base}/instance"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("Nacos, {what}: {e}"));
        let status = reply.status().as_u16();
        let text = reply.text().await.unwrap_or_default();
        println!("Nacos, {what}: {status} {text}");
        assert_eq!(status, 400, "Nacos, {what}: {text}");
        assert!(
            text.starts_with("caused: ") && text.ends_with(';'),
            "Nacos, {what}: not Nacos's error shape: {text:?}"
        );
    }
    // Raw garbage on the port: a 400 or a close, then the API still works.
    let outcome = send_garbage(
        dev.nacos_addr(),
        &random_bytes(&mut rng, 2048),
        "Nacos port, random bytes",
    )
    .await;
    let text = String::from_utf8_lossy(&outcome.received);
    assert!(
        outcome.received.is_empty() || text.starts_with("HTTP/1.1 4"),
        "Nacos port, random bytes: {:?}",
        text.lines().next()
    );
    let reply = client
        .post(format!("{base}/instance"))
        .form(&[
            ("serviceName", "after-garbage"),
            ("ip", "127.0.0.1"),
            ("port", "9"),
        ])
        .send()
        .await
        .expect("Nacos register after the garbage");
    assert_eq!(reply.status().as_u16(), 200, "register after the garbage");
    let list = client
        .get(format!("{base}/instance/list?serviceName=after-garbage"))
        .send()
        .await
        .expect("Nacos list")
        .text()
        .await
        .expect("list body");
    assert!(
        list.contains("127.0.0.1"),
        "the registered instance is listed: {list}"
    );
}
