//! The leader's countdown of etcd leases.
//!
//! Only grants and revokes are replicated; the deadlines live here, in the
//! leader's memory (etcd's design): a keep-alive every TTL/3 per client
//! would otherwise be a Raft write each. Followers forward keep-alives and
//! remaining-TTL questions to the leader over the internal API. When a lease
//! runs out, the leader proposes `Op::LeaseRevoke`, which deletes its keys
//! on every replica.
//!
//! When this server becomes leader it rebuilds the deadlines from the
//! replicated leases, each extended by one election timeout: the old
//! leader's countdown died with it, and no lease may expire merely because
//! an election happened.
//!
//! Lock order: `deadlines` is a leaf lock, never held across `.await`, and
//! never held while the state machine's lock is taken (reads of the state
//! copy what they need first).

mod forwarder;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use openraft::ServerState;
use serde::{Deserialize, Serialize};
use sextant_state::lease::LeaseId;
use sextant_state::{Op, Response};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use self::forwarder::Forwarder;
use crate::peer::RemoteError;
use crate::registry::{Registry, RegistryError};

/// A question for the leader's keeper.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeeperRequest {
    /// Restart the lease's countdown; answered with its granted TTL.
    KeepAlive { id: LeaseId },
    /// How many seconds the lease has left.
    Remaining { id: LeaseId },
}

/// The leader's answer: `Ok(None)` for a lease it does not know.
pub type KeeperResponse = Result<Option<i64>, RemoteError>;

/// How often, at most, the deadlines are reconciled with the replicated
/// leases (to learn of grants that reached the leader through a follower).
const RECONCILE_DELAY: Duration = Duration::from_millis(50);
/// Pause before retrying a revoke that could not be proposed.
const RETRY_DELAY: Duration = Duration::from_millis(250);

/// A lease past its deadline, whose revoke is due or in flight.
#[derive(Debug, PartialEq, Eq)]
struct RanOut;

#[derive(Default)]
struct Deadlines {
    /// Whether this server leads and the deadlines are therefore authoritative.
    leading: bool,
    by_id: HashMap<LeaseId, Instant>,
    queue: BTreeSet<(Instant, LeaseId)>,
}

impl Deadlines {
    fn set(&mut self, id: LeaseId, deadline: Instant) {
        if let Some(old) = self.by_id.insert(id, deadline) {
            self.queue.remove(&(old, id));
        }
        self.queue.insert((deadline, id));
    }

    /// Restarts the countdown of lease `id` at `now`, unless it ran out:
    /// past its deadline the lease is being revoked, and renewing it would
    /// promise the client time that the revoke in flight takes away. Then
    /// the client must wait for the revoke's outcome (as etcd's do): the
    /// lease is gone, or renewable again if the revoke failed.
    fn renew(&mut self, id: LeaseId, now: Instant, ttl: Duration) -> Result<(), RanOut> {
        if self.by_id.get(&id).is_some_and(|due| *due <= now) {
            return Err(RanOut);
        }
        self.set(id, now + ttl);
        Ok(())
    }

    fn remove(&mut self, id: LeaseId) -> Option<Instant> {
        let old = self.by_id.remove(&id)?;
        self.queue.remove(&(old, id));
        Some(old)
    }

    fn clear(&mut self) {
        self.by_id.clear();
        self.queue.clear();
    }
}

pub struct LeaseKeeper {
    registry: Arc<Registry>,
    /// Added to every lease when this server becomes leader.
    election_timeout: Duration,
    deadlines: Mutex<Deadlines>,
    /// Carries a follower's questions to the leader.
    forwarder: Forwarder,
    /// Wakes the expiry loop when an earlier deadline may have appeared.
    wake: Notify,
}

/// How long a question may take to reach a leader and be answered,
/// elections included.
fn ask_timeout(election_timeout: Duration) -> Duration {
    election_timeout.max(Duration::from_secs(1)) * 5
}

