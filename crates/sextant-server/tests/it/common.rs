//! In-process servers on ephemeral ports for this crate's integration tests.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use sextant_server::{start, RunningServer, ServerConfig};

/// A server that bootstraps alone, every listener on an ephemeral loopback
/// port, with a short election timeout so etcd's minimum lease TTL
/// (1.5 election timeouts) is 1 s.
pub fn single_server_config(dir: &Path) -> ServerConfig {
    let mut config = ServerConfig::new("t1", dir);
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    config.http_addr = any;
    config.grpc_addr = any;
    config.raft_addr = any;
    config.dns_addr = any;
    config.nacos_addr = any;
    config.bootstrap_expect = 1;
    config.election_timeout = Duration::from_millis(200);
    config
}

/// Starts `config` and waits until the server leads.
pub async fn start_leader(config: ServerConfig, deadline: Duration) -> RunningServer {
    let server = start(config).await.expect("server starts");
    let registry = server.registry.clone();
    poll("a leader", deadline, || {
        let registry = registry.clone();
        async move { registry.leader().map(|_| ()).ok_or("no leader yet") }
    })
    .await;
    server
}

/// Polls `probe` every 20 ms until it is `Ok`; panics with the last error
/// once `deadline` has passed.
pub async fn poll<T, E: std::fmt::Debug, F, Fut>(what: &str, deadline: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let start = Instant::now();
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(e) if start.elapsed() > deadline => panic!("timed out waiting for {what}: {e:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}
