//! TTL checks, kept in the memory of the server that owns each one.
//!
//! A `pass`/`warn`/`fail` only moves a deadline here; it becomes a Raft
//! write only when the check's status changes (at once) or its output does
//! (batched with the other output-only changes). A check that enters the
//! table — because it was just registered or because this server just took
//! it over — gets a whole TTL from that moment, so a change of owner (or of
//! leader) never makes a check expire.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::ownership::CheckKey;

/// Consul's output for an expired TTL check starts with this.
pub const EXPIRED_PREFIX: &str = "TTL expired (last output before timeout follows): ";

/// How often an expiry whose write did not land is proposed again.
const EXPIRY_RETRY: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
struct Entry {
    ttl: Duration,
    deadline: Instant,
    /// The output of the last update, quoted when the check expires.
    last_output: String,
    /// An output-only change not written yet.
    pending_output: Option<String>,
    last_expiry_proposal: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct TtlTable {
    entries: HashMap<CheckKey, Entry>,
    /// An update added a check the scheduler did not (its owner was
    /// unreachable, or this server is not its owner yet): the next resync
    /// must prune.
    unowned_added: bool,
    /// TEST ONLY: the planted bug `sextant-chaos --planted-bug
    /// ttl-early-expiry` must catch. Every check expires half-way through
    /// the TTL its last update promised.
    planted_early_expiry: bool,
}

/// An expired check and the output to record for it.
#[derive(Debug, PartialEq, Eq)]
pub struct Expired {
    pub key: CheckKey,
    pub output: String,
}

impl TtlTable {
    /// A table with the planted bug of the safety harness (see
    /// `HealthConfig::unsafe_early_ttl_expiry`). Never in production.
    pub fn with_planted_early_expiry() -> Self {
        Self {
            planted_early_expiry: true,
            ..Self::default()
        }
    }

    /// How long a check lives after an update promising `ttl`.
    fn lifetime(&self, ttl: Duration) -> Duration {
        if self.planted_early_expiry {
            ttl / 2
        } else {
            ttl
        }
    }

    /// Starts tracking a check (a whole TTL from `now`), or follows a new TTL.
    pub fn ensure(&mut self, key: &CheckKey, ttl: Duration, now: Instant) {
        let lifetime = self.lifetime(ttl);
        match self.entries.get_mut(key) {
            Some(entry) if entry.ttl == ttl => {}
            Some(entry) => {
                entry.ttl = ttl;
                entry.deadline = now + lifetime;
            }
            None => {
                self.entries.insert(
                    key.clone(),
                    Entry {
                        ttl,
                        deadline: now + lifetime,
                        last_output: String::new(),
                        pending_output: None,
                        last_expiry_proposal: None,
                    },
                );
            }
        }
    }

    /// Records an update: a new deadline and the output to quote on expiry.
    pub fn touch(&mut self, key: &CheckKey, ttl: Duration, output: &str, now: Instant) {
        self.unowned_added |= !self.entries.contains_key(key);
        self.ensure(key, ttl, now);
        let lifetime = self.lifetime(ttl);
        if let Some(entry) = self.entries.get_mut(key) {
            entry.deadline = now + lifetime;
            entry.last_output = output.to_owned();
            entry.last_expiry_proposal = None;
        }
    }

    /// Moves every deadline `by` later: time the server did not run.
    pub fn postpone(&mut self, by: Duration) {
        for entry in self.entries.values_mut() {
            entry.deadline += by;
        }
    }

