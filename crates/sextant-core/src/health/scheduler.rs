//! Runs the checks this server owns.
//!
//! One loop owns all per-check state; probes run in their own tasks (one per
//! HTTP/TCP/gRPC check, aborted when the check goes away or moves) and send
//! results back on a bounded channel. Every decision compares the wanted
//! status with the replicated one, so a write lost in an election is simply
//! proposed again by the next result.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use sextant_state::catalog::{Check, CheckDefinition, CheckKind, CheckStatus};
use sextant_state::Op;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::ownership::{decider, CheckKey, Ownership};
use super::probe::{ProbeResult, Prober};
use super::thresholds::Counter;
use super::ttl::EXPIRED_PREFIX;
use super::{AbortOnDrop, Health};

/// Results waiting for the loop; probe tasks wait when it is full.
const RESULT_QUEUE: usize = 1024;
/// The first probe of a check comes after a random pause of at most this
/// (and at most its interval), so checks registered together do not probe
/// together, yet a new check learns its status quickly.
const MAX_FIRST_PROBE_DELAY: Duration = Duration::from_secs(2);
/// How often a reap whose write did not land is proposed again.
const REAP_RETRY: Duration = Duration::from_secs(1);

struct Report {
    key: CheckKey,
    generation: u64,
    result: ProbeResult,
}

/// What the owner keeps for one check.
struct Owned {
    definition: CheckDefinition,
    generation: u64,
    /// The probe task; `None` for TTL checks.
    _task: Option<AbortOnDrop>,
    counter: Counter,
    /// An output-only change waiting for the next flush.
    pending_output: Option<String>,
    /// Since when this server has seen the check critical (for reaping).
    critical_since: Option<Instant>,
    last_reap_proposal: Option<Instant>,
}

/// What the last resync saw.
struct Synced {
    checks_index: u64,
    ownership: Ownership,
    /// The term this server led in (and so kept the TTL checks), if any.
    term: Option<u64>,
    /// How many checks the catalog held (to notice deletions, which leave
    /// no index behind on any remaining check).
    checks: usize,
}

/// What a resync decided about one check it looked at.
enum Wanted {
    /// Not (or no longer) run here.
    No,
    Yes {
        /// `Some` only when the check is not owned yet or its definition
        /// changed, so unchanged checks are never cloned.
        new: Option<CheckDefinition>,
        /// Critical, with a `DeregisterCriticalServiceAfter`.
        reapable: bool,
    },
}

struct Scheduler {
    health: Arc<Health>,
    prober: Prober,
    writes: mpsc::Sender<(CheckKey, Op)>,
    reports: mpsc::Sender<Report>,
    owned: HashMap<CheckKey, Owned>,
    /// A check left `owned` since the TTL table was last pruned.
    disowned_since_prune: bool,
    /// The owned checks that are critical and have a
    /// `DeregisterCriticalServiceAfter`: the only ones a reap can touch.
    /// Exact after every resync, since any status change moves the checks
    /// index and so triggers one.
    reapable: HashSet<CheckKey>,
    next_generation: u64,
    synced: Option<Synced>,
    pacing: Pacing,
    /// The term in which the TTL table's clocks were started, `None` when
    /// this server did not lead: a clock from another term may be behind
    /// renewals another leader took meanwhile.
    ttl_term: Option<u64>,
}

/// A gap between ticks this many times the tick means the server did not
/// run meanwhile (stopped, or starved).
const STALL_TICKS: u32 = 5;
/// A resync walks every check while it holds the state's read lock, which
/// holds up applying writes; with a million checks the walk takes tens of
/// milliseconds. After a resync that took `d`, the next waits at least this
/// many times `d`, so resyncs take at most about a twentieth of the time
/// whatever the catalog's size. A small catalog still resyncs every tick; a
/// huge one adopts new and moved checks up to about a second late (a TTL
/// clock starts that much later: never earlier).
const RESYNC_PACING: u32 = 20;

/// When the scheduler's periodic work is due: the clock half of a tick, kept
/// apart from the work it paces.
struct Pacing {
    tick: Duration,
    flush_every: Duration,
    last_tick: Instant,
    /// No resync before this (see [`RESYNC_PACING`]).
    next_resync: Instant,
    next_flush: Instant,
}

impl Pacing {
    fn new(tick: Duration, flush_every: Duration, now: Instant) -> Self {
        Self {
            tick,
            flush_every,
            last_tick: now,
            next_resync: now,
            next_flush: now + flush_every,
        }
    }

