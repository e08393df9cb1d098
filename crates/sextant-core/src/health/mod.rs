//! Health checking, run on the servers themselves.
//!
//! Tasks (all owned by the server, stopped with it):
//! - `view`: greets the voters and keeps the set that answers
//!   ([`view::ClusterView`]);
//! - `scheduler`: runs the probed checks (HTTP, TCP, gRPC) this server owns
//!   (rendezvous hashing over the voters that answer, [`ownership`]), damps
//!   flapping ([`thresholds`]); on the leader, keeps every TTL check's clock
//!   and expires them ([`ttl`]); reaps services critical for longer than
//!   their `DeregisterCriticalServiceAfter`, and batches output-only
//!   changes;
//! - `writer`: proposes the scheduler's writes one after another, so a slow
//!   election never blocks probing, through the leader, which takes a
//!   check's writes only from the server that runs it in the leader's view;
//! - `node_health` (leader only): registers every server as a catalog node
//!   with a `serfHealth` check that follows whether it answers;
//! - `session_ttl` (leader only): expires sessions whose TTL ran out.
//!
//! Only status changes are written at once; output-only changes wait for
//! the next flush; TTL passes stay in the leader's memory, like etcd lease
//! deadlines and session TTLs: one clock per TTL, whatever servers think of
//! who is alive. Nothing here holds a lock across an `.await`.

pub mod node_health;
pub mod ownership;
pub mod probe;
mod scheduler;
pub mod session_ttl;
pub mod thresholds;
pub mod ttl;
pub mod view;
pub(crate) mod writer;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sextant_state::catalog::{CheckKind, CheckStatus};
use sextant_state::Op;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use self::ownership::{CheckKey, Ownership};
use self::session_ttl::SessionTimers;
use self::ttl::TtlTable;
use self::view::ClusterView;
use crate::cluster::discovery::Discovery;
use crate::node::ServerNode;
use crate::peer::{
    BatchedCalls, CallError, Method, PeerClients, RenewSessionRequest, RenewSessionResponse,
    TtlUpdateAnswer, TtlUpdateRequest,
};
use crate::registry::{Consistency, Registry, RegistryError};

/// How long a TTL update or a session renewal passed on to another server
/// may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// The pause between tries of a TTL update while a leader is elected.
const ELECTION_RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Timing of the health subsystem.
#[derive(Clone, Debug)]
pub struct HealthConfig {
    /// How often every voter is greeted to see whether it answers.
    pub peer_probe_interval: Duration,
    pub peer_probe_timeout: Duration,
    /// Greetings in a row a voter may miss before it counts as dead: its
    /// checks move, and (on the leader) its node goes critical.
    pub peer_dead_after: u32,
    /// How often ownership, TTL deadlines and reaping are looked at.
    pub tick: Duration,
    /// How often output-only changes are written (Consul's
    /// `check_update_interval`); status changes never wait.
    pub output_flush_interval: Duration,
    /// Writes waiting for the writer task; beyond that they are dropped and
    /// proposed again by the next probe (every decision compares with the
    /// replicated state, so nothing is lost but time).
    pub write_queue: usize,
    /// TEST ONLY — a deliberately planted bug for the safety harness
    /// (`sextant-chaos --planted-bug ttl-early-expiry`): TTL checks expire
    /// half-way through the TTL their last update promised. Never set it
    /// in production.
    pub unsafe_early_ttl_expiry: bool,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            peer_probe_interval: Duration::from_secs(1),
            peer_probe_timeout: Duration::from_millis(500),
            peer_dead_after: 2,
            tick: Duration::from_millis(200),
            output_flush_interval: Duration::from_secs(30),
            write_queue: 4096,
            unsafe_early_ttl_expiry: false,
        }
    }
}

