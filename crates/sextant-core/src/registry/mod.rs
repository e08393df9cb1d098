//! The registry facade: the one door through which every frontend (Consul HTTP,
//! and later etcd gRPC, DNS) writes and reads.
//!
//! Writes are proposed through Raft on the leader; a follower forwards them.
//! Reads name their consistency and are served from the local applied state
//! once it is known to be recent enough. Frontends never touch Raft directly.

mod status;
mod view;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{ChangeMembers, ServerState};
use sextant_state::{Command, Op};
use tracing::field::Empty;
use tracing::Instrument;

use crate::node::{NodeId, ServerNode};
use crate::peer::{CallError, Method, PeerClients};
use crate::peer::{
    ForwardRequest, ForwardResponse, JoinRequest, LeaveRequest, MembershipResponse,
    ReadIndexRequest, ReadIndexResponse, RemoteError, WriteOutcome,
};
use crate::raft::batcher::Batcher;
use crate::raft::quorum_ack::QuorumAck;
use crate::raft::read_rounds::ReadRounds;
use crate::raft::state_machine::SharedState;
use crate::raft::{Raft, RaftMetrics};
use crate::watch_hub::WatchHub;

pub use self::status::{Membership, RaftRole, RaftStatus};
pub use self::view::StateView;

/// How long a write may take to reach this server after the leader applied it.
const LOCAL_APPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// How fresh a read must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    /// Whatever this server has applied; works without a leader.
    Stale,
    /// As recent as the leader's applied state (Consul's default mode).
    Default,
    /// Linearizable: the leader confirms its leadership with a quorum first.
    Consistent,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("No cluster leader")]
    NoLeader,
    #[error("timed out waiting for {what}")]
    Timeout { what: &'static str },
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("the outcome of the write is unknown: {reason}")]
    Indeterminate { reason: String },
    #[error("membership change failed: {0}")]
    Membership(String),
    /// A server this request had to reach (the leader, say) could not be.
    #[error("{reason}")]
    Unavailable { reason: String },
}

/// What a read tells its client besides the data (Consul's X-Consul-* headers).
#[derive(Clone, Copy, Debug)]
pub struct QueryMeta {
    pub known_leader: bool,
    /// Milliseconds since this server last heard from the leader (0 on the leader).
    pub last_contact_ms: u64,
}

/// Timing knobs of the facade.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// How long a write or a read barrier keeps trying through elections.
    pub request_timeout: Duration,
    /// How long one forwarded call to the leader may take.
    pub forward_timeout: Duration,
    /// Raft's election timeout: a leader that has not heard from a quorum for
    /// this long may have been replaced without knowing it.
    pub election_timeout: Duration,
    /// TEST ONLY: the planted bug of the safety harness. Every read barrier
    /// passes at once, so reads are local and may be stale.
    pub unsafe_stale_reads: bool,
}

pub struct Registry {
    id: NodeId,
    node: ServerNode,
    raft: Raft,
    state: Arc<SharedState>,
    peers: PeerClients,
    config: RegistryConfig,
    started: Instant,
    /// When (ms since `started`) the leader last sent us entries or a heartbeat.
    last_leader_contact_ms: AtomicU64,
    /// Proposes this server's writes while it leads, many to an entry.
    batcher: Batcher,
    /// When a majority last acknowledged this server as leader.
    quorum_ack: Arc<QuorumAck>,
    /// Runs the quorum rounds of linearizable reads while this server
    /// leads, shared by concurrent reads.
    read_rounds: ReadRounds,
    /// Runs the ReadIndex calls of linearizable reads on this server while
    /// it follows, shared by concurrent reads.
    forwarded_rounds: ReadRounds,
}

/// The pause between attempts while a leader is being elected.
const RETRY_PAUSE: Duration = Duration::from_millis(25);

