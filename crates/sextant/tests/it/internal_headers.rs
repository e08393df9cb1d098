//! Requests between servers travel only over the internal API on the raft
//! port. The `x-sextant-*` headers that once marked such requests on the
//! public Consul port are now ordinary headers there: a client that sends
//! them gets exactly what it would get without them.

use std::time::Duration;

use serde_json::Value;
use testkit::{Cluster, ClusterOpts, Server};

const BIN: &str = env!("CARGO_BIN_EXE_sextant");

/// The headers that used to mean "passed on by another server": never pass
/// this on again, take it for this node's check, wait for this revision.
fn internal_headers(check_node: &str) -> [(&'static str, String); 3] {
    [
        ("x-sextant-forwarded", "1".to_owned()),
        ("x-sextant-check-node", check_node.to_owned()),
        ("x-sextant-seen-revision", "1".to_owned()),
    ]
}

/// A PUT with the internal headers set.
async fn put_with_internal_headers(server: &Server, path: &str, check_node: &str) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .put(format!("http://{}{path}", server.http_addr()))
        .timeout(Duration::from_secs(30));
    for (name, value) in internal_headers(check_node) {
        request = request.header(name, value);
    }
    let reply = request.send().await.expect("the request is answered");
    let status = reply.status().as_u16();
    (status, reply.text().await.unwrap_or_default())
}

/// The status of check `service:ID` on `node`, as the leader sees it.
async fn check_status(server: &Server, node: &str, id: &str) -> String {
    let checks: Value = server
        .http()
        .get_json(&format!("/v1/health/node/{node}?consistent"))
        .await
        .expect("the node's checks");
    checks
        .as_array()
        .and_then(|checks| {
            checks
                .iter()
                .find(|c| c["CheckID"] == format!("service:{id}"))
        })
        .and_then(|c| c["Status"].as_str())
        .unwrap_or_else(|| panic!("no check service:{id} on {node}: {checks}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_headers_on_the_public_port_change_nothing() {
    let cluster = Cluster::start(BIN, 3, ClusterOpts::default()).await;
    let followers = cluster.follower_indexes().await;
    let (here, there) = (cluster.server(followers[0]), cluster.server(followers[1]));

    // The same TTL check on two servers' nodes, both critical to begin with.
    for server in [here, there] {
        let reply = server
            .http()
            .put(
                "/v1/agent/service/register",
                r#"{"ID":"hdr","Name":"hdr","Check":{"TTL":"60s"}}"#,
            )
            .await
            .expect("register");
        assert_eq!(reply.status, 200, "{}", reply.text());
    }

    // A pass on `here` naming `there`'s node: once, a server took that as an
    // update passed on to it for the other node's check. Now it passes the
    // check of the node it was sent to, like any pass.
    let (status, body) =
        put_with_internal_headers(here, "/v1/agent/check/pass/service:hdr", there.name()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(check_status(here, here.name(), "hdr").await, "passing");
    assert_eq!(
        check_status(here, there.name(), "hdr").await,
        "critical",
        "a client's x-sextant-check-node header picked the node of the check"
    );

    // A renewal on a follower: once, "already passed on" made the follower
    // refuse it (no leader). Now the follower passes it on to the leader.
    let session: Value = here
        .http()
        .put("/v1/session/create", r#"{"TTL":"30s","Checks":[]}"#)
        .await
        .expect("create a session")
        .json()
        .expect("a session id");
    let id = session["ID"].as_str().expect("an ID");
    let (status, body) =
        put_with_internal_headers(here, &format!("/v1/session/renew/{id}"), there.name()).await;
    assert_eq!(
        status, 200,
        "a renewal marked as forwarded was refused: {body}"
    );
    let renewed: Value = serde_json::from_str(&body).expect("the renewed session");
    assert_eq!(renewed[0]["ID"], id, "{renewed}");
}
