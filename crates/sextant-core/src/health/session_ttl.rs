//! Session TTLs, counted in the leader's memory. A renewal moves a deadline
//! here and writes nothing; a session whose deadline passes is destroyed
//! through Raft (releasing or deleting its locks per its behavior). A new
//! leader starts every session's clock afresh, so an election never ends a
//! session.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use sextant_state::Op;
use tokio::time::Instant;

use super::Health;

#[derive(Debug, Default)]
pub struct SessionTimers {
    /// session id → (TTL, deadline).
    deadlines: HashMap<String, (Duration, Instant)>,
}

impl SessionTimers {
    /// Follows the replicated sessions: new ones get a whole TTL from `now`,
    /// ended ones are forgotten.
    pub fn sync(&mut self, sessions: impl IntoIterator<Item = (String, Duration)>, now: Instant) {
        let mut seen = HashSet::new();
        for (id, ttl) in sessions {
            self.deadlines.entry(id.clone()).or_insert((ttl, now + ttl));
            seen.insert(id);
        }
        self.deadlines.retain(|id, _| seen.contains(id));
    }

    pub fn renew(&mut self, id: &str, ttl: Duration, now: Instant) {
        self.deadlines.insert(id.to_owned(), (ttl, now + ttl));
    }

    pub fn expired(&self, now: Instant) -> Vec<String> {
        self.deadlines
            .iter()
            .filter(|(_, (_, deadline))| now >= *deadline)
            .map(|(id, _)| id.clone())
            .collect()
    }

    pub fn forget(&mut self, id: &str) {
        self.deadlines.remove(id);
    }

    pub fn clear(&mut self) {
        self.deadlines.clear();
    }
}

pub async fn run(health: Arc<Health>) {
    let mut ticker = tokio::time::interval(health.config.tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if health.registry.metrics().state != ServerState::Leader {
            health.session_timers().clear();
            continue;
        }
        let sessions: Vec<(String, Duration)> = {
            let state = health.registry.state().read();
            state
                .machine
                .sessions()
                .iter()
                .filter_map(|s| {
                    s.ttl_ms
                        .map(|ttl| (s.id.clone(), Duration::from_millis(ttl)))
                })
                .collect()
        };
        let expired = {
            let mut timers = health.session_timers();
            let now = Instant::now();
            timers.sync(sessions, now);
            timers.expired(now)
        };
        for id in expired {
            tracing::info!(session = %id, "session TTL expired; destroying it");
            match health
                .registry
                .write_as_leader(Op::DestroySession { id: id.clone() })
                .await
            {
                Ok(_) => health.session_timers().forget(&id),
                Err(e) => {
                    tracing::debug!(error = %e, "session destroy failed; retrying");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::advance;

    use super::*;

    const TTL: Duration = Duration::from_secs(10);
    const MS: Duration = Duration::from_millis(1);

    fn sessions(ids: &[&str]) -> Vec<(String, Duration)> {
        ids.iter().map(|id| ((*id).to_owned(), TTL)).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_expire_a_ttl_after_their_last_renewal() {
        let mut timers = SessionTimers::default();
        timers.sync(sessions(&["a", "b"]), Instant::now());
        advance(Duration::from_secs(5)).await;
        timers.renew("a", TTL, Instant::now());
        advance(Duration::from_secs(5) - MS).await;
        assert!(timers.expired(Instant::now()).is_empty());
        advance(MS).await;
        assert_eq!(timers.expired(Instant::now()), vec!["b".to_owned()]);
        advance(Duration::from_secs(5) - MS).await;
        assert_eq!(timers.expired(Instant::now()).len(), 1);
        advance(MS).await;
        assert_eq!(timers.expired(Instant::now()).len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn sync_keeps_running_clocks_and_forgets_ended_sessions() {
        let mut timers = SessionTimers::default();
        timers.sync(sessions(&["a"]), Instant::now());
        // A later sync does not restart the clock...
        advance(Duration::from_secs(9)).await;
        timers.sync(sessions(&["a"]), Instant::now());
        advance(Duration::from_secs(1)).await;
        assert_eq!(timers.expired(Instant::now()), vec!["a".to_owned()]);
        // ...and a session gone from the state is forgotten.
        timers.sync([], Instant::now());
        advance(Duration::from_secs(100)).await;
        assert!(timers.expired(Instant::now()).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_leader_gives_every_session_a_whole_ttl() {
        let mut timers = SessionTimers::default();
        timers.sync(sessions(&["a"]), Instant::now());
        // Leadership is lost 8 s in, and won back after a 5 s election,
        // during which the session's TTL ran out.
        advance(Duration::from_secs(8)).await;
        timers.clear();
        advance(Duration::from_secs(5)).await;
        timers.sync(sessions(&["a"]), Instant::now());
        advance(TTL - MS).await;
        assert!(timers.expired(Instant::now()).is_empty());
        advance(MS).await;
        assert_eq!(timers.expired(Instant::now()), vec!["a".to_owned()]);
    }
}