impl Registry {
    pub fn new(
        id: NodeId,
        node: ServerNode,
        raft: Raft,
        state: Arc<SharedState>,
        peers: PeerClients,
        config: RegistryConfig,
    ) -> Self {
        let batcher = Batcher::spawn(raft.clone(), config.request_timeout);
        let quorum_ack = Arc::new(QuorumAck::default());
        tokio::spawn(quorum_ack.clone().follow(raft.clone()));
        let read_rounds = ReadRounds::of_leader(raft.clone());
        let forwarded_rounds =
            ReadRounds::of_follower(raft.clone(), peers.clone(), config.forward_timeout);
        Self {
            id,
            node,
            raft,
            state,
            peers,
            config,
            started: Instant::now(),
            last_leader_contact_ms: AtomicU64::new(0),
            batcher,
            quorum_ack,
            read_rounds,
            forwarded_rounds,
        }
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn node(&self) -> &ServerNode {
        &self.node
    }

    pub(crate) fn raft(&self) -> &Raft {
        &self.raft
    }

    pub(crate) fn state(&self) -> &SharedState {
        &self.state
    }

    /// The clients for calls to other servers (the lease keeper forwards with them).
    pub(crate) fn peers(&self) -> &PeerClients {
        &self.peers
    }

    pub(crate) fn metrics(&self) -> RaftMetrics {
        self.raft.metrics().borrow().clone()
    }

    /// Resolves when Raft has stopped on a fatal error — the log could not be
    /// written or synced, say — with that error. Such a server can no longer
    /// take part in the cluster; like etcd, it should exit, so that it is
    /// restarted and recovers from what its disk holds. Never resolves while
    /// Raft runs or after a clean shutdown.
    pub async fn fatal(&self) -> String {
        let mut metrics = self.raft.metrics();
        loop {
            if let Err(fatal) = &metrics.borrow_and_update().running_state {
                return match fatal {
                    openraft::error::Fatal::Stopped => std::future::pending().await,
                    fatal => fatal.to_string(),
                };
            }
            if metrics.changed().await.is_err() {
                // Raft's core task ended without saying why: it panicked
                // (a clean shutdown says `Stopped` first, and is not awaited
                // here anyway).
                return "Raft's core task ended (it panicked; see the log above)".to_owned();
            }
        }
    }

    /// Shuts Raft down, which flushes and closes the log.
    pub async fn shutdown_raft(&self) -> Result<(), String> {
        self.raft.shutdown().await.map_err(|e| e.to_string())
    }

    /// The Raft term this server is in (cheaper than a whole [`RaftStatus`]:
    /// every etcd response header carries it).
    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// This server's Raft state as it stands.
    pub fn status(&self) -> RaftStatus {
        RaftStatus::from(&*self.raft.metrics().borrow())
    }

    /// The state as this server has applied it, without waiting for anything
    /// (what [`Consistency::Stale`] reads, and what a caller that already
    /// waited — a read barrier, `applied_here` — then looks at).
    pub fn view(&self) -> StateView<'_> {
        StateView::new(self.state.read())
    }