fn ttl(secs: i64) -> Duration {
    Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

impl LeaseKeeper {
    pub fn new(registry: Arc<Registry>, election_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            forwarder: Forwarder::spawn(registry.peers().clone(), ask_timeout(election_timeout)),
            registry,
            election_timeout,
            deadlines: Mutex::new(Deadlines::default()),
            wake: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Deadlines> {
        self.deadlines.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The granted TTL of a replicated lease, if it exists here.
    fn granted_ttl(&self, id: LeaseId) -> Option<i64> {
        let state = self.registry.state().read();
        state.machine.leases().get(id).map(|l| l.ttl_secs)
    }

    /// "No such lease" — unless this leader has not applied its whole log
    /// yet, when the grant may be among the entries still to apply: then ask
    /// the client to retry rather than tell it its lease is gone.
    fn unknown_lease(&self) -> KeeperResponse {
        if self.registry.applied_own_log() {
            Ok(None)
        } else {
            Err(RemoteError::NotLeader { leader: None })
        }
    }

    /// The leader side of a keep-alive or remaining-TTL question.
    pub fn answer_local(&self, request: KeeperRequest) -> KeeperResponse {
        let leading = self.lock().leading;
        // A leader cut off from the majority may already have a successor
        // that expires the lease: it must not promise the client more time.
        if !leading || !self.registry.holds_leader_lease() {
            return Err(RemoteError::NotLeader {
                leader: self.registry.leader(),
            });
        }
        match request {
            KeeperRequest::KeepAlive { id } => {
                let Some(granted) = self.granted_ttl(id) else {
                    return self.unknown_lease();
                };
                match self.lock().renew(id, Instant::now(), ttl(granted)) {
                    Ok(()) => Ok(Some(granted)),
                    Err(RanOut) => Err(RemoteError::Busy(format!(
                        "lease {id:x} expired and is being revoked"
                    ))),
                }
            }
            KeeperRequest::Remaining { id } => {
                let Some(granted) = self.granted_ttl(id) else {
                    return self.unknown_lease();
                };
                let now = Instant::now();
                let mut deadlines = self.lock();
                let deadline = match deadlines.by_id.get(&id) {
                    Some(deadline) => *deadline,
                    None => {
                        // Granted through a follower, not reconciled yet.
                        let deadline = now + ttl(granted);
                        deadlines.set(id, deadline);
                        deadline
                    }
                };
                let left = deadline.saturating_duration_since(now);
                Ok(Some(i64::try_from(left.as_secs()).unwrap_or(i64::MAX)))
            }
        }
    }

    /// Asks the leader (this server or another), retrying through an election.
    pub async fn ask(&self, request: KeeperRequest) -> Result<Option<i64>, RegistryError> {
        let deadline = Instant::now() + ask_timeout(self.election_timeout);
        loop {
            let answer = match self.registry.leader() {
                Some((id, _)) if id == self.registry.id() => Some(self.answer_local(request)),
                Some((_, node)) => self.forwarder.ask(&node.raft_addr, request).await.ok(),
                None => None,
            };
            match answer {
                Some(Ok(found)) => return Ok(found),
                Some(Err(RemoteError::ShuttingDown)) => return Err(RegistryError::ShuttingDown),
                _ if Instant::now() >= deadline => return Err(RegistryError::NoLeader),
                _ => tokio::time::sleep(Duration::from_millis(25)).await,
            }
        }
    }

    /// Starts the countdown of a lease this server just granted as leader.
    pub fn granted(&self, id: LeaseId, ttl_secs: i64) {
        let mut deadlines = self.lock();
        if deadlines.leading {
            deadlines.set(id, Instant::now() + ttl(ttl_secs));
            drop(deadlines);
            self.wake.notify_one();
        }
    }

    /// Forgets a revoked lease.
    pub fn revoked(&self, id: LeaseId) {
        self.lock().remove(id);
    }

    /// Every lease in the replicated state, with its granted TTL in seconds.
    fn replicated_leases(&self) -> HashMap<LeaseId, i64> {
        let state = self.registry.state().read();
        state
            .machine
            .leases()
            .iter()
            .map(|l| (l.id, l.ttl_secs))
            .collect()
    }

    /// Becomes authoritative: every replicated lease gets its full TTL plus
    /// one election timeout from now.
    fn promote(&self) {
        let leases = self.replicated_leases();
        let now = Instant::now();
        let mut deadlines = self.lock();
        deadlines.clear();
        deadlines.leading = true;
        for (id, secs) in &leases {
            deadlines.set(*id, now + ttl(*secs) + self.election_timeout);
        }
        tracing::info!(leases = leases.len(), extended_by = ?self.election_timeout, "lease keeper took over as leader");
    }

    fn demote(&self) {
        let mut deadlines = self.lock();
        if deadlines.leading {
            tracing::info!("lease keeper stood down: no longer leader");
        }
        deadlines.leading = false;
        deadlines.clear();
    }

    /// Follows grants and revokes that did not pass through this keeper.
    fn reconcile(&self) {
        let leases = self.replicated_leases();
        let now = Instant::now();
        let mut deadlines = self.lock();
        if !deadlines.leading {
            return;
        }
        let gone: Vec<LeaseId> = deadlines
            .by_id
            .keys()
            .filter(|id| !leases.contains_key(id))
            .copied()
            .collect();
        for id in gone {
            deadlines.remove(id);
        }
        for (id, secs) in leases {
            if !deadlines.by_id.contains_key(&id) {
                deadlines.set(id, now + ttl(secs));
            }
        }
    }

    /// The next lease to run out, if this server leads.
    fn next_deadline(&self) -> Option<(Instant, LeaseId)> {
        let deadlines = self.lock();
        if !deadlines.leading {
            return None;
        }
        deadlines.queue.iter().next().copied()
    }

    /// Proposes the revoke of an expired lease. Unless it was renewed in the
    /// meantime: then its deadline moved and it is not due any more.
    async fn expire(&self, id: LeaseId, due: Instant) {
        {
            let deadlines = self.lock();
            if deadlines.by_id.get(&id) != Some(&due) {
                return;
            }
        }
        match self.registry.write_as_leader(Op::LeaseRevoke { id }).await {
            Ok(outcome) => {
                if matches!(outcome.response, Response::Done) {
                    tracing::info!(lease = id, "lease expired and was revoked");
                }
                let mut deadlines = self.lock();
                if deadlines.by_id.get(&id) == Some(&due) {
                    deadlines.remove(id);
                }
            }
            Err(e) => {
                tracing::warn!(lease = id, error = %e, "could not revoke an expired lease; retrying");
                let mut deadlines = self.lock();
                if deadlines.by_id.get(&id) == Some(&due) {
                    deadlines.set(id, Instant::now() + RETRY_DELAY);
                }
            }
        }
    }

    /// Runs until `stop`: follows leadership, reconciles with the replicated
    /// leases, and revokes leases as they run out.
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let mut metrics = self.registry.raft().metrics();
        let mut revisions = self.registry.state().subscribe();
        let mut was_leader = false;
        let mut reconcile_at: Option<Instant> = None;
        loop {
            let is_leader = metrics.borrow_and_update().state == ServerState::Leader;
            if is_leader != was_leader {
                if is_leader {
                    self.promote();
                } else {
                    self.demote();
                }
                was_leader = is_leader;
            }
            if reconcile_at.is_some_and(|at| at <= Instant::now()) {
                reconcile_at = None;
                self.reconcile();
            }
            if let Some((due, id)) = self.next_deadline() {
                if due <= Instant::now() {
                    self.expire(id, due).await;
                    continue;
                }
            }
            let next = self.next_deadline().map(|(due, _)| due);
            let wake_at = match (next, reconcile_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let sleep = async {
                match wake_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = crate::tasks::stopped(stop.clone()) => return,
                changed = metrics.changed() => if changed.is_err() { return },
                changed = revisions.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if was_leader && reconcile_at.is_none() {
                        reconcile_at = Some(Instant::now() + RECONCILE_DELAY);
                    }
                }
                _ = self.wake.notified() => {}
                _ = sleep => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_past_its_deadline_is_not_renewed() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(3);
        let mut deadlines = Deadlines::default();
        deadlines.set(7, t0 + ttl);
        assert_eq!(deadlines.renew(7, t0 + Duration::from_secs(2), ttl), Ok(()));
        // Due at t0 + 5 s: from then on its revoke may be in flight.
        let due = t0 + Duration::from_secs(5);
        assert_eq!(deadlines.renew(7, due, ttl), Err(RanOut));
        assert_eq!(deadlines.by_id.get(&7), Some(&due));
        // A revoke that failed leaves a new deadline: renewable again.
        deadlines.set(7, due + Duration::from_millis(250));
        assert_eq!(
            deadlines.renew(7, due + Duration::from_millis(100), ttl),
            Ok(())
        );
    }

    #[test]
    fn a_lease_not_counted_down_here_yet_is_renewed() {
        let t0 = Instant::now();
        let mut deadlines = Deadlines::default();
        assert_eq!(deadlines.renew(9, t0, Duration::from_secs(1)), Ok(()));
        assert_eq!(
            deadlines.by_id.get(&9),
            Some(&(t0 + Duration::from_secs(1)))
        );
    }
}
