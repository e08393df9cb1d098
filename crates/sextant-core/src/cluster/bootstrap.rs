//! Cluster formation.
//!
//! A server that is not yet part of a cluster greets every address it was given
//! with `--join` and every server it has heard of since. Once `bootstrap_expect`
//! servers know of each other and none belongs to a cluster yet, the one with
//! the smallest id (and only it) initializes Raft with all of them. A server
//! that finds an existing cluster asks to join it instead; the leader adds it as
//! a learner and promotes it to voter once it has caught up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::peer::{Hello, JoinRequest};
use crate::peer::{Method, PeerClients};
use crate::registry::Registry;

use super::discovery::Discovery;

/// How often an unformed server greets its peers.
const GREETING_INTERVAL: Duration = Duration::from_millis(200);
const GREETING_TIMEOUT: Duration = Duration::from_millis(1000);

pub struct Bootstrap {
    pub registry: Arc<Registry>,
    pub discovery: Arc<Discovery>,
    pub peers: PeerClients,
    /// Raft addresses of other servers given with `--join`.
    pub join: Vec<String>,
    /// Form a new cluster once this many servers know of each other (0: never).
    pub bootstrap_expect: usize,
}

impl Bootstrap {
    /// Runs until this server belongs to a cluster.
    pub async fn run(self) {
        let raft = self.registry.raft();
        if raft.is_initialized().await.unwrap_or(false) {
            return;
        }
        tracing::info!(join = ?self.join, expect = self.bootstrap_expect, "looking for the cluster");
        loop {
            if raft.is_initialized().await.unwrap_or(true) {
                tracing::info!("this server is part of the cluster");
                return;
            }
            let greeted = self.greet_everyone().await;
            if greeted.iter().any(|hello| hello.initialized) {
                self.ask_to_join().await;
            } else if self.should_initialize() {
                let members: BTreeMap<_, _> = self.discovery.known();
                tracing::info!(servers = members.len(), "initializing a new cluster");
                if let Err(e) = raft.initialize(members).await {
                    tracing::warn!(error = %e, "cluster initialization failed; retrying");
                }
            }
            tokio::time::sleep(GREETING_INTERVAL).await;
        }
    }

    async fn greet_everyone(&self) -> Vec<Hello> {
        let me = self.discovery.introduce().await;
        let own = &self.registry.node().raft_addr;
        let mut addresses: Vec<String> = Vec::new();
        let known: Vec<String> = self
            .discovery
            .known()
            .into_values()
            .map(|n| n.raft_addr)
            .collect();
        for addr in self.join.iter().chain(known.iter()) {
            if addr != own && !addresses.contains(addr) {
                addresses.push(addr.clone());
            }
        }
        let calls = addresses.iter().map(|addr| {
            let peers = self.peers.clone();
            let me = me.clone();
            async move {
                peers
                    .call::<Hello, Hello>(addr, Method::Hello, &me, GREETING_TIMEOUT)
                    .await
                    .ok()
            }
        });
        let answers: Vec<Hello> = futures::future::join_all(calls)
            .await
            .into_iter()
            .flatten()
            .collect();
        for hello in &answers {
            self.discovery.learn(&hello.known);
            self.discovery
                .learn(&BTreeMap::from([(hello.id, hello.node.clone())]));
        }
        answers
    }

    fn should_initialize(&self) -> bool {
        let known = self.discovery.known();
        self.bootstrap_expect > 0
            && known.len() >= self.bootstrap_expect
            && known.keys().next() == Some(&self.registry.id())
    }

    async fn ask_to_join(&self) {
        let request = JoinRequest {
            id: self.registry.id(),
            node: self.registry.node().clone(),
        };
        let known = self.discovery.known();
        for node in known
            .values()
            .filter(|n| n.raft_addr != self.registry.node().raft_addr)
        {
            let answer: Result<crate::peer::MembershipResponse, _> = self
                .peers
                .call(
                    &node.raft_addr,
                    Method::Join,
                    &request,
                    Duration::from_secs(30),
                )
                .await;
            match answer {
                Ok(Ok(())) => {
                    tracing::info!(via = %node, "joined the cluster");
                    return;
                }
                Ok(Err(e)) => tracing::debug!(via = %node, error = %e, "join refused"),
                Err(e) => tracing::debug!(via = %node, error = %e, "join failed"),
            }
        }
    }
}
