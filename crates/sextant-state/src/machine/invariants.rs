//! What must hold across the stores after any sequence of commands: every
//! index agrees with what it indexes, and nothing refers to something gone.
//! Checked on every decoded snapshot and after every step of the property
//! tests; a violation names the first thing found wrong.

use std::collections::{BTreeMap, BTreeSet};

use super::StateMachine;
use crate::session::SessionId;

impl StateMachine {
    /// Checks every invariant of the state; the error says which one broke.
    /// Visits the whole state.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.kv.revision() != self.revision {
            return Err(format!(
                "the key space is at revision {}, the machine at {}",
                self.kv.revision(),
                self.revision
            ));
        }
        self.kv.check_invariants()?;
        self.catalog.check_invariants(self.revision)?;
        self.check_keys_against_owners()?;
        self.check_owners_against_keys()?;
        self.check_sessions()
    }

    /// Every live key's lease and session exist and list the key.
    fn check_keys_against_owners(&self) -> Result<(), String> {
        for kv in self.kv.list_prefix(b"") {
            if kv.mod_revision > self.revision {
                return Err(format!("key {:?} was written in the future", kv.key));
            }
            if let Some(id) = kv.lease {
                if !self
                    .leases
                    .get(id)
                    .is_some_and(|l| l.keys.contains(&kv.key))
                {
                    return Err(format!("key {:?} is not listed by its lease {id}", kv.key));
                }
            }
            if let Some(id) = &kv.session {
                if !self.sessions.held_keys(id).any(|k| k == kv.key.as_slice()) {
                    return Err(format!(
                        "key {:?} is not listed by its session {id:?}",
                        kv.key
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every key a lease or session lists is live and carries it.
    fn check_owners_against_keys(&self) -> Result<(), String> {
        for lease in self.leases.iter() {
            for key in &lease.keys {
                if self.kv.get(key).and_then(|kv| kv.lease) != Some(lease.id) {
                    return Err(format!(
                        "lease {} lists key {key:?}, which is not on it",
                        lease.id
                    ));
                }
            }
        }
        for (id, keys) in self.sessions.indexes().held {
            if !self.sessions.contains(id) {
                return Err(format!("unknown session {id:?} holds keys"));
            }
            for key in keys {
                if self.kv.get(key).and_then(|kv| kv.session.as_ref()) != Some(id) {
                    return Err(format!(
                        "session {id:?} lists key {key:?}, which it does not hold"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every session stands on a registered node and healthy, existing
    /// checks, and the session indexes say exactly that.
    fn check_sessions(&self) -> Result<(), String> {
        let mut by_node: BTreeMap<String, BTreeSet<SessionId>> = BTreeMap::new();
        let mut by_check: BTreeMap<(String, String), BTreeSet<SessionId>> = BTreeMap::new();
        for session in self.sessions.iter() {
            if self.catalog.node(&session.node).is_none() {
                return Err(format!(
                    "session {:?} is on unknown node {:?}",
                    session.id, session.node
                ));
            }
            by_node
                .entry(session.node.clone())
                .or_default()
                .insert(session.id.clone());
            for check_id in session.all_checks() {
                match self.catalog.check(&session.node, check_id) {
                    Some(check) if !check.status.is_failing() => {}
                    _ => {
                        return Err(format!(
                            "session {:?} outlived its check {check_id:?}",
                            session.id
                        ))
                    }
                }
                by_check
                    .entry((session.node.clone(), check_id.to_owned()))
                    .or_default()
                    .insert(session.id.clone());
            }
        }
        let indexes = self.sessions.indexes();
        if *indexes.by_node != by_node || *indexes.by_check != by_check {
            return Err("the session indexes do not match the sessions".into());
        }
        if indexes.held.values().any(BTreeSet::is_empty) {
            return Err("a session's held-key set is empty".into());
        }
        Ok(())
    }
}