    /// Waits until this server's applied state satisfies `consistency`, then
    /// hands out a view of it.
    pub async fn read(&self, consistency: Consistency) -> Result<StateView<'_>, RegistryError> {
        self.read_barrier(consistency).await?;
        Ok(self.view())
    }

    /// The revision of the applied state: that of the last applied command.
    pub fn revision(&self) -> u64 {
        self.state.revision()
    }

    /// A receiver that changes whenever entries are applied, holding the
    /// applied revision.
    pub fn subscribe_revision(&self) -> tokio::sync::watch::Receiver<u64> {
        self.state.subscribe()
    }

    /// What each applied batch changed, for watchers of keys and services.
    pub fn hub(&self) -> &WatchHub {
        self.state.hub()
    }

    /// Called whenever the leader's AppendEntries reaches this server.
    pub fn note_leader_contact(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.last_leader_contact_ms.store(now, Ordering::Relaxed);
    }

    pub fn query_meta(&self) -> QueryMeta {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let last_contact_ms = if metrics.state == ServerState::Leader {
            0
        } else {
            let now = self.started.elapsed().as_millis() as u64;
            now.saturating_sub(self.last_leader_contact_ms.load(Ordering::Relaxed))
        };
        QueryMeta {
            known_leader: metrics.current_leader.is_some(),
            last_contact_ms,
        }
    }

    /// The current leader and how to reach it, as this server believes.
    pub fn leader(&self) -> Option<(NodeId, ServerNode)> {
        crate::raft::leader_of(&self.raft)
    }

    /// Whether this server believes it leads (it may have been deposed a moment ago).
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// Whether this server has applied every entry of its own log. A new
    /// leader has not, until the entries its predecessor committed are
    /// committed again: until then "not found" may be wrong.
    pub fn applied_own_log(&self) -> bool {
        let last_log_index = self.raft.metrics().borrow().last_log_index.unwrap_or(0);
        self.state.applied_index() >= last_log_index
    }

    /// Raft's election timeout: how long it may take until a new leader is
    /// elected once the old one is gone.
    pub fn election_timeout(&self) -> Duration {
        self.config.election_timeout
    }

    /// The term this server leads in, or `None` while it does not lead.
    pub fn leader_term(&self) -> Option<u64> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        (metrics.state == ServerState::Leader).then_some(metrics.current_term)
    }

    /// Whether this server leads and has applied an entry of its own term:
    /// then every entry its predecessors committed is applied here too (a
    /// new leader's first entry is a blank one of its term, committed after
    /// all of theirs). Unlike [`Registry::applied_own_log`], it stays true
    /// while this leader's own writes are in flight.
    pub fn leads_with_predecessors_applied(&self) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics.state == ServerState::Leader
            && metrics
                .last_applied
                .is_some_and(|applied| applied.leader_id.term == metrics.current_term)
    }

    /// Whether this server leads and a quorum acknowledged it within the
    /// followers' lease (half the election timeout, see
    /// `ServerConfig::raft_config`) less a tenth for clock drift, so no other
    /// leader can have been elected meanwhile.
    ///
    /// openraft keeps a leader cut off from the majority in place until it
    /// hears of a higher term; answers that only a current leader may give —
    /// lease keep-alives, session renewals, leader-consistency reads — need
    /// this instead of [`Registry::is_leader`].
    pub fn holds_leader_lease(&self) -> bool {
        let lease = self.config.election_timeout * 9 / 20;
        self.raft.metrics().borrow().state == ServerState::Leader
            && self.quorum_ack.acked_within(lease)
    }

    /// Whether this server is in touch with the majority right now: a leader
    /// a majority acknowledged lately, or a follower its leader reached
    /// lately. A server cut off from the majority must not vouch for what
    /// the majority decides without it (a TTL's deadline, say).
    pub fn in_touch_with_majority(&self) -> bool {
        if self.is_leader() {
            return self.holds_leader_lease();
        }
        let window_ms = (self.config.election_timeout * 9 / 20).as_millis() as u64;
        let last = self.last_leader_contact_ms.load(Ordering::Relaxed);
        let now = self.started.elapsed().as_millis() as u64;
        last > 0 && now.saturating_sub(last) <= window_ms
    }

    /// Proposes `op` and waits until it is committed by a majority and applied.
    pub async fn write(&self, op: Op) -> Result<WriteOutcome, RegistryError> {
        let started = Instant::now();
        let span = tracing::debug_span!(
            "registry.write",
            op = op_kind(&op),
            revision = Empty,
            duration_ms = Empty,
            error = Empty,
        );
        let outcome = self.propose(op).instrument(span.clone()).await;
        let elapsed = started.elapsed();
        crate::telemetry::observe_seconds(crate::telemetry::RAFT_WRITE_SECONDS, elapsed);
        record_outcome(&span, &outcome, elapsed);
        outcome
    }

    async fn propose(&self, op: Op) -> Result<WriteOutcome, RegistryError> {
        let command = Command::new(now_ms(), op);
        let deadline = Instant::now() + self.config.request_timeout;
        loop {
            let leader = match self.write_local(command.clone()).await {
                Ok(outcome) => return Ok(outcome),
                Err(RemoteError::ShuttingDown) => return Err(RegistryError::ShuttingDown),
                Err(RemoteError::Unknown(reason)) => {
                    return Err(RegistryError::Indeterminate { reason })
                }
                Err(RemoteError::Membership(e) | RemoteError::Busy(e)) => {
                    return Err(RegistryError::Membership(e))
                }
                Err(RemoteError::NotLeader { leader }) => leader,
            };
            if let Some((_, node)) = leader {
                let request = ForwardRequest {
                    command: command.clone(),
                };
                let answer: Result<ForwardResponse, CallError> = self
                    .peers
                    .call(
                        &node.raft_addr,
                        Method::Forward,
                        &request,
                        self.config.forward_timeout,
                    )
                    .await;
                match answer {
                    Ok(Ok(outcome)) => return Ok(outcome),
                    // Refused before it was proposed: another leader may take it.
                    Ok(Err(RemoteError::NotLeader { .. } | RemoteError::ShuttingDown)) => {}
                    // The leader proposed it, then failed or stopped before an
                    // outcome: a retry could apply the write twice.
                    Ok(Err(RemoteError::Unknown(reason))) => {
                        return Err(RegistryError::Indeterminate { reason })
                    }
                    Ok(Err(RemoteError::Membership(e) | RemoteError::Busy(e))) => {
                        return Err(RegistryError::Membership(e))
                    }
                    Err(e) if never_sent(&e) => {}
                    Err(e) => {
                        return Err(RegistryError::Indeterminate {
                            reason: e.to_string(),
                        })
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(RegistryError::NoLeader);
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// Proposes on this server if it leads; the leader side of a forwarded write.
    ///
    /// `ShuttingDown` means the command was never proposed (safe to retry
    /// elsewhere); `Unknown` means it was handed to Raft but no outcome came
    /// back in time, so it may still be committed.
    pub async fn write_local(&self, command: Command) -> ForwardResponse {
        let started = Instant::now();
        let span = tracing::debug_span!(
            "raft.propose",
            op = op_kind(&command.op),
            revision = Empty,
            duration_ms = Empty,
            error = Empty,
        );
        let answer = self.propose_here(command).instrument(span.clone()).await;
        record_outcome(&span, &answer, started.elapsed());
        answer
    }

    /// Hands `command` to the batcher, which proposes it with the other
    /// writes waiting (see `raft::batcher`).
    async fn propose_here(&self, command: Command) -> ForwardResponse {
        self.batcher.propose(command).await
    }

    /// Proposes a duty that only the current leader performs (expiring a
    /// lease or a session, compacting). Never forwarded: if leadership moved
    /// since the duty fell due, the new leader decides for itself — a stale
    /// leader's verdict must not be carried out by its successor.
    pub async fn write_as_leader(&self, op: Op) -> Result<WriteOutcome, RegistryError> {
        if !self.holds_leader_lease() {
            return Err(RegistryError::NoLeader);
        }
        match self.write_local(Command::new(now_ms(), op)).await {
            Ok(outcome) => Ok(outcome),
            Err(RemoteError::NotLeader { .. }) => Err(RegistryError::NoLeader),
            Err(RemoteError::ShuttingDown) => Err(RegistryError::ShuttingDown),
            Err(RemoteError::Unknown(reason)) => Err(RegistryError::Indeterminate { reason }),
            Err(RemoteError::Membership(e) | RemoteError::Busy(e)) => {
                Err(RegistryError::Membership(e))
            }
        }
    }

    /// The leader side of a follower's read: the index it must apply before reading.
    pub async fn read_index_local(&self, request: ReadIndexRequest) -> ReadIndexResponse {
        match request {
            ReadIndexRequest::Leader => {
                if !self.holds_leader_lease() {
                    return Err(RemoteError::NotLeader {
                        leader: self.leader(),
                    });
                }
                Ok(self.leader_log_end(&self.metrics()))
            }
            ReadIndexRequest::Quorum => {
                let read = self.read_rounds.confirm().await?;
                Ok(read.max(self.leader_log_end(&self.metrics())))
            }
        }
    }

    /// The index a leader's reads must wait for: the end of its log.
    ///
    /// openraft's read log id is the larger of the commit index and the
    /// leader's first entry of its term. A leader that restarts and resumes its
    /// old term appends no such entry, and its commit index on disk may lag
    /// what it acknowledged before the crash. Every acknowledged write is in
    /// the leader's log, so waiting until the whole log is applied is what
    /// makes the read see it; the cost is waiting for in-flight writes.
    fn leader_log_end(&self, metrics: &RaftMetrics) -> u64 {
        metrics
            .last_log_index
            .unwrap_or(0)
            .max(self.state.applied_index())
    }

    /// Waits until this server's applied state satisfies `consistency`.
    pub async fn read_barrier(&self, consistency: Consistency) -> Result<(), RegistryError> {
        if self.config.unsafe_stale_reads {
            // The planted bug (see `ServerConfig::unsafe_stale_reads`).
            return Ok(());
        }
        let request = match consistency {
            Consistency::Stale => return Ok(()),
            Consistency::Default => ReadIndexRequest::Leader,
            Consistency::Consistent => ReadIndexRequest::Quorum,
        };
        let deadline = Instant::now() + self.config.request_timeout;
        loop {
            let answer = if self.is_leader() {
                Ok(self.read_index_local(request).await)
            } else if request == ReadIndexRequest::Quorum {
                Ok(self.forwarded_rounds.confirm().await)
            } else {
                match self.leader() {
                    Some((_, node)) => self
                        .peers
                        .call(
                            &node.raft_addr,
                            Method::ReadIndex,
                            &request,
                            self.config.forward_timeout,
                        )
                        .await
                        .map_err(|_| ()),
                    None => Err(()),
                }
            };
            match answer {
                Ok(Ok(index)) => return self.wait_applied(index, deadline).await,
                Ok(Err(RemoteError::ShuttingDown)) if self.is_leader() => {
                    return Err(RegistryError::ShuttingDown)
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                return Err(RegistryError::NoLeader);
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// Waits until this server has applied the Raft log up to `index`.
    async fn wait_applied(&self, index: u64, deadline: Instant) -> Result<(), RegistryError> {
        let mut applied = self.state.subscribe_applied_index();
        let wait = async move { applied.wait_for(|applied| *applied >= index).await.is_ok() };
        match tokio::time::timeout_at(deadline.into(), wait).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(RegistryError::ShuttingDown),
            Err(_) => Err(RegistryError::Timeout {
                what: "the read index to be applied",
            }),
        }
    }

    /// Waits (boundedly) until this server has applied revision `revision`.
    ///
    /// `write` returns once the leader applied an entry; this server (a
    /// follower, perhaps) may apply it a moment later. Every API answers a
    /// write only after this, so a client reads its writes from the server
    /// it wrote to.
    pub async fn applied_here(&self, revision: u64) {
        if revision == 0 || self.state.revision() >= revision {
            return;
        }
        self.wait_past(revision - 1, Instant::now() + LOCAL_APPLY_TIMEOUT)
            .await;
    }

    /// Waits until the applied revision passes `seen` or `deadline` comes.
    /// Blocking queries call this, then re-evaluate their result.
    pub async fn wait_past(&self, seen: u64, deadline: Instant) {
        let mut revisions = self.state.subscribe();
        let wait = async move {
            let _ = revisions.wait_for(|revision| *revision > seen).await;
        };
        let _ = tokio::time::timeout_at(deadline.into(), wait).await;
    }

    /// Adds a server: as a learner until it has caught up, then as a voter.
    pub async fn add_server(&self, request: JoinRequest) -> Result<(), RegistryError> {
        self.membership_call(Method::Join, &request, || {
            self.add_server_local(request.clone())
        })
        .await
    }

    /// Removes a server from the membership.
    pub async fn remove_server(&self, id: NodeId) -> Result<(), RegistryError> {
        let request = LeaveRequest { id };
        self.membership_call(Method::Leave, &request, || self.remove_server_local(id))
            .await
    }

    async fn membership_call<Req, F, Fut>(
        &self,
        method: Method,
        request: &Req,
        local: F,
    ) -> Result<(), RegistryError>
    where
        Req: serde::Serialize,
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = MembershipResponse>,
    {
        let deadline = Instant::now() + self.config.request_timeout;
        loop {
            let answer = if self.is_leader() {
                Ok(local().await)
            } else {
                match self.leader() {
                    Some((_, node)) => self
                        .peers
                        .call(
                            &node.raft_addr,
                            method,
                            request,
                            self.config.request_timeout,
                        )
                        .await
                        .map_err(|e| e.to_string()),
                    None => Err("no leader".to_string()),
                }
            };
            match answer {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(RemoteError::Membership(e))) => return Err(RegistryError::Membership(e)),
                // Another change is still being committed: wait for it, then go.
                Ok(Err(RemoteError::Busy(e))) if Instant::now() >= deadline => {
                    return Err(RegistryError::Membership(e))
                }
                _ if Instant::now() >= deadline => return Err(RegistryError::NoLeader),
                _ => tokio::time::sleep(RETRY_PAUSE).await,
            }
        }
    }

    /// The leader side of a join.
    pub async fn add_server_local(&self, request: JoinRequest) -> MembershipResponse {
        let membership = self.metrics().membership_config.clone();
        let is_voter = membership
            .membership()
            .voter_ids()
            .any(|id| id == request.id);
        if is_voter {
            return Ok(());
        }
        tracing::info!(server = %request.node, id = request.id, "adding server as a learner");
        self.raft
            .add_learner(request.id, request.node.clone(), true)
            .await
            .map_err(membership_error)?;
        tracing::info!(server = %request.node, id = request.id, "promoting server to voter");
        self.raft
            .change_membership(
                ChangeMembers::AddVoterIds(BTreeSet::from([request.id])),
                false,
            )
            .await
            .map_err(membership_error)?;
        Ok(())
    }

    /// etcd's MemberAdd, on the leader: records a server at an address as a
    /// learner without waiting for it to catch up (it may not run yet), and
    /// unless `learner` makes it a voter too.
    pub async fn add_member(
        &self,
        request: JoinRequest,
        learner: bool,
    ) -> Result<(), RegistryError> {
        if !self.is_leader() {
            return Err(RegistryError::Membership(
                "member changes through the etcd API must be sent to the leader".into(),
            ));
        }
        let failed = |e: RemoteError| match e {
            RemoteError::Membership(e) | RemoteError::Busy(e) => RegistryError::Membership(e),
            RemoteError::ShuttingDown => RegistryError::ShuttingDown,
            RemoteError::NotLeader { .. } => RegistryError::NoLeader,
            RemoteError::Unknown(reason) => RegistryError::Indeterminate { reason },
        };
        self.raft
            .add_learner(request.id, request.node, false)
            .await
            .map_err(|e| failed(membership_error(e)))?;
        if !learner {
            self.raft
                .change_membership(
                    ChangeMembers::AddVoterIds(BTreeSet::from([request.id])),
                    false,
                )
                .await
                .map_err(|e| failed(membership_error(e)))?;
        }
        Ok(())
    }

    /// The leader side of a removal.
    pub async fn remove_server_local(&self, id: NodeId) -> MembershipResponse {
        let membership = self.metrics().membership_config.clone();
        let membership = membership.membership();
        let is_voter = membership.voter_ids().any(|v| v == id);
        let is_node = membership.get_node(&id).is_some();
        if !is_node {
            return Ok(());
        }
        tracing::info!(id, "removing server");
        let change = if is_voter {
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        self.raft
            .change_membership(change, false)
            .await
            .map_err(membership_error)?;
        Ok(())
    }
}

/// The kind of a proposed operation, as its span names it.
fn op_kind(op: &Op) -> &'static str {
    match op {
        Op::KvPut { .. } => "kv_put",
        Op::KvDelete { .. } => "kv_delete",
        Op::KvCompact { .. } => "kv_compact",
        Op::RegisterNode { .. } => "register_node",
        Op::DeregisterNode { .. } => "deregister_node",
        Op::RegisterService { .. } => "register_service",
        Op::DeregisterService { .. } => "deregister_service",
        Op::RegisterCheck { .. } => "register_check",
        Op::DeregisterCheck { .. } => "deregister_check",
        Op::UpdateCheck { .. } => "update_check",
        Op::CreateSession { .. } => "create_session",
        Op::DestroySession { .. } => "destroy_session",
        Op::LeaseGrant { .. } => "lease_grant",
        Op::LeaseRevoke { .. } => "lease_revoke",
        Op::Txn { .. } => "txn",
        Op::RestoreSnapshot { .. } => "restore_snapshot",
    }
}

/// Fills in a proposal span's revision (or error) and duration.
fn record_outcome<E: std::fmt::Display>(
    span: &tracing::Span,
    outcome: &Result<WriteOutcome, E>,
    elapsed: Duration,
) {
    if span.is_disabled() {
        return;
    }
    match outcome {
        Ok(written) => span.record("revision", written.revision),
        Err(e) => span.record("error", tracing::field::display(e)),
    };
    span.record("duration_ms", elapsed.as_secs_f64() * 1000.0);
}

fn membership_error(e: RaftError<NodeId, ClientWriteError<NodeId, ServerNode>>) -> RemoteError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => forward.into(),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            e @ ChangeMembershipError::InProgress(_),
        )) => RemoteError::Busy(e.to_string()),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            RemoteError::Membership(e.to_string())
        }
        RaftError::Fatal(_) => RemoteError::ShuttingDown,
    }
}

/// Whether a failed forward certainly never reached the leader, so retrying
/// cannot apply the write twice: only a refused connection proves that.
fn never_sent(error: &CallError) -> bool {
    match error {
        CallError::Unreachable { reason, .. } => {
            let reason = reason.to_ascii_lowercase();
            reason.contains("connection refused") || reason.contains("connect error")
        }
        _ => false,
    }
}

/// Wall-clock milliseconds, stamped into commands by the proposer.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