/// Why a TTL update was refused.
#[derive(Debug, thiserror::Error)]
pub enum TtlUpdateError {
    #[error("Unknown check ID {0:?}. Ensure that the check ID is passed, not the check name.")]
    UnknownCheck(String),
    #[error("CheckID {0:?} does not have associated TTL")]
    NotTtl(String),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The leader refused the update (it was deposed, or lost touch with
    /// the majority); its reason. Nothing was updated: try again.
    #[error("the leader, {leader}, refused the update: {reason}")]
    LeaderRefused { leader: String, reason: String },
    /// The leader, which keeps every TTL check's clock, could not be
    /// reached. Nothing was updated: try again.
    #[error("the leader, {leader}, cannot be reached to update check {check_id:?}; try again")]
    LeaderUnreachable { check_id: String, leader: String },
}

/// The handle the frontends hold: the cluster view, TTL updates, session renewals.
pub struct Health {
    registry: Arc<Registry>,
    view: watch::Receiver<ClusterView>,
    ttl: Mutex<TtlTable>,
    sessions: Mutex<SessionTimers>,
    /// For session renewals passed on to the leader.
    peers: PeerClients,
    /// TTL updates passed on to the leader, many to a call.
    ttl_updates: BatchedCalls<TtlUpdateRequest, TtlUpdateAnswer>,
    config: HealthConfig,
}

impl Health {
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn view(&self) -> ClusterView {
        self.view.borrow().clone()
    }

    /// Who runs which probed check, as this server sees it now (without
    /// copying the whole view: every health write on the leader asks).
    pub fn ownership(&self) -> Ownership {
        self.view.borrow().ownership()
    }

    fn ttl_table(&self) -> MutexGuard<'_, TtlTable> {
        self.ttl.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn session_timers(&self) -> MutexGuard<'_, SessionTimers> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A TTL check's `pass`/`warn`/`fail`/`update`, on the leader, which
    /// keeps every TTL check's clock. Resets the TTL in memory; writes
    /// through Raft only a status change (at once, so the caller reads it
    /// back; its revision is returned) or, batched, an output change.
    pub async fn ttl_update(
        &self,
        node: &str,
        check_id: &str,
        status: CheckStatus,
        output: &str,
    ) -> Result<Option<u64>, TtlUpdateError> {
        // Only a leader that a majority acknowledged lately may take it: a
        // deposed leader's clock is no longer the one that expires checks.
        if !self.registry.holds_leader_lease() {
            return Err(TtlUpdateError::Registry(RegistryError::NoLeader));
        }
        // A new leader applies what its predecessor committed before it
        // counts a pass: an expiry its predecessor proposed (for a clock
        // that had really run out) must not land after a pass acknowledged
        // here, undoing it.
        if !self.registry.leads_with_predecessors_applied() {
            self.registry.read_barrier(Consistency::Default).await?;
        }
        let (ttl, current_status, current_output) = {
            let state = self.registry.state().read();
            let Some(check) = state.machine.catalog().check(node, check_id) else {
                return Err(TtlUpdateError::UnknownCheck(check_id.to_owned()));
            };
            let CheckKind::Ttl { ttl_ms } = check.definition.kind else {
                return Err(TtlUpdateError::NotTtl(check_id.to_owned()));
            };
            (
                Duration::from_millis(ttl_ms),
                check.status,
                check.output.clone(),
            )
        };
        let key: CheckKey = (node.to_owned(), check_id.to_owned());
        let output = probe::truncate(output.to_owned(), probe::OUTPUT_LIMIT);
        self.ttl_table().touch(&key, ttl, &output, Instant::now());
        if status != current_status {
            let outcome = self
                .registry
                .write(Op::UpdateCheck {
                    node: node.to_owned(),
                    check_id: check_id.to_owned(),
                    status,
                    output,
                })
                .await?;
            return Ok(Some(outcome.revision));
        }
        if output != current_output {
            self.ttl_table().set_pending_output(&key, output);
        }
        Ok(None)
    }

