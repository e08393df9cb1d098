//! Applying a restore: the state of a snapshot replaces the current one, as
//! of this entry's revision.
//!
//! What continues from the current state rather than the snapshot: the
//! revision (the entry's own, so it never goes backwards), the key space's
//! history (the snapshot's keys are written over it, see `KvStore::restore_from`),
//! and the cluster id (a restore does not make another cluster).
//! Sessions and leases come from the snapshot; their TTL clocks are not
//! replicated state, so the leader starts a full TTL for each one it has not
//! seen before.

use super::{Effects, StateMachine};
use crate::command::Response;
use crate::ApplyError;

impl StateMachine {
    pub(super) fn restore_snapshot(&mut self, bytes: &[u8], fx: &mut Effects) -> Response {
        let saved = match StateMachine::decode_snapshot(bytes) {
            Ok(saved) => saved,
            Err(e) => {
                return Response::Rejected(ApplyError::InvalidSnapshot {
                    reason: error_chain(&e),
                })
            }
        };
        let revision = self.revision;
        let StateMachine {
            kv,
            catalog,
            mut sessions,
            mut leases,
            ..
        } = saved;
        self.kv.restore_from(&kv, revision, &mut fx.kv_events);
        self.catalog
            .restore_from(catalog, revision, &mut fx.service_names);
        sessions.clamp_indexes(revision);
        leases.clamp_revisions(revision);
        self.sessions = sessions;
        self.leases = leases;
        Response::Done
    }
}

/// An error with its causes, for a rejection that must explain itself.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
