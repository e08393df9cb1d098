//! One dev agent: register, keep alive, filter, deregister, and the death of
//! a registered process.

use std::time::{Duration, Instant};

use sextant_client::{Client, Discovery, Health, Instance, Query};
use testkit::{wait_for, Server};

use crate::processes::{sextant_bin, UserService};

const WAIT: Duration = Duration::from_secs(20);

fn ids(view: &Discovery) -> Vec<String> {
    view.endpoints().iter().map(|e| e.id.clone()).collect()
}

async fn wait_ids(view: &Discovery, what: &str, expected: &[&str]) {
    wait_for(what, WAIT, || async {
        let now = ids(view);
        if now == expected {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t10_register_keep_alive_filter_and_deregister() {
    let dev = Server::start_dev(sextant_bin()).await;
    let client = Client::connect([dev.grpc_addr().to_string()])
        .await
        .expect("connect");
    let view = client.discover("orders").await.expect("discover");
    assert!(view.endpoints().is_empty());
    let blue = client
        .discover(Query::new("orders").tag("blue"))
        .await
        .expect("discover blue");

    let ttl = Duration::from_secs(1);
    let first = client
        .register(
            Instance::new("orders", "127.0.0.1", 9001)
                .id("orders-1")
                .ttl(ttl),
        )
        .await
        .expect("register orders-1");
    let second = client
        .register(
            Instance::new("orders", "127.0.0.1", 9002)
                .id("orders-2")
                .tag("blue")
                .weight(3)
                .ttl(ttl),
        )
        .await
        .expect("register orders-2");
    wait_ids(&view, "both instances passing", &["orders-1", "orders-2"]).await;
    wait_ids(
        &blue,
        "only the blue instance in the tag view",
        &["orders-2"],
    )
    .await;
    let two = view
        .endpoints()
        .iter()
        .find(|e| e.id == "orders-2")
        .cloned()
        .expect("orders-2");
    assert_eq!(
        (two.weight, two.health, two.port),
        (3, Health::Passing, 9002)
    );

    // Three TTLs later the keep-alive stream has kept both passing.
    let mut changes = view.receiver();
    changes.borrow_and_update();
    let kept = tokio::time::timeout(ttl * 3, changes.changed()).await;
    assert!(
        kept.is_err(),
        "the view changed while the keep-alive ran: {kept:?}"
    );
    assert_eq!(ids(&view), ["orders-1", "orders-2"]);

    first.shutdown().await.expect("shutdown deregisters");
    wait_ids(&view, "orders-1 gone after shutdown", &["orders-2"]).await;
    drop(second);
    wait_ids(&view, "orders-2 gone after its handle was dropped", &[]).await;
    wait_ids(&blue, "the tag view empty too", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t11_invalid_instances_are_refused_before_and_by_the_server() {
    let dev = Server::start_dev(sextant_bin()).await;
    let client = Client::connect([dev.grpc_addr().to_string()])
        .await
        .expect("connect");
    let refused = client
        .register(Instance::new("orders", "127.0.0.1", 0))
        .await;
    assert!(
        matches!(refused, Err(sextant_client::Error::InvalidInstance(_))),
        "{refused:?}"
    );
    let refused = client.discover("").await;
    assert!(
        matches!(refused, Err(sextant_client::Error::Rejected(_))),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t20_a_sigkilled_process_leaves_discovery_within_its_ttl() {
    let dev = Server::start_dev(sextant_bin()).await;
    let servers = [dev.grpc_addr().to_string()];
    let ttl = Duration::from_secs(1);
    let mut service = UserService::start("user-ttl", ttl, &servers).await;
    let client = Client::connect(servers.clone()).await.expect("connect");
    let healthy = client.discover("user-service").await.expect("discover");
    let all = client
        .discover(Query::new("user-service").include_unhealthy())
        .await
        .expect("discover all");
    wait_ids(&healthy, "the instance passing", &["user-ttl"]).await;

    service.kill().await;
    let killed = Instant::now();
    wait_ids(&healthy, "the killed instance out of the healthy view", &[]).await;
    let unhealthy_after = killed.elapsed();
    wait_ids(&all, "the killed instance deregistered", &[]).await;
    let gone_after = killed.elapsed();
    println!("critical after {unhealthy_after:?}, deregistered after {gone_after:?}");
    // The TTL (+ one renewal interval it may have just been renewed in),
    // then the deregister window (the example sets it to one TTL); a second
    // of slack for the reaper's retry tick.
    let slack = Duration::from_secs(1);
    assert!(
        unhealthy_after <= ttl + ttl / 3 + slack,
        "{unhealthy_after:?}"
    );
    assert!(
        gone_after <= ttl + ttl / 3 + ttl + slack * 2,
        "{gone_after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t21_sigterm_deregisters_at_once() {
    let dev = Server::start_dev(sextant_bin()).await;
    let servers = [dev.grpc_addr().to_string()];
    let mut service = UserService::start("user-term", Duration::from_secs(30), &servers).await;
    let client = Client::connect(servers.clone()).await.expect("connect");
    let all = client
        .discover(Query::new("user-service").include_unhealthy())
        .await
        .expect("discover");
    wait_ids(&all, "the instance registered", &["user-term"]).await;
    service.terminate().await;
    // Well within the 30 s TTL: the process deregistered itself.
    wait_ids(&all, "the instance deregistered", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t12_an_instance_removed_behind_the_clients_back_is_registered_again() {
    let dev = Server::start_dev(sextant_bin()).await;
    let servers = [dev.grpc_addr().to_string()];
    let client = Client::connect(servers.clone()).await.expect("connect");
    let view = client.discover("orders").await.expect("discover");
    let registration = client
        .register(
            Instance::new("orders", "127.0.0.1", 9001)
                .id("orders-1")
                .ttl(Duration::from_secs(1)),
        )
        .await
        .expect("register");
    wait_ids(&view, "the instance passing", &["orders-1"]).await;
    let node = registration.node().expect("a node");

    // Another process deregisters it: the next renewal reports it unknown.
    let mut raw = sextant_proto::v1::registry_client::RegistryClient::connect(format!(
        "http://{}",
        servers[0]
    ))
    .await
    .expect("raw client");
    let removed_at = raw
        .deregister(sextant_proto::v1::DeregisterRequest {
            instance_id: String::from("orders-1"),
            node,
        })
        .await
        .expect("deregister behind the client's back")
        .into_inner()
        .revision;
    // The view may never show the gap (a renewal can follow within
    // milliseconds); a registration newer than the removal proves it.
    wait_for(
        "the instance registered again after its removal",
        WAIT,
        || async {
            match view.endpoints().iter().find(|e| e.id == "orders-1") {
                Some(e) if e.revision > removed_at => Ok(()),
                other => Err(format!("{other:?} (removed at {removed_at})")),
            }
        },
    )
    .await;
    registration.shutdown().await.expect("shutdown");
    wait_ids(&view, "the instance gone after shutdown", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t13_registrations_and_views_survive_a_server_restart() {
    let mut dev = Server::start_dev(sextant_bin()).await;
    let servers = [dev.grpc_addr().to_string()];
    let client = Client::connect(servers.clone()).await.expect("connect");
    let view = client.discover("orders").await.expect("discover");
    let ttl = Duration::from_secs(2);
    let _registration = client
        .register(
            Instance::new("orders", "127.0.0.1", 9001)
                .id("orders-1")
                .ttl(ttl),
        )
        .await
        .expect("register");
    wait_ids(&view, "the instance passing", &["orders-1"]).await;

    dev.restart().await;
    // A registration made after the restart shows the watch resumed...
    let _second = client
        .register(
            Instance::new("orders", "127.0.0.1", 9002)
                .id("orders-2")
                .ttl(ttl),
        )
        .await
        .expect("register after the restart");
    wait_ids(
        &view,
        "both instances in the resumed view",
        &["orders-1", "orders-2"],
    )
    .await;
    // ...and several TTLs later the first is still kept alive.
    let mut changes = view.receiver();
    changes.borrow_and_update();
    let kept = tokio::time::timeout(ttl * 3, changes.changed()).await;
    assert!(kept.is_err(), "the view changed: {:?}", changes.borrow());
}