    /// Keeps an output-only change for the next batched write.
    pub fn set_pending_output(&mut self, key: &CheckKey, output: String) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.pending_output = Some(output);
        }
    }

    /// The output-only changes waiting, taken out of the table.
    pub fn take_pending_outputs(&mut self) -> Vec<(CheckKey, String)> {
        self.entries
            .iter_mut()
            .filter_map(|(key, entry)| entry.pending_output.take().map(|o| (key.clone(), o)))
            .collect()
    }

    /// Forgets every check `keep` refuses (deregistered, or now owned elsewhere).
    pub fn retain(&mut self, keep: impl Fn(&CheckKey) -> bool) {
        self.entries.retain(|key, _| keep(key));
        self.unowned_added = false;
    }

    /// Whether an update added a check since the last `retain`.
    pub fn holds_unowned(&self) -> bool {
        self.unowned_added
    }

    pub fn contains(&self, key: &CheckKey) -> bool {
        self.entries.contains_key(key)
    }

    /// The checks past their deadline whose expiry should be proposed now:
    /// once, then again every second until an update arrives (a proposal can
    /// be lost in an election).
    pub fn expired(&mut self, now: Instant) -> Vec<Expired> {
        let mut out = Vec::new();
        for (key, entry) in &mut self.entries {
            if now < entry.deadline {
                continue;
            }
            if entry
                .last_expiry_proposal
                .is_some_and(|at| now.duration_since(at) < EXPIRY_RETRY)
            {
                continue;
            }
            entry.last_expiry_proposal = Some(now);
            out.push(Expired {
                key: key.clone(),
                output: format!("{EXPIRED_PREFIX}{}", entry.last_output),
            });
        }
        out
    }

    /// Whether the check's deadline has passed (its expiry is the truth).
    pub fn is_expired(&self, key: &CheckKey, now: Instant) -> bool {
        self.entries.get(key).is_some_and(|e| now >= e.deadline)
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::advance;

    use super::*;

    fn key(id: &str) -> CheckKey {
        ("node".into(), id.into())
    }

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test(start_paused = true)]
    async fn the_planted_bug_expires_a_check_half_way() {
        let ttl = Duration::from_secs(2);
        let mut table = TtlTable::with_planted_early_expiry();
        table.touch(&key("a"), ttl, "", Instant::now());
        advance(ttl / 2 - MS).await;
        assert!(!table.is_expired(&key("a"), Instant::now()));
        advance(MS).await;
        assert!(table.is_expired(&key("a"), Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_expires_exactly_a_ttl_after_its_last_update() {
        let ttl = Duration::from_secs(2);
        let mut table = TtlTable::default();
        table.ensure(&key("a"), ttl, Instant::now());
        advance(Duration::from_secs(1)).await;
        table.touch(&key("a"), ttl, "fresh", Instant::now());
        advance(ttl - MS).await;
        assert!(table.expired(Instant::now()).is_empty());
        assert!(!table.is_expired(&key("a"), Instant::now()));
        advance(MS).await;
        assert_eq!(
            table.expired(Instant::now()),
            vec![Expired {
                key: key("a"),
                output: format!("{EXPIRED_PREFIX}fresh")
            }]
        );
    }

    #[test]
    fn an_expiry_is_proposed_again_only_after_a_pause() {
        let t0 = Instant::now();
        let mut table = TtlTable::default();
        table.ensure(&key("a"), Duration::from_secs(1), t0);
        assert_eq!(table.expired(t0 + Duration::from_secs(1)).len(), 1);
        assert!(table.expired(t0 + Duration::from_millis(1500)).is_empty());
        assert_eq!(table.expired(t0 + Duration::from_secs(2)).len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_taken_over_gets_a_whole_ttl() {
        let ttl = Duration::from_secs(10);
        // Registered an hour ago and last updated on its old owner, but only
        // now owned here: no instant expiry.
        advance(Duration::from_secs(3600)).await;
        let mut table = TtlTable::default();
        table.ensure(&key("a"), ttl, Instant::now());
        advance(Duration::from_secs(5)).await;
        // A later resync of the same definition does not restart the clock.
        table.ensure(&key("a"), ttl, Instant::now());
        advance(Duration::from_secs(5) - MS).await;
        assert!(!table.is_expired(&key("a"), Instant::now()));
        advance(MS).await;
        assert!(table.is_expired(&key("a"), Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn time_the_server_did_not_run_does_not_count() {
        let mut table = TtlTable::default();
        table.ensure(&key("a"), Duration::from_secs(2), Instant::now());
        advance(Duration::from_secs(3)).await;
        table.postpone(Duration::from_secs(3));
        advance(Duration::from_secs(2) - MS).await;
        assert!(!table.is_expired(&key("a"), Instant::now()));
        advance(MS).await;
        assert!(table.is_expired(&key("a"), Instant::now()));
    }

    #[test]
    fn pending_outputs_are_taken_once() {
        let t0 = Instant::now();
        let mut table = TtlTable::default();
        table.ensure(&key("a"), Duration::from_secs(10), t0);
        table.set_pending_output(&key("a"), "x".into());
        assert_eq!(table.take_pending_outputs(), vec![(key("a"), "x".into())]);
        assert!(table.take_pending_outputs().is_empty());
    }

    #[test]
    fn retain_forgets_the_rest() {
        let t0 = Instant::now();
        let mut table = TtlTable::default();
        table.ensure(&key("a"), Duration::from_secs(1), t0);
        table.ensure(&key("b"), Duration::from_secs(1), t0);
        table.retain(|k| *k == key("b"));
        assert!(!table.contains(&key("a")));
        assert!(table.contains(&key("b")));
    }

    #[test]
    fn only_an_update_for_a_check_not_added_by_the_owner_asks_for_a_prune() {
        let t0 = Instant::now();
        let mut table = TtlTable::default();
        table.ensure(&key("a"), Duration::from_secs(1), t0);
        table.touch(&key("a"), Duration::from_secs(1), "ok", t0);
        assert!(!table.holds_unowned());
        table.touch(&key("b"), Duration::from_secs(1), "ok", t0);
        assert!(table.holds_unowned());
        table.retain(|k| *k == key("a"));
        assert!(!table.holds_unowned());
    }
}