    /// A TTL update received by any server, for every API that takes one
    /// (Consul's `/v1/agent/check/*`, Nacos beats, the native KeepAlive):
    /// taken here on the leader, or passed on once to the leader, where
    /// every TTL clock lives, with its verdict. A leader that cannot be
    /// reached is an error, never an update taken here instead: the
    /// leader's clock would not hear of it and would expire a check whose
    /// client was told it passed. A new leader gives every TTL check a whole
    /// TTL from its takeover. `Ok(Some(revision))`: the status changed at
    /// that revision.
    ///
    /// Through an election (no leader, or one that cannot take it yet) the
    /// update waits for the next leader, for up to two election timeouts:
    /// a renewal sent while the leader died must still reach its successor
    /// within the TTL. Passes are idempotent, so trying again is safe even
    /// when an unanswered call may have been taken.
    pub async fn ttl_update_routed(
        &self,
        node: &str,
        check_id: &str,
        status: CheckStatus,
        output: &str,
    ) -> Result<Option<u64>, TtlUpdateError> {
        let deadline = Instant::now() + self.registry.election_timeout() * 2;
        loop {
            let attempt = self.ttl_update_once(node, check_id, status, output).await;
            let no_leader = matches!(
                attempt,
                Err(TtlUpdateError::Registry(RegistryError::NoLeader)
                    | TtlUpdateError::LeaderUnreachable { .. }
                    | TtlUpdateError::LeaderRefused { .. })
            );
            if !no_leader || Instant::now() >= deadline {
                return attempt;
            }
            tokio::time::sleep(ELECTION_RETRY_PAUSE).await;
        }
    }

    /// One try of [`Health::ttl_update_routed`].
    async fn ttl_update_once(
        &self,
        node: &str,
        check_id: &str,
        status: CheckStatus,
        output: &str,
    ) -> Result<Option<u64>, TtlUpdateError> {
        if self.registry.is_leader() {
            return self.ttl_update(node, check_id, status, output).await;
        }
        let Some((_, leader)) = self.registry.leader() else {
            return Err(TtlUpdateError::Registry(RegistryError::NoLeader));
        };
        match self
            .forward_ttl_update(&leader, node, check_id, status, output)
            .await
        {
            Ok(verdict) => verdict,
            Err(e) => {
                tracing::debug!(leader = %leader, error = %e, "TTL update: the leader cannot be reached");
                Err(TtlUpdateError::LeaderUnreachable {
                    check_id: check_id.to_owned(),
                    leader: leader.name.clone(),
                })
            }
        }
    }

    /// Passes a TTL update on to the leader over the internal API; it takes
    /// it itself, never passing it on again. The outer `Err` means the
    /// update may not have reached the leader.
    async fn forward_ttl_update(
        &self,
        leader: &ServerNode,
        node: &str,
        check_id: &str,
        status: CheckStatus,
        output: &str,
    ) -> Result<Result<Option<u64>, TtlUpdateError>, CallError> {
        let request = TtlUpdateRequest {
            node: node.to_owned(),
            check_id: check_id.to_owned(),
            status,
            output: output.to_owned(),
            seen_revision: self.registry.revision(),
        };
        let answer = self.ttl_updates.ask(&leader.raft_addr, request).await?;
        Ok(match answer {
            TtlUpdateAnswer::Taken { revision } => Ok(revision),
            TtlUpdateAnswer::UnknownCheck => Err(TtlUpdateError::UnknownCheck(check_id.to_owned())),
            TtlUpdateAnswer::NotTtl => Err(TtlUpdateError::NotTtl(check_id.to_owned())),
            TtlUpdateAnswer::Refused { reason } => Err(TtlUpdateError::LeaderRefused {
                leader: leader.name.clone(),
                reason,
            }),
        })
    }

