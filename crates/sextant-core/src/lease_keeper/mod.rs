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

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use openraft::ServerState;
use serde::{Deserialize, Serialize};
use sextant_state::lease::LeaseId;
use sextant_state::{Op, Response};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::peer::{BatchedCalls, Method, RemoteError};
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

    /// Becomes authoritative at `now`: the countdowns start afresh, every
    /// lease (id → granted TTL in seconds) with its full TTL plus `extension`.
    fn lead(&mut self, leases: &HashMap<LeaseId, i64>, now: Instant, extension: Duration) {
        self.clear();
        self.leading = true;
        for (id, secs) in leases {
            self.set(*id, now + ttl(*secs) + extension);
        }
    }

    /// Stops being authoritative and forgets every countdown; whether this
    /// server was.
    fn stand_down(&mut self) -> bool {
        let was_leading = self.leading;
        self.leading = false;
        self.clear();
        was_leading
    }

    /// Follows the replicated leases (id → granted TTL in seconds) while
    /// leading: forgets the revoked ones, and counts a whole TTL from `now`
    /// for the ones not counted down yet.
    fn reconcile(&mut self, leases: &HashMap<LeaseId, i64>, now: Instant) {
        if !self.leading {
            return;
        }
        let gone: Vec<LeaseId> = self
            .by_id
            .keys()
            .filter(|id| !leases.contains_key(id))
            .copied()
            .collect();
        for id in gone {
            self.remove(id);
        }
        for (id, secs) in leases {
            if !self.by_id.contains_key(id) {
                self.set(*id, now + ttl(*secs));
            }
        }
    }

    /// The next lease to run out, if this server leads.
    fn next(&self) -> Option<(Instant, LeaseId)> {
        if !self.leading {
            return None;
        }
        self.queue.iter().next().copied()
    }

    /// The next lease to run out, if it has by `now`: its revoke is due.
    fn due(&self, now: Instant) -> Option<(Instant, LeaseId)> {
        self.next().filter(|(deadline, _)| *deadline <= now)
    }
}

pub struct LeaseKeeper {
    registry: Arc<Registry>,
    /// Added to every lease when this server becomes leader.
    election_timeout: Duration,
    deadlines: Mutex<Deadlines>,
    /// Carries a follower's questions to the leader.
    forwarder: BatchedCalls<KeeperRequest, KeeperResponse>,
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
            forwarder: BatchedCalls::spawn(
                registry.peers().clone(),
                Method::LeaseKeepers,
                ask_timeout(election_timeout),
            ),
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
        self.lock()
            .lead(&leases, Instant::now(), self.election_timeout);
        tracing::info!(leases = leases.len(), extended_by = ?self.election_timeout, "lease keeper took over as leader");
    }

    fn demote(&self) {
        if self.lock().stand_down() {
            tracing::info!("lease keeper stood down: no longer leader");
        }
    }

    /// Follows grants and revokes that did not pass through this keeper.
    fn reconcile(&self) {
        let leases = self.replicated_leases();
        self.lock().reconcile(&leases, Instant::now());
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
            // Not in the `if let`: its guard would live on into `expire`.
            let due = self.lock().due(Instant::now());
            if let Some((due, id)) = due {
                self.expire(id, due).await;
                continue;
            }
            let next = self.lock().next().map(|(due, _)| due);
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
    use tokio::time::advance;

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

    /// Lease 7, granted with a 10 s TTL.
    const LEASE: LeaseId = 7;
    const TTL_SECS: i64 = 10;
    const ELECTION_TIMEOUT: Duration = Duration::from_secs(2);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A server that leads from `now` on, knowing lease 7.
    fn leader_from(now: Instant) -> Deadlines {
        let mut deadlines = Deadlines::default();
        deadlines.lead(&HashMap::from([(LEASE, TTL_SECS)]), now, ELECTION_TIMEOUT);
        deadlines
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_outlives_a_leader_change_by_its_ttl_and_an_election_timeout() {
        let mut old = Deadlines::default();
        old.lead(&HashMap::new(), Instant::now(), ELECTION_TIMEOUT);
        // Granted on the old leader: due 10 s from now there.
        old.set(LEASE, Instant::now() + ttl(TTL_SECS));
        advance(Duration::from_secs(8)).await;
        // The old leader goes, and its countdown with it; the election takes
        // 5 s, during which the lease's TTL runs out. No server expires it.
        assert!(old.stand_down());
        let mut new = Deadlines::default();
        advance(Duration::from_secs(5)).await;
        assert_eq!(new.due(Instant::now()), None);
        // The new leader counts a whole TTL and an election timeout from
        // its takeover: 12 s, to the millisecond.
        let takeover = Instant::now();
        new.lead(
            &HashMap::from([(LEASE, TTL_SECS)]),
            takeover,
            ELECTION_TIMEOUT,
        );
        let expiry = takeover + Duration::from_secs(12);
        assert_eq!(new.next(), Some((expiry, LEASE)));
        advance(Duration::from_secs(12) - ms(1)).await;
        assert_eq!(new.due(Instant::now()), None);
        advance(ms(1)).await;
        assert_eq!(new.due(Instant::now()), Some((expiry, LEASE)));
        assert_eq!(Instant::now() - takeover, Duration::from_secs(12));
    }

    #[tokio::test(start_paused = true)]
    async fn a_keep_alive_after_a_takeover_counts_a_ttl_from_itself() {
        let mut deadlines = leader_from(Instant::now());
        advance(Duration::from_secs(1)).await;
        let renewed = Instant::now();
        assert_eq!(deadlines.renew(LEASE, renewed, ttl(TTL_SECS)), Ok(()));
        advance(ttl(TTL_SECS) - ms(1)).await;
        assert_eq!(deadlines.due(Instant::now()), None);
        advance(ms(1)).await;
        assert_eq!(
            deadlines.due(Instant::now()),
            Some((renewed + ttl(TTL_SECS), LEASE))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_stood_down_expires_nothing_until_it_leads_again() {
        let mut deadlines = leader_from(Instant::now());
        assert!(deadlines.stand_down());
        assert!(!deadlines.stand_down());
        // A follower ignores grants and keeps no countdown.
        deadlines.reconcile(&HashMap::from([(LEASE, TTL_SECS)]), Instant::now());
        advance(Duration::from_secs(60)).await;
        assert_eq!(deadlines.next(), None);
        // Leading again, it starts the countdown afresh.
        let back = Instant::now();
        deadlines.lead(&HashMap::from([(LEASE, TTL_SECS)]), back, ELECTION_TIMEOUT);
        assert_eq!(
            deadlines.next(),
            Some((back + Duration::from_secs(12), LEASE))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn reconciling_counts_new_grants_from_now_and_forgets_revokes() {
        let mut deadlines = leader_from(Instant::now());
        let expiry = Instant::now() + Duration::from_secs(12);
        advance(Duration::from_secs(3)).await;
        // Lease 8 was granted through a follower; lease 7 stays as counted.
        let seen = Instant::now();
        let both = HashMap::from([(LEASE, TTL_SECS), (8, 1)]);
        deadlines.reconcile(&both, seen);
        assert_eq!(deadlines.next(), Some((seen + ms(1000), 8)));
        deadlines.reconcile(&both, seen + ms(500));
        assert_eq!(deadlines.next(), Some((seen + ms(1000), 8)));
        // Lease 8 was revoked elsewhere.
        deadlines.reconcile(&HashMap::from([(LEASE, TTL_SECS)]), seen);
        assert_eq!(deadlines.next(), Some((expiry, LEASE)));
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
