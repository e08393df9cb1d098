//! Consul sessions: who holds which KV locks, and what ends that.
//!
//! A session is tied to a node and to checks on that node. It ends when it is
//! destroyed, when its node is deregistered, or when one of its checks fails
//! or disappears; the locks it holds are then released or their keys deleted,
//! per its behavior. The TTL countdown is kept by the leader, which proposes
//! the destroy; only the TTL itself is replicated.
//!
//! The store keeps indexes by node, by check and of held keys so that each of
//! those endings touches only what it must, never a scan of all sessions or
//! all keys.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// A session id; the proposer picks a UUID.
pub type SessionId = String;

/// What happens to a session's locks when it ends.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SessionBehavior {
    /// The locks are released; the keys stay.
    #[default]
    Release,
    /// The locked keys are deleted.
    Delete,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Session {
    pub id: SessionId,
    pub name: String,
    pub node: String,
    /// Consul's `Checks`: ids of checks on `node` whose failure ends the session.
    pub checks: Vec<String>,
    /// Consul's `NodeChecks`: same role, for node-level checks.
    pub node_checks: Vec<String>,
    /// Consul's `ServiceChecks`: same role, for checks of services on `node`.
    pub service_checks: Vec<String>,
    /// How long a lock released by this session's end stays unacquirable, so
    /// that the old holder notices it lost the lock before someone else acts.
    pub lock_delay_ms: u64,
    pub behavior: SessionBehavior,
    /// Kept for reads and for the leader's countdown; expiry is proposed as a destroy.
    pub ttl_ms: Option<u64>,
    pub create_index: u64,
    pub modify_index: u64,
}

impl Session {
    /// Every check the session depends on, without duplicates.
    pub fn all_checks(&self) -> BTreeSet<&str> {
        self.checks
            .iter()
            .chain(&self.node_checks)
            .chain(&self.service_checks)
            .map(String::as_str)
            .collect()
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct SessionStore {
    sessions: BTreeMap<SessionId, Session>,
    /// node → its sessions, for node deregistration.
    by_node: BTreeMap<String, BTreeSet<SessionId>>,
    /// (node, check id) → sessions depending on it, for a failing or removed check.
    by_check: BTreeMap<(String, String), BTreeSet<SessionId>>,
    /// session → keys whose lock it holds, for its end.
    held: BTreeMap<SessionId, BTreeSet<Vec<u8>>>,
}

impl SessionStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, id: &str) -> Option<&Session> {
        self.sessions.get(id)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.sessions.contains_key(id)
    }

    /// Every session, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// The sessions of one node (Consul's `/v1/session/node/:node`).
    pub fn of_node(&self, node: &str) -> impl Iterator<Item = &Session> {
        self.by_node
            .get(node)
            .into_iter()
            .flatten()
            .filter_map(|id| self.sessions.get(id))
    }

    /// The keys whose lock the session holds, sorted.
    pub fn held_keys(&self, id: &str) -> impl Iterator<Item = &[u8]> {
        self.held.get(id).into_iter().flatten().map(Vec::as_slice)
    }

    pub(crate) fn ids_of_node(&self, node: &str) -> Vec<SessionId> {
        self.by_node
            .get(node)
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn ids_depending_on(&self, node: &str, check_id: &str) -> Vec<SessionId> {
        self.by_check
            .get(&(node.to_owned(), check_id.to_owned()))
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Brings every index above `revision` down to it: a restored snapshot
    /// may come from a cluster further along than this one.
    pub(crate) fn clamp_indexes(&mut self, revision: u64) {
        for session in self.sessions.values_mut() {
            session.create_index = session.create_index.min(revision);
            session.modify_index = session.modify_index.min(revision);
        }
    }

    /// Adds a session that the caller has validated and stamped.
    pub(crate) fn insert(&mut self, session: Session) {
        let id = session.id.clone();
        self.by_node
            .entry(session.node.clone())
            .or_default()
            .insert(id.clone());
        for check in session.all_checks() {
            self.by_check
                .entry((session.node.clone(), check.to_owned()))
                .or_default()
                .insert(id.clone());
        }
        self.sessions.insert(id, session);
    }

    /// Removes a session from every index. Its held keys must have been let
    /// go of first; any left are forgotten.
    pub(crate) fn remove(&mut self, id: &str) -> Option<Session> {
        let session = self.sessions.remove(id)?;
        remove_from(&mut self.by_node, &session.node, id);
        for check in session.all_checks() {
            remove_from(
                &mut self.by_check,
                &(session.node.clone(), check.to_owned()),
                id,
            );
        }
        self.held.remove(id);
        Some(session)
    }

    pub(crate) fn hold_key(&mut self, id: &str, key: &[u8]) {
        if self.sessions.contains_key(id) {
            self.held
                .entry(id.to_owned())
                .or_default()
                .insert(key.to_vec());
        }
    }

    pub(crate) fn release_key(&mut self, id: &str, key: &[u8]) {
        if let Some(keys) = self.held.get_mut(id) {
            keys.remove(key);
            if keys.is_empty() {
                self.held.remove(id);
            }
        }
    }

    /// The raw indexes, for the invariant check.
    pub(crate) fn indexes(&self) -> SessionIndexes<'_> {
        SessionIndexes {
            by_node: &self.by_node,
            by_check: &self.by_check,
            held: &self.held,
        }
    }
}

pub(crate) struct SessionIndexes<'a> {
    pub by_node: &'a BTreeMap<String, BTreeSet<SessionId>>,
    pub by_check: &'a BTreeMap<(String, String), BTreeSet<SessionId>>,
    pub held: &'a BTreeMap<SessionId, BTreeSet<Vec<u8>>>,
}

/// Removes `id` from the set at `key`, dropping the set when it empties so
/// that equal states always have equal indexes (and equal snapshots).
fn remove_from<K: Ord>(index: &mut BTreeMap<K, BTreeSet<SessionId>>, key: &K, id: &str) {
    if let Some(ids) = index.get_mut(key) {
        ids.remove(id);
        if ids.is_empty() {
            index.remove(key);
        }
    }
}
