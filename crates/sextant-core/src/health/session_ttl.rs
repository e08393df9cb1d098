//! Session TTLs, counted in the leader's memory. A renewal moves a deadline
//! here and writes nothing; a session whose deadline passes is destroyed
//! through Raft (releasing or deleting its locks per its behavior). A new
//! leader starts every session's clock afresh, so an election never ends a
//! session.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::ServerState;
use sextant_state::Op;

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
    use super::*;

    #[test]
    fn sessions_expire_unless_renewed() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        let mut timers = SessionTimers::default();
        timers.sync([("a".to_owned(), ttl), ("b".to_owned(), ttl)], t0);
        timers.renew("a", ttl, t0 + Duration::from_secs(5));
        assert_eq!(
            timers.expired(t0 + Duration::from_secs(10)),
            vec!["b".to_owned()]
        );
        assert!(timers.expired(t0 + Duration::from_secs(14)).len() == 1);
    }

    #[test]
    fn sync_keeps_running_clocks_and_forgets_ended_sessions() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        let mut timers = SessionTimers::default();
        timers.sync([("a".to_owned(), ttl)], t0);
        // A later sync does not restart the clock...
        timers.sync([("a".to_owned(), ttl)], t0 + Duration::from_secs(9));
        assert_eq!(
            timers.expired(t0 + Duration::from_secs(10)),
            vec!["a".to_owned()]
        );
        // ...and a session gone from the state is forgotten.
        timers.sync([], t0);
        assert!(timers.expired(t0 + Duration::from_secs(100)).is_empty());
    }
}
