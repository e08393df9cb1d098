//! etcd leases as replicated state: which leases exist and which keys each
//! one carries.
//!
//! Only grant and revoke are replicated. Keep-alives and the expiry countdown
//! live in the leader's memory (etcd's design): a keep-alive is far too
//! frequent to be a Raft write, and the leader proposes a revoke when a lease
//! runs out.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ApplyError;

/// An etcd lease id, chosen by the proposer. 0 means "no lease" on the wire,
/// so it is never granted.
pub type LeaseId = i64;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub id: LeaseId,
    /// The TTL granted, in seconds, as the leader's lease keeper counts it.
    pub ttl_secs: i64,
    pub granted_revision: u64,
    /// The keys whose current version is attached to this lease: what a
    /// revoke deletes, without scanning the key space.
    pub keys: BTreeSet<Vec<u8>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct LeaseStore {
    leases: BTreeMap<LeaseId, Lease>,
}

impl LeaseStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, id: LeaseId) -> Option<&Lease> {
        self.leases.get(&id)
    }

    pub fn contains(&self, id: LeaseId) -> bool {
        self.leases.contains_key(&id)
    }

    /// Every lease, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.leases.values()
    }

    pub fn len(&self) -> usize {
        self.leases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }

    /// Grants a lease. Id 0 is refused as etcd does: it means "no lease".
    pub(crate) fn grant(
        &mut self,
        id: LeaseId,
        ttl_secs: i64,
        revision: u64,
    ) -> Result<(), ApplyError> {
        if id == 0 {
            return Err(ApplyError::UnknownLease { id });
        }
        if self.leases.contains_key(&id) {
            return Err(ApplyError::LeaseExists { id });
        }
        self.leases.insert(
            id,
            Lease {
                id,
                ttl_secs,
                granted_revision: revision,
                keys: BTreeSet::new(),
            },
        );
        Ok(())
    }

    /// Brings every grant revision above `revision` down to it: a restored
    /// snapshot may come from a cluster further along than this one.
    pub(crate) fn clamp_revisions(&mut self, revision: u64) {
        for lease in self.leases.values_mut() {
            lease.granted_revision = lease.granted_revision.min(revision);
        }
    }

    pub(crate) fn remove(&mut self, id: LeaseId) -> Option<Lease> {
        self.leases.remove(&id)
    }

    /// Records that `key`'s current version carries the lease.
    pub(crate) fn attach(&mut self, id: LeaseId, key: &[u8]) {
        if let Some(lease) = self.leases.get_mut(&id) {
            lease.keys.insert(key.to_vec());
        }
    }

    /// Records that `key` no longer carries the lease (rewritten or deleted).
    pub(crate) fn detach(&mut self, id: LeaseId, key: &[u8]) {
        if let Some(lease) = self.leases.get_mut(&id) {
            lease.keys.remove(key);
        }
    }
}