    /// Records a tick at `now`. When the gap since the last one shows that
    /// the server did not run (see [`STALL_TICKS`]), returns the time it did
    /// not: all but one tick of the gap.
    fn ticked(&mut self, now: Instant) -> Option<Duration> {
        let gap = now.duration_since(self.last_tick);
        self.last_tick = now;
        (gap > self.tick * STALL_TICKS).then(|| gap - self.tick)
    }

    fn resync_due(&self, now: Instant) -> bool {
        now >= self.next_resync
    }

    /// Records a resync that started at `started` and took `took`: the next
    /// waits [`RESYNC_PACING`] times as long.
    fn resynced(&mut self, started: Instant, took: Duration) {
        self.next_resync = started + took * RESYNC_PACING;
    }

    /// Whether output-only changes are to be written at `now`; if so, the
    /// next flush is one interval later.
    fn flush_due(&mut self, now: Instant) -> bool {
        if now < self.next_flush {
            return false;
        }
        self.next_flush = now + self.flush_every;
        true
    }
}

pub async fn run(health: Arc<Health>, prober: Prober, writes: mpsc::Sender<(CheckKey, Op)>) {
    let (reports, mut results) = mpsc::channel(RESULT_QUEUE);
    let pacing = Pacing::new(
        health.config.tick,
        health.config.output_flush_interval,
        Instant::now(),
    );
    let mut ticker = tokio::time::interval(health.config.tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut scheduler = Scheduler {
        health,
        prober,
        writes,
        reports,
        owned: HashMap::new(),
        disowned_since_prune: false,
        reapable: HashSet::new(),
        next_generation: 0,
        synced: None,
        pacing,
        ttl_term: None,
    };
    loop {
        tokio::select! {
            Some(report) = results.recv() => scheduler.on_report(report),
            _ = ticker.tick() => scheduler.on_tick(),
        }
    }
}

impl Scheduler {
    fn on_tick(&mut self) {
        let now = Instant::now();
        self.restart_ttl_clocks_on_a_new_term(now);
        if let Some(stalled) = self.pacing.ticked(now) {
            // While this server did not run it heard no TTL updates, and its
            // view of who owns what is as old as the gap: that time must not
            // count against any TTL it tracks.
            tracing::warn!(
                ?stalled,
                "health scheduler did not run; postponing TTL deadlines"
            );
            self.health.ttl_table().postpone(stalled);
        }
        if self.pacing.resync_due(now) {
            self.resync_if_needed(now);
            self.pacing.resynced(now, now.elapsed());
        }
        self.expire_ttls(now);
        self.reap(now);
        if self.pacing.flush_due(now) {
            self.flush_outputs();
        }
    }

    /// Gives every TTL check a whole TTL from `now` when this server starts
    /// leading in a new term, and forgets the clocks when it stops: it may
    /// have led before, and another leader may have taken renewals in
    /// between, which its old deadlines know nothing of.
    fn restart_ttl_clocks_on_a_new_term(&mut self, now: Instant) {
        let term = self.health.registry.leader_term();
        if term == self.ttl_term {
            return;
        }
        self.ttl_term = term;
        let mut table = self.health.ttl_table();
        table.retain(|_| false);
        if term.is_none() {
            return;
        }
        for (key, owned) in &self.owned {
            if let CheckKind::Ttl { ttl_ms } = owned.definition.kind {
                table.ensure(key, Duration::from_millis(ttl_ms), now);
            }
        }
    }

    /// Re-reads which checks this server owns when the checks or the view
    /// changed. With the same view and no check deleted, only the checks
    /// changed since the last resync (by their modify index) are looked at;
    /// otherwise every check is, yet only new or changed definitions are
    /// cloned.
    fn resync_if_needed(&mut self, now: Instant) {
        let ownership = self.health.ownership();
        let term = self.ttl_term;
        let leads = term.is_some();
        let health = self.health.clone();
        let state = health.registry.state().read();
        let catalog = state.machine.catalog();
        let checks_index = catalog.checks_index();
        let since = match &self.synced {
            Some(synced) if synced.ownership == ownership && synced.term == term => {
                if synced.checks_index == checks_index {
                    return;
                }
                // An index that went backwards means a different history:
                // look at everything.
                (synced.checks_index < checks_index).then_some(synced)
            }
            _ => None,
        };
        let mut total = 0usize;
        let mut changed = Vec::new();
        if let Some(synced) = since {
            // Every write that changes a check (a snapshot restore included)
            // stamps it with its revision, so the checks not stamped since
            // the last resync are as they were then. A check that existed
            // then keeps its create index; if fewer such remain than there
            // were, some went, and only a full pass finds which.
            let mut survivors = 0usize;
            for check in catalog.checks() {
                total += 1;
                if check.create_index <= synced.checks_index {
                    survivors += 1;
                }
                if check.modify_index > synced.checks_index {
                    changed.push(check);
                }
            }
            if survivors != synced.checks {
                changed.clear();
            }
        }
        let full = changed.is_empty();
        let looked_at: Vec<_> = if full {
            total = 0;
            catalog.checks().inspect(|_| total += 1).collect()
        } else {
            changed
        };
        let decisions: Vec<(CheckKey, Wanted)> = looked_at
            .into_iter()
            .map(|check| {
                let key = (check.node.clone(), check.id.clone());
                let wanted = runs_here(check, &ownership, leads);
                if !wanted {
                    return (key, Wanted::No);
                }
                let same = self
                    .owned
                    .get(&key)
                    .is_some_and(|owned| owned.definition == check.definition);
                let new = (!same).then(|| check.definition.clone());
                let reapable = check.status == CheckStatus::Critical
                    && check.definition.deregister_critical_after_ms.is_some();
                (key, Wanted::Yes { new, reapable })
            })
            .collect();
        drop(state);

        let before = self.owned.len();
        if full {
            let keep: HashSet<&CheckKey> = decisions
                .iter()
                .filter(|(_, wanted)| matches!(wanted, Wanted::Yes { .. }))
                .map(|(key, _)| key)
                .collect();
            let gone: Vec<CheckKey> = self
                .owned
                .keys()
                .filter(|key| !keep.contains(key))
                .cloned()
                .collect();
            for key in gone {
                self.disown(&key);
            }
        }
        for (key, wanted) in decisions {
            match wanted {
                Wanted::No => self.disown(&key),
                Wanted::Yes { new, reapable } => {
                    if let Some(definition) = new {
                        self.disown(&key);
                        self.own(key.clone(), definition, now);
                    }
                    self.set_reapable(key, reapable);
                }
            }
        }
        // Pruning looks up every TTL entry in `owned`: measured at 150,000
        // TTL checks under registrations (a resync every tick), it was the
        // scheduler's largest cost. Only a disowned check, or an update taken
        // for a check not owned here, leaves an entry to prune.
        let mut ttl = self.health.ttl_table();
        if self.disowned_since_prune || ttl.holds_unowned() {
            ttl.retain(|key| self.owned.contains_key(key));
            self.disowned_since_prune = false;
        }
        drop(ttl);
        if before != self.owned.len() {
            tracing::debug!(owned = self.owned.len(), "checks owned by this server");
        }
        self.synced = Some(Synced {
            checks_index,
            ownership,
            term,
            checks: total,
        });
    }

    /// Stops running a check here (its probe task ends with its entry).
    fn disown(&mut self, key: &CheckKey) {
        if self.owned.remove(key).is_some() {
            self.disowned_since_prune = true;
        }
        self.reapable.remove(key);
    }

    /// Records whether an owned check may be reaped; one that stops being
    /// critical starts its critical time afresh when it turns critical again.
    fn set_reapable(&mut self, key: CheckKey, reapable: bool) {
        if reapable {
            self.reapable.insert(key);
        } else if self.reapable.remove(&key) {
            if let Some(owned) = self.owned.get_mut(&key) {
                owned.critical_since = None;
            }
        }
    }

    fn own(&mut self, key: CheckKey, definition: CheckDefinition, now: Instant) {
        self.next_generation += 1;
        let generation = self.next_generation;
        let task = match &definition.kind {
            CheckKind::Ttl { ttl_ms } => {
                self.health
                    .ttl_table()
                    .ensure(&key, Duration::from_millis(*ttl_ms), now);
                None
            }
            CheckKind::External => None,
            CheckKind::Http(_) | CheckKind::Tcp { .. } | CheckKind::Grpc { .. } => {
                Some(self.spawn_probe(key.clone(), &definition, generation))
            }
        };
        self.owned.insert(
            key,
            Owned {
                definition,
                generation,
                _task: task,
                counter: Counter::default(),
                pending_output: None,
                critical_since: None,
                last_reap_proposal: None,
            },
        );
    }

    fn spawn_probe(
        &self,
        key: CheckKey,
        definition: &CheckDefinition,
        generation: u64,
    ) -> AbortOnDrop {
        let interval = Duration::from_millis(definition.interval_ms.max(1));
        let timeout = Duration::from_millis(definition.timeout_ms.max(1));
        let target = Arc::new((self.prober.clone(), definition.kind.clone()));
        let probe = move || {
            let target = target.clone();
            async move { target.0.probe(&target.1, timeout).await }
        };
        let first_delay_max = interval.min(MAX_FIRST_PROBE_DELAY);
        let first_delay =
            Duration::from_millis(rand::rng().random_range(0..=first_delay_max.as_millis() as u64));
        AbortOnDrop(tokio::spawn(probe_every(
            first_delay,
            interval,
            probe,
            key,
            generation,
            self.reports.clone(),
        )))
    }

    fn on_report(&mut self, report: Report) {
        let Some(owned) = self.owned.get_mut(&report.key) else {
            return;
        };
        if owned.generation != report.generation {
            return;
        }
        let wanted = owned
            .counter
            .observe(&owned.definition, report.result.status);
        let (node, check_id) = &report.key;
        let Some((status, output)) = replicated(&self.health, node, check_id) else {
            return;
        };
        match wanted {
            Some(wanted) if wanted != status => {
                tracing::info!(node, check = check_id, from = %status, to = %wanted, "check status changed");
                owned.pending_output = None;
                propose(
                    &self.writes,
                    &report.key,
                    Op::UpdateCheck {
                        node: node.clone(),
                        check_id: check_id.clone(),
                        status: wanted,
                        output: report.result.output,
                    },
                );
            }
            Some(_) if report.result.output != output => {
                owned.pending_output = Some(report.result.output);
            }
            _ => {}
        }
    }

    fn expire_ttls(&mut self, now: Instant) {
        // Only a leader a majority acknowledged lately expires anything: a
        // deposed one's clock may be behind passes the new leader took.
        if !self.health.registry.holds_leader_lease() {
            return;
        }
        let expired = self.health.ttl_table().expired(now);
        for expired in expired {
            let (node, check_id) = &expired.key;
            let Some((status, output)) = replicated(&self.health, node, check_id) else {
                continue;
            };
            if status == CheckStatus::Critical && output.starts_with(EXPIRED_PREFIX) {
                continue;
            }
            tracing::info!(node, check = check_id, "TTL check expired");
            propose(
                &self.writes,
                &expired.key,
                Op::UpdateCheck {
                    node: node.clone(),
                    check_id: check_id.clone(),
                    status: CheckStatus::Critical,
                    output: expired.output,
                },
            );
        }
    }

    /// Deregisters the service of every owned check that has been critical
    /// for its `DeregisterCriticalServiceAfter`, measured from when this
    /// server first saw it critical. Only the reapable checks are looked at.
    fn reap(&mut self, now: Instant) {
        if self.reapable.is_empty() {
            return;
        }
        let state = self.health.registry.state().read();
        let catalog = state.machine.catalog();
        let mut reaps = Vec::new();
        for key in &self.reapable {
            let Some(owned) = self.owned.get_mut(key) else {
                continue;
            };
            let (node, check_id) = key;
            let Some(after) = owned.definition.deregister_critical_after_ms else {
                continue;
            };
            let check = catalog.check(node, check_id);
            if !check.is_some_and(|c| c.status == CheckStatus::Critical) {
                owned.critical_since = None;
                continue;
            }
            // Read from the catalog rather than kept per owned check: only
            // reaps need it, and the catalog has it anyway.
            let Some(service_id) = check.and_then(|c| c.service_id.as_deref()) else {
                continue;
            };
            let since = *owned.critical_since.get_or_insert(now);
            if now.duration_since(since) < Duration::from_millis(after) {
                continue;
            }
            if owned
                .last_reap_proposal
                .is_some_and(|at| now.duration_since(at) < REAP_RETRY)
            {
                continue;
            }
            owned.last_reap_proposal = Some(now);
            tracing::info!(
                node,
                service = service_id,
                check = check_id,
                "deregistering service critical for too long"
            );
            reaps.push((
                key.clone(),
                Op::DeregisterService {
                    node: node.clone(),
                    service_id: service_id.to_owned(),
                },
            ));
        }
        drop(state);
        for (check, op) in reaps {
            propose(&self.writes, &check, op);
        }
    }

    fn flush_outputs(&mut self) {
        let mut updates: Vec<(CheckKey, String)> = self
            .owned
            .iter_mut()
            .filter_map(|(key, owned)| owned.pending_output.take().map(|o| (key.clone(), o)))
            .collect();
        updates.extend(self.health.ttl_table().take_pending_outputs());
        for ((node, check_id), output) in updates {
            let Some((status, current)) = replicated(&self.health, &node, &check_id) else {
                continue;
            };
            if current != output {
                let check = (node.clone(), check_id.clone());
                propose(
                    &self.writes,
                    &check,
                    Op::UpdateCheck {
                        node,
                        check_id,
                        status,
                        output,
                    },
                );
            }
        }
    }
}

/// Whether this server runs `check` (see [`decider`]).
fn runs_here(check: &Check, ownership: &Ownership, leads: bool) -> bool {
    decider(check, ownership, leads.then_some(ownership.me)) == Some(ownership.me)
}

/// Probes one check, first after `first_delay` and then every `interval` (a
/// slow probe delays the next rather than bunching them up), and reports
/// each result as the check `key` of `generation`, until the probe has
/// nothing to report or the loop is gone.
async fn probe_every<P, F>(
    first_delay: Duration,
    interval: Duration,
    mut probe: P,
    key: CheckKey,
    generation: u64,
    reports: mpsc::Sender<Report>,
) where
    P: FnMut() -> F,
    F: Future<Output = Option<ProbeResult>>,
{
    tokio::time::sleep(first_delay).await;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(result) = probe().await else {
            return;
        };
        let report = Report {
            key: key.clone(),
            generation,
            result,
        };
        if reports.send(report).await.is_err() {
            return;
        }
    }
}

