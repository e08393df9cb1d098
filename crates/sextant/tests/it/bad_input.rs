//! Malformed requests get a 4xx with a reason, change nothing, and leave the
//! server answering.

use std::time::Duration;

use reqwest::Method;
use testkit::{wait_for, Cluster, ClusterOpts, Consistency, HttpClient, Server};

const BIN: &str = env!("CARGO_BIN_EXE_sextant");

/// Consul's limit on one value.
const MAX_VALUE: usize = 512 * 1024;

async fn wait_for_leader(http: &HttpClient) {
    wait_for(
        "the server to know a leader",
        Duration::from_secs(30),
        || async {
            match http.status_leader().await {
                Ok(leader) if !leader.is_empty() => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
}

/// Sends the request and asserts a 4xx with a non-empty reason, and that the
/// server still answers afterwards.
async fn assert_rejected(http: &HttpClient, method: Method, path: &str, body: Option<Vec<u8>>) {
    let shown = format!("{method} {path}");
    let reply = http
        .request(method, path, body, None)
        .await
        .unwrap_or_else(|e| panic!("{shown}: {e:#}"));
    assert!(
        (400..500).contains(&reply.status),
        "{shown}: expected a 4xx, got {} {:?}",
        reply.status,
        reply.text()
    );
    assert!(
        !reply.text().trim().is_empty(),
        "{shown}: {} without a reason in the body",
        reply.status
    );
    println!("{shown} -> {} {}", reply.status, reply.text().trim());
    let alive = http
        .get("/v1/status/leader")
        .await
        .unwrap_or_else(|e| panic!("server stopped answering after {shown}: {e:#}"));
    assert_eq!(alive.status, 200, "GET /v1/status/leader after {shown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_query_parameters_are_rejected_and_write_nothing() {
    let dev = Server::start_dev(BIN).await;
    let http = dev.http();
    wait_for_leader(http).await;
    assert!(
        http.kv_put("bad/existing", "keep").await.expect("PUT"),
        "PUT returned false"
    );

    let cases: &[(Method, &str)] = &[
        (Method::PUT, "/v1/kv/bad/cas?cas=abc"),
        (Method::PUT, "/v1/kv/bad/flags?flags=-1"),
        (Method::PUT, "/v1/kv/bad/flags?flags=abc"),
        (Method::PUT, "/v1/kv/bad/existing?cas=abc"),
        (Method::PUT, "/v1/kv/bad/existing?flags=-1"),
        (Method::GET, "/v1/kv/bad/existing?index=xyz"),
        (Method::GET, "/v1/kv/bad/existing?index=1&wait=forever"),
        (Method::GET, "/v1/kv/bad/existing?stale&consistent"),
        (Method::DELETE, "/v1/kv/bad/existing?cas=abc"),
    ];
    for (method, path) in cases {
        let body = (*method == Method::PUT).then(|| b"overwritten".to_vec());
        assert_rejected(http, method.clone(), path, body).await;
    }

    let keys = http
        .kv_keys("", Consistency::Default)
        .await
        .expect("GET ?keys");
    assert_eq!(
        keys,
        vec!["bad/existing".to_owned()],
        "keys after the rejected requests"
    );
    let entry = http
        .kv_get("bad/existing", Consistency::Default)
        .await
        .expect("GET")
        .expect("bad/existing survives");
    assert_eq!(
        entry.value.as_deref(),
        Some(&b"keep"[..]),
        "value after the rejected requests"
    );
    assert_eq!(entry.flags, 0, "flags after the rejected requests");
}

#[tokio::test(flavor = "multi_thread")]
async fn values_over_512_kib_are_rejected() {
    let dev = Server::start_dev(BIN).await;
    let http = dev.http();
    wait_for_leader(http).await;

    let too_big = vec![b'x'; MAX_VALUE + 1];
    let reply = http
        .put("/v1/kv/big/over", too_big)
        .await
        .expect("PUT of an oversized value");
    assert!(
        reply.status == 413 || reply.status == 400,
        "oversized value: expected 413 or 400, got {} {:?}",
        reply.status,
        reply.text()
    );
    assert!(
        !reply.text().trim().is_empty(),
        "oversized value: no reason given"
    );
    assert_eq!(
        http.kv_get("big/over", Consistency::Default)
            .await
            .expect("GET"),
        None,
        "the oversized value was written"
    );

    // The limit itself is allowed.
    let at_limit: Vec<u8> = (0..MAX_VALUE).map(|i| b'a' + (i % 26) as u8).collect();
    assert!(
        http.kv_put("big/at-limit", at_limit.clone())
            .await
            .expect("PUT of 512 KiB"),
        "PUT of exactly 512 KiB returned false"
    );
    let entry = http
        .kv_get("big/at-limit", Consistency::Default)
        .await
        .expect("GET")
        .expect("the 512 KiB value exists");
    assert!(
        entry.value.as_deref() == Some(&at_limit[..]),
        "the 512 KiB value came back different"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_sent_to_a_follower_is_rejected_and_writes_nothing() {
    let cluster = Cluster::start(BIN, 3, ClusterOpts::default()).await;
    let follower = cluster.followers().await[0].http().clone();
    let leader = cluster.leader().await.http().clone();

    assert_rejected(
        &follower,
        Method::PUT,
        "/v1/kv/f/cas?cas=abc",
        Some(b"x".to_vec()),
    )
    .await;
    assert_rejected(
        &follower,
        Method::GET,
        "/v1/kv/f/cas?stale&consistent",
        None,
    )
    .await;
    let reply = follower
        .put("/v1/kv/f/big", vec![0u8; MAX_VALUE + 1])
        .await
        .expect("PUT of an oversized value");
    assert!(
        reply.status == 413 || reply.status == 400,
        "oversized value through a follower: got {} {:?}",
        reply.status,
        reply.text()
    );
    let keys = leader
        .kv_keys("f/", Consistency::Consistent)
        .await
        .expect("GET ?keys");
    assert!(
        keys.is_empty(),
        "keys written by rejected requests: {keys:?}"
    );
}
