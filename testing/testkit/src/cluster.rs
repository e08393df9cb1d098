//! N servers that bootstrap one Raft group, and the waits that tell when it
//! has a leader everybody agrees on.

use std::collections::BTreeMap;
use std::fmt::{Display, Write as _};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use futures::future::join_all;

use crate::http::{compare_kv, Consistency, RaftRole, RaftState};
use crate::server::{Server, ServerOpts};
use crate::wait::poll_until;

/// How a cluster is started.
#[derive(Clone, Debug)]
pub struct ClusterOpts {
    /// Flags given to every server.
    pub server: ServerOpts,
    /// How long forming (and re-forming after restarts) may take.
    pub formation_timeout: Duration,
}

impl Default for ClusterOpts {
    fn default() -> ClusterOpts {
        ClusterOpts {
            server: ServerOpts::default(),
            formation_timeout: Duration::from_secs(60),
        }
    }
}

/// A group of servers started together. Servers keep their index for the
/// whole test, also when killed, stopped or removed from the Raft membership;
/// servers added later get the next indexes. Dropping the cluster kills every
/// process.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    opts: ClusterOpts,
    servers: Vec<Server>,
}

impl Cluster {
    /// Starts `n` servers named `s1`..`sN`: `s1` first, then the others
    /// together with `--join <s1's raft address>`, all with
    /// `--bootstrap-expect n`. Returns once one leader is elected, every server
    /// names it, and every server reports exactly these `n` voters.
    pub async fn start(bin: impl AsRef<Path>, n: usize, opts: ClusterOpts) -> Cluster {
        let each = vec![opts.server.clone(); n];
        Cluster::start_with(bin, &each, opts).await
    }

    /// Like [`Cluster::start`], with one [`ServerOpts`] per server (its own
    /// network namespace and address, say); `opts.server` is what
    /// [`Cluster::add_server`] callers usually reuse.
    pub async fn start_with(
        bin: impl AsRef<Path>,
        each: &[ServerOpts],
        opts: ClusterOpts,
    ) -> Cluster {
        let n = each.len();
        assert!(n >= 1, "a cluster needs at least one server");
        let bin = bin.as_ref().to_owned();
        let first = Server::start(&bin, "s1", &each[0], Some(n), &[]).await;
        let seed = [first.raft_addr()];
        let rest = join_all((2..=n).map(|i| {
            let name = format!("s{i}");
            let (bin, server_opts, seed) = (&bin, &each[i - 1], &seed);
            async move { Server::start(bin, &name, server_opts, Some(n), seed).await }
        }))
        .await;
        let mut servers = vec![first];
        servers.extend(rest);
        let cluster = Cluster { bin, opts, servers };
        let voters: Vec<u64> = cluster.servers.iter().map(Server::node_id).collect();
        cluster.wait_voters(&voters).await;
        cluster
    }

    /// The binary the servers run (for the CLI, too).
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    pub fn opts(&self) -> &ClusterOpts {
        &self.opts
    }

    pub fn servers(&self) -> &[Server] {
        &self.servers
    }

    pub fn server(&self, index: usize) -> &Server {
        &self.servers[index]
    }

    pub fn server_mut(&mut self, index: usize) -> &mut Server {
        &mut self.servers[index]
    }