    /// Takes a TTL update another server passed on to this one as the
    /// leader (the internal API's `TtlUpdates`): waits until this server has
    /// applied what the passing server had, then takes it here, never
    /// passing it on again (a server that no longer leads refuses it).
    pub async fn ttl_update_passed_on(&self, request: TtlUpdateRequest) -> TtlUpdateAnswer {
        self.registry.applied_here(request.seen_revision).await;
        match self
            .ttl_update(
                &request.node,
                &request.check_id,
                request.status,
                &request.output,
            )
            .await
        {
            Ok(revision) => TtlUpdateAnswer::Taken { revision },
            Err(TtlUpdateError::UnknownCheck(_)) => TtlUpdateAnswer::UnknownCheck,
            Err(TtlUpdateError::NotTtl(_)) => TtlUpdateAnswer::NotTtl,
            Err(e) => TtlUpdateAnswer::Refused {
                reason: e.to_string(),
            },
        }
    }

    /// Restarts a session's TTL on the leader. `false` if this server does
    /// not lead.
    pub fn renew_session(&self, id: &str, ttl: Duration) -> bool {
        if !self.registry.holds_leader_lease() {
            return false;
        }
        self.session_timers().renew(id, ttl, Instant::now());
        true
    }

    /// Restarts a session's TTL on the leader, here or passed on to it over
    /// the internal API (once: the leader takes it or refuses).
    pub async fn renew_session_routed(&self, id: &str, ttl: Duration) -> Result<(), RegistryError> {
        if self.renew_session(id, ttl) {
            return Ok(());
        }
        let Some((_, leader)) = self.registry.leader() else {
            return Err(RegistryError::NoLeader);
        };
        let request = RenewSessionRequest {
            id: id.to_owned(),
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
        };
        let renewed: RenewSessionResponse = self
            .peers
            .call(
                &leader.raft_addr,
                Method::RenewSession,
                &request,
                FORWARD_TIMEOUT,
            )
            .await
            .map_err(|e| RegistryError::Unavailable {
                reason: format!("cannot reach the leader to renew: {e}"),
            })?;
        if renewed {
            Ok(())
        } else {
            Err(RegistryError::NoLeader)
        }
    }
}

/// A spawned task that is aborted when its handle is dropped, so a map of
/// them owns the tasks.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Named tasks, for the server to wait on at shutdown.
pub type Tasks = Vec<crate::tasks::Task>;

/// Starts the health tasks; each ends when `stop` turns true.
pub fn start(
    registry: Arc<Registry>,
    discovery: Arc<Discovery>,
    peers: PeerClients,
    config: HealthConfig,
    stop: watch::Receiver<bool>,
) -> Result<(Arc<Health>, Tasks), String> {
    if config.unsafe_early_ttl_expiry {
        tracing::warn!("TEST ONLY: the planted bug ttl-early-expiry is on");
    }
    let (view_tx, view_rx) = watch::channel(ClusterView::new(registry.id()));
    let prober = probe::Prober::new()?;
    let health = Arc::new(Health {
        registry: registry.clone(),
        view: view_rx,
        ttl: Mutex::new(if config.unsafe_early_ttl_expiry {
            TtlTable::with_planted_early_expiry()
        } else {
            TtlTable::default()
        }),
        sessions: Mutex::new(SessionTimers::default()),
        ttl_updates: BatchedCalls::spawn(peers.clone(), Method::TtlUpdates, FORWARD_TIMEOUT),
        peers: peers.clone(),
        config: config.clone(),
    });
    let (writes, write_rx) = tokio::sync::mpsc::channel(config.write_queue.max(1));

    let mut tasks = Vec::new();
    let mut spawn = |name: &'static str, task: futures::future::BoxFuture<'static, ()>| {
        tasks.push(crate::tasks::until_stopped(name, &stop, task));
    };
    spawn(
        "health-view",
        Box::pin(view::run(
            registry.clone(),
            discovery,
            peers,
            config.clone(),
            view_tx,
        )),
    );
    spawn(
        "health-writer",
        Box::pin(writer::run(health.clone(), write_rx)),
    );
    spawn(
        "health-scheduler",
        Box::pin(scheduler::run(health.clone(), prober, writes)),
    );
    spawn("node-health", Box::pin(node_health::run(health.clone())));
    spawn("session-ttl", Box::pin(session_ttl::run(health.clone())));
    Ok((health, tasks))
}