/// The check's status and output as this server has applied them.
fn replicated(health: &Health, node: &str, check_id: &str) -> Option<(CheckStatus, String)> {
    let state = health.registry.state().read();
    let check = state.machine.catalog().check(node, check_id)?;
    Some((check.status, check.output.clone()))
}

/// Queues `op`, a write about `check`, for the writer.
fn propose(writes: &mpsc::Sender<(CheckKey, Op)>, check: &CheckKey, op: Op) {
    if writes.try_send((check.clone(), op)).is_err() {
        tracing::debug!("health write queue full; the change will be proposed again");
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::{advance, interval, MissedTickBehavior};

    use super::super::ownership::check_of_kind as check;
    use super::super::ttl::TtlTable;
    use super::*;

    #[test]
    fn ttl_checks_run_on_the_leader_and_probed_checks_by_ownership() {
        let ttl = check("n1", "service:a", CheckKind::Ttl { ttl_ms: 1_000 });
        let tcp = check(
            "n1",
            "service:b",
            CheckKind::Tcp {
                address: "127.0.0.1:1".into(),
            },
        );
        let external = check("n1", "service:c", CheckKind::External);
        let one = Ownership::new(1, [1, 2, 3]);
        let two = Ownership::new(2, [1, 2, 3]);
        let three = Ownership::new(3, [1, 2, 3]);
        for leader in [1, 2, 3] {
            let runs: Vec<bool> = [&one, &two, &three]
                .iter()
                .map(|o| runs_here(&ttl, o, o.me == leader))
                .collect();
            let expected: Vec<bool> = [1, 2, 3].iter().map(|me| *me == leader).collect();
            assert_eq!(runs, expected, "a TTL check runs on the leader alone");
        }
        let probers: Vec<bool> = [&one, &two, &three]
            .iter()
            .map(|o| runs_here(&tcp, o, false))
            .collect();
        assert_eq!(
            probers.iter().filter(|r| **r).count(),
            1,
            "a probed check runs on exactly one server, leader or not"
        );
        assert!(![&one, &two, &three]
            .iter()
            .any(|o| runs_here(&external, o, true)));
    }

    const TICK: Duration = Duration::from_millis(200);
    const FLUSH: Duration = Duration::from_secs(30);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Ticks `ticks` times as the scheduler does, each resync taking `took`
    /// of the (paused) clock; returns when, from the start, resyncs ran.
    async fn resyncs(ticks: usize, took: Duration) -> Vec<Duration> {
        let t0 = Instant::now();
        let mut pacing = Pacing::new(TICK, FLUSH, t0);
        let mut ticker = interval(TICK);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut ran = Vec::new();
        for _ in 0..ticks {
            ticker.tick().await;
            let now = Instant::now();
            assert_eq!(pacing.ticked(now), None, "no stall while ticking");
            if pacing.resync_due(now) {
                ran.push(now - t0);
                advance(took).await;
                pacing.resynced(now, now.elapsed());
            }
        }
        ran
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_catalog_resyncs_every_tick() {
        let every_tick: Vec<Duration> = (0..6).map(|n| TICK * n).collect();
        assert_eq!(resyncs(6, Duration::ZERO).await, every_tick);
        // Up to a twentieth of a tick, a resync still leaves the next tick free.
        assert_eq!(resyncs(6, TICK / RESYNC_PACING).await, every_tick);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_resync_that_took_d_the_next_waits_twenty_d() {
        // 50 ms walking the catalog: the next resync a second later.
        assert_eq!(resyncs(12, ms(50)).await, vec![ms(0), ms(1000), ms(2000)]);
        let t = Instant::now();
        let mut pacing = Pacing::new(TICK, FLUSH, t);
        pacing.resynced(t, ms(30));
        assert!(!pacing.resync_due(t + ms(599)));
        assert!(pacing.resync_due(t + ms(600)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stall_postpones_ttl_deadlines_by_the_time_not_run() {
        let key: CheckKey = ("node".into(), "ttl".into());
        let t0 = Instant::now();
        let mut pacing = Pacing::new(TICK, FLUSH, t0);
        let mut table = TtlTable::default();
        table.ensure(&key, Duration::from_secs(2), t0);
        // A late tick, five ticks after the last, is no stall yet.
        advance(TICK * STALL_TICKS).await;
        assert_eq!(pacing.ticked(Instant::now()), None);
        // Then the server does not run for 5 s: 4.8 s of it do not count.
        advance(Duration::from_secs(5)).await;
        let stalled = pacing.ticked(Instant::now());
        assert_eq!(stalled, Some(ms(4800)));
        table.postpone(ms(4800));
        // Due at 2 s, the check now expires at 6.8 s, and not before.
        assert!(table.expired(Instant::now()).is_empty());
        advance(t0 + ms(6799) - Instant::now()).await;
        assert!(table.expired(Instant::now()).is_empty());
        advance(ms(1)).await;
        assert_eq!(table.expired(Instant::now()).len(), 1);
        assert_eq!(Instant::now() - t0, ms(6800));
    }

    #[tokio::test(start_paused = true)]
    async fn outputs_are_flushed_once_an_interval() {
        let t0 = Instant::now();
        let mut pacing = Pacing::new(TICK, FLUSH, t0);
        assert!(!pacing.flush_due(t0));
        assert!(!pacing.flush_due(t0 + FLUSH - ms(1)));
        advance(FLUSH + TICK).await;
        assert!(pacing.flush_due(Instant::now()));
        assert!(!pacing.flush_due(Instant::now()));
        assert!(pacing.flush_due(Instant::now() + FLUSH));
    }

    #[tokio::test(start_paused = true)]
    async fn thresholds_change_the_status_at_the_probe_that_reaches_them() {
        use CheckStatus::{Critical, Passing, Warning};
        let definition = CheckDefinition {
            interval_ms: 10_000,
            success_before_passing: 2,
            failures_before_warning: 2,
            failures_before_critical: 3,
            ..CheckDefinition::default()
        };
        let mut script = [
            Critical, Critical, Critical, Passing, Critical, Passing, Passing,
        ]
        .into_iter();
        let probe = move || {
            let next = script.next();
            async move {
                next.map(|status| ProbeResult {
                    status,
                    output: String::new(),
                })
            }
        };
        let (reports, mut results) = mpsc::channel(1);
        let t0 = Instant::now();
        tokio::spawn(probe_every(
            Duration::from_secs(1),
            Duration::from_millis(definition.interval_ms),
            probe,
            ("node".into(), "http".into()),
            1,
            reports,
        ));
        // What the scheduler does with each report: its counter decides.
        let mut counter = Counter::default();
        let mut decisions = Vec::new();
        while let Some(report) = results.recv().await {
            let at = (Instant::now() - t0).as_secs();
            if let Some(status) = counter.observe(&definition, report.result.status) {
                decisions.push((at, status));
            }
        }
        // Probes at 1, 11, 21, ... s: the second failure in a row warns, the
        // third is critical; a lone success, or a lone failure after it,
        // changes nothing; the second success in a row passes.
        assert_eq!(
            decisions,
            vec![(11, Warning), (21, Critical), (61, Passing)]
        );
    }
}
