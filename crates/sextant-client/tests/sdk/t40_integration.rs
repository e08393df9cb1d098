//! The SDK under other clients: the consumer example, a tonic channel, and
//! tower's own p2c balancer fed by the SDK's discovery.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use sextant_client::{BreakerConfig, CircuitBreakerLayer, Client, Endpoint, Instance};
use sextant_proto::v1::registry_client::RegistryClient;
use sextant_proto::v1::DiscoverRequest;
use testkit::{wait_for, Server};
use tokio::io::{AsyncBufReadExt, BufReader};
use tower::{Layer, Service, ServiceExt};

use crate::processes::{example_bin, sextant_bin, UserService};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t40_the_consumer_example_reports_calls_to_every_instance() {
    let dev = Server::start_dev(sextant_bin()).await;
    let servers = [dev.grpc_addr().to_string()];
    let _a = UserService::start("user-a", Duration::from_secs(5), &servers).await;
    let _b = UserService::start("user-b", Duration::from_secs(5), &servers).await;
    let mut consumer = tokio::process::Command::new(example_bin("consumer"))
        .args(["--sextant", &servers[0], "--report-ms", "200"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawning the consumer example");
    let mut lines = BufReader::new(consumer.stdout.take().expect("piped")).lines();
    let found = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.expect("reading stdout") {
            // report ok=N failed=0 view=2 | user-a ok=N failed=0 closed user-b ok=N ...
            let answered_both = ["user-a", "user-b"].iter().all(|id| {
                line.split(&format!(" {id} ok="))
                    .nth(1)
                    .and_then(|rest| rest.split(' ').next())
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| n >= 5)
            });
            if answered_both {
                return line;
            }
        }
        panic!("the consumer exited")
    })
    .await
    .expect("a report with calls to both instances");
    println!("{found}");
    assert!(found.contains(" failed=0 view=2 |"), "{found}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t41_a_balanced_tonic_channel_reaches_a_discovered_grpc_service() {
    let dev = Server::start_dev(sextant_bin()).await;
    let grpc = dev.grpc_addr();
    let client = Client::connect([grpc.to_string()]).await.expect("connect");
    // The registry itself is a gRPC service: register it and call it back
    // through a channel built from discovery.
    let _me = client
        .register(
            Instance::new("sextant-grpc", grpc.ip().to_string(), grpc.port())
                .ttl(Duration::from_secs(5)),
        )
        .await
        .expect("register");
    let channel = client.channel("sextant-grpc").await.expect("channel");
    let registry = RegistryClient::new(channel);
    let found = wait_for("a call through the balanced channel", WAIT, || {
        let mut registry = registry.clone();
        async move {
            let request = DiscoverRequest {
                service: String::from("sextant-grpc"),
                ..Default::default()
            };
            match tokio::time::timeout(Duration::from_secs(1), registry.discover(request)).await {
                Ok(Ok(response)) => Ok(response.into_inner()),
                Ok(Err(status)) => Err(status.to_string()),
                Err(_) => Err(String::from("no endpoint yet")),
            }
        }
    })
    .await;
    assert_eq!(found.instances.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t42_tower_p2c_balances_over_the_sdk_discovery() {
    let dev = Server::start_dev(sextant_bin()).await;
    let servers = [dev.grpc_addr().to_string()];
    let _a = UserService::start("user-a", Duration::from_secs(5), &servers).await;
    let _b = UserService::start("user-b", Duration::from_secs(5), &servers).await;
    let client = Client::connect(servers.clone()).await.expect("connect");
    let view = client.discover("user-service").await.expect("discover");
    wait_for("both instances discovered", WAIT, || async {
        match view.endpoints().len() {
            2 => Ok(()),
            n => Err(format!("{n} instances")),
        }
    })
    .await;

    let http = reqwest::Client::new();
    let breaker = CircuitBreakerLayer::new(BreakerConfig::default());
    let discover = view.services(move |endpoint: &Endpoint| {
        let (http, base) = (http.clone(), endpoint.http_uri());
        breaker.layer(tower::service_fn(move |path: &'static str| {
            let request = http.get(format!("{base}{path}"));
            async move { request.send().await?.error_for_status()?.text().await }
        }))
    });
    let discover = tower::load::PeakEwmaDiscover::new(
        discover,
        Duration::from_millis(30),
        Duration::from_secs(10),
        tower::load::CompleteOnResponse::default(),
    );
    let mut balance = tower::balance::p2c::Balance::new(discover);
    let mut answered = BTreeSet::new();
    for _ in 0..40 {
        let id = balance
            .ready()
            .await
            .expect("ready")
            .call("/hello")
            .await
            .expect("a call through tower's balancer");
        answered.insert(id);
    }
    assert_eq!(
        answered,
        BTreeSet::from([String::from("user-a"), String::from("user-b")])
    );
}