    pub fn len(&self) -> usize {
        self.servers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// Indexes of servers that are running and not paused: the ones that can answer.
    pub fn live_indexes(&self) -> Vec<usize> {
        (0..self.servers.len())
            .filter(|&i| self.servers[i].is_running() && !self.servers[i].is_paused())
            .collect()
    }

    /// Raft addresses of the servers that are running (paused ones included).
    pub fn running_raft_addrs(&self) -> Vec<SocketAddr> {
        self.servers
            .iter()
            .filter(|s| s.is_running())
            .map(Server::raft_addr)
            .collect()
    }

    /// Starts one more server (named `s<index+1>`) with `--join` to every
    /// running server and no `--bootstrap-expect`, and returns its index.
    /// Returns once it answers HTTP; whether it became a voter is for the
    /// caller to wait for ([`Cluster::wait_voters`]).
    pub async fn add_server(&mut self, opts: &ServerOpts) -> usize {
        let name = format!("s{}", self.servers.len() + 1);
        let join = self.running_raft_addrs();
        let server = Server::start(&self.bin, &name, opts, None, &join).await;
        self.servers.push(server);
        self.servers.len() - 1
    }

    /// `GET /v1/sextant/raft` from every live server, concurrently.
    pub async fn raft_states(&self) -> Vec<(usize, Result<RaftState>)> {
        let live = self.live_indexes();
        let states = join_all(
            live.iter()
                .map(|&i| async move { self.servers[i].http().raft_state().await }),
        )
        .await;
        live.into_iter().zip(states).collect()
    }

    /// The index of the leader, if the live servers agree on one right now:
    /// exactly one reports `Leader` (the highest term wins if an old leader
    /// has not noticed yet) and every live server names it as leader.
    pub async fn current_leader(&self) -> Result<usize, String> {
        let states = self.raft_states().await;
        leader_of(&self.servers, &states).map(|(index, _)| index)
    }

    /// Waits until the live servers agree on a leader, and returns its index.
    pub async fn leader_index(&self) -> usize {
        self.wait_for(
            "the live servers to agree on a leader",
            self.timeout(),
            || self.current_leader(),
        )
        .await
    }

    /// Waits until the live servers agree on a leader, and returns it.
    pub async fn leader(&self) -> &Server {
        let index = self.leader_index().await;
        &self.servers[index]
    }

    /// Indexes of the live servers other than the agreed leader.
    pub async fn follower_indexes(&self) -> Vec<usize> {
        let leader = self.leader_index().await;
        self.live_indexes()
            .into_iter()
            .filter(|&i| i != leader)
            .collect()
    }

    /// The live servers other than the agreed leader.
    pub async fn followers(&self) -> Vec<&Server> {
        let indexes = self.follower_indexes().await;
        indexes.into_iter().map(|i| &self.servers[i]).collect()
    }

    /// Waits until the live servers agree on a leader and every one of them
    /// reports exactly `voters` (node ids, any order) as the voters. Returns
    /// the leader's index.
    pub async fn wait_voters(&self, voters: &[u64]) -> usize {
        let mut expected = voters.to_vec();
        expected.sort_unstable();
        let what = format!("a leader and voters {expected:?} on every live server");
        self.wait_for(&what, self.timeout(), || async {
            let states = self.raft_states().await;
            let (leader, _) = leader_of(&self.servers, &states)?;
            for (i, state) in &states {
                let Ok(state) = state else {
                    return Err(format!("{} did not answer", self.servers[*i].name()));
                };
                if state.sorted_voters() != expected {
                    return Err(format!(
                        "{} reports voters {:?}",
                        self.servers[*i].name(),
                        state.sorted_voters()
                    ));
                }
            }
            Ok(leader)
        })
        .await
    }

    /// Waits until the live servers agree on a leader and their voters are
    /// exactly the running servers. Returns the leader's index.
    pub async fn wait_converged(&self) -> usize {
        let voters: Vec<u64> = self
            .servers
            .iter()
            .filter(|s| s.is_running())
            .map(Server::node_id)
            .collect();
        self.wait_voters(&voters).await
    }

    /// SIGKILLs every running server at (nearly) the same instant, then reaps them.
    pub async fn kill_all(&mut self) {
        for server in &mut self.servers {
            server.send_kill();
        }
        for server in &mut self.servers {
            server.kill().await;
        }
    }

    /// Restarts the given servers concurrently (each SIGKILLed first if running).
    pub async fn restart(&mut self, indexes: &[usize]) {
        join_all(
            self.servers
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| indexes.contains(i))
                .map(|(_, server)| server.restart()),
        )
        .await;
    }

