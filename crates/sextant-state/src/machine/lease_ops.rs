//! Applying lease commands.

use super::{Effects, StateMachine};
use crate::command::Response;
use crate::lease::LeaseId;
use crate::ApplyError;

impl StateMachine {
    pub(super) fn lease_grant(&mut self, id: LeaseId, ttl_secs: i64) -> Response {
        match self.leases.grant(id, ttl_secs, self.revision) {
            Ok(()) => Response::Done,
            Err(e) => Response::Rejected(e),
        }
    }

    /// Revokes a lease, deleting its keys at this revision like any delete
    /// (watchers see DELETE events).
    pub(super) fn lease_revoke(&mut self, id: LeaseId, fx: &mut Effects) -> Response {
        let Some(lease) = self.leases.get(id) else {
            return Response::Rejected(ApplyError::UnknownLease { id });
        };
        let keys: Vec<Vec<u8>> = lease.keys.iter().cloned().collect();
        let revision = self.revision;
        self.write_kv(fx, |kv, events| {
            for key in &keys {
                kv.delete(key, revision, events);
            }
        });
        self.leases.remove(id);
        Response::Done
    }
}