    /// Polls `probe` like [`crate::wait_for`]; on timeout panics with what was
    /// awaited, the last observation, every server's Raft state and log tail.
    pub async fn wait_for<T, E, F, Fut>(&self, what: &str, timeout: Duration, probe: F) -> T
    where
        E: Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        match poll_until(timeout, probe).await {
            Ok(value) => value,
            Err((elapsed, reason)) => {
                let state = self.describe().await;
                panic!(
                    "timed out after {elapsed:?} waiting for {what}\nlast observation: {reason}\n{state}\n{}",
                    self.log_tails(40)
                )
            }
        }
    }

    /// Waits until server `index` serves exactly `expected` under `prefix`
    /// with `?stale`, that is from its own applied state.
    pub async fn wait_stale_copy(
        &self,
        index: usize,
        prefix: &str,
        expected: &BTreeMap<String, Vec<u8>>,
        timeout: Duration,
    ) {
        let server = self.server(index);
        let what = format!(
            "{} to serve all {} keys under {prefix} with ?stale",
            server.name(),
            expected.len()
        );
        self.wait_for(&what, timeout, || async {
            let actual = server
                .http()
                .kv_map(prefix, Consistency::Stale)
                .await
                .map_err(|e| format!("{e:#}"))?;
            compare_kv(expected, &actual)
        })
        .await;
    }

    /// Waits until every live server has applied everything in the leader's
    /// log as it stands now: a server just restarted has caught up.
    pub async fn wait_caught_up(&self) {
        let leader = self.leader_index().await;
        let target = self.servers[leader]
            .http()
            .raft_state()
            .await
            .ok()
            .and_then(|s| s.last_log_index)
            .unwrap_or(0);
        let what = format!("every live server to apply up to index {target}");
        self.wait_for(&what, self.timeout(), || async {
            let behind: Vec<String> = self
                .raft_states()
                .await
                .into_iter()
                .filter_map(|(i, state)| match state {
                    Ok(s) if s.last_applied.unwrap_or(0) >= target => None,
                    Ok(s) => Some(format!("{}: {:?}", self.servers[i].name(), s.last_applied)),
                    Err(e) => Some(format!("{}: {e:#}", self.servers[i].name())),
                })
                .collect();
            if behind.is_empty() {
                Ok(())
            } else {
                Err(behind.join(", "))
            }
        })
        .await;
    }

    /// The default deadline of the cluster's waits.
    pub fn timeout(&self) -> Duration {
        self.opts.formation_timeout
    }

    /// One line per server: process state and Raft state.
    pub async fn describe(&self) -> String {
        let states = self.raft_states().await;
        let mut text = String::from("servers:\n");
        for (i, server) in self.servers.iter().enumerate() {
            let process = if !server.is_running() {
                "down"
            } else if server.is_paused() {
                "paused"
            } else {
                "running"
            };
            let raft = match states.iter().find(|(j, _)| *j == i) {
                Some((_, Ok(s))) => format!(
                    "{:?} term {} leader {:?} last_log {:?} applied {:?} snapshot {:?} purged {:?} voters {:?} learners {:?}",
                    s.state,
                    s.term,
                    s.leader_id,
                    s.last_log_index,
                    s.last_applied,
                    s.snapshot_index,
                    s.purged_index,
                    s.sorted_voters(),
                    s.learners
                ),
                Some((_, Err(err))) => format!("raft state unavailable: {err:#}"),
                None => String::from("-"),
            };
            let _ = writeln!(
                text,
                "  [{i}] {} node {} raft {} http {} {process}: {raft}",
                server.name(),
                server.node_id(),
                server.raft_addr(),
                server.http_addr()
            );
        }
        text
    }

    /// Every server's log tail.
    pub fn log_tails(&self, lines: usize) -> String {
        self.servers
            .iter()
            .map(|s| s.log_tail(lines))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Finds the leader the answering servers agree on; every server in `states`
/// must have answered.
fn leader_of(
    servers: &[Server],
    states: &[(usize, Result<RaftState>)],
) -> Result<(usize, RaftState), String> {
    let mut leader: Option<(usize, &RaftState)> = None;
    for (i, state) in states {
        let state = match state {
            Ok(state) => state,
            Err(err) => return Err(format!("{} did not answer: {err:#}", servers[*i].name())),
        };
        if state.state == RaftRole::Leader && leader.is_none_or(|(_, l)| state.term > l.term) {
            leader = Some((*i, state));
        }
    }
    let Some((index, leader)) = leader else {
        return Err(String::from("no live server reports itself Leader"));
    };
    for (i, state) in states {
        if let Ok(state) = state {
            if state.leader_id != Some(leader.node_id) {
                return Err(format!(
                    "{} is Leader in term {} but {} names {:?} in term {}",
                    servers[index].name(),
                    leader.term,
                    servers[*i].name(),
                    state.leader_id,
                    state.term
                ));
            }
        }
    }
    Ok((index, leader.clone()))
}
