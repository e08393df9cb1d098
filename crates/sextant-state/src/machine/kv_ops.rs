//! Applying key-space commands, and keeping the lease and session indexes in
//! step with every key-space write, whichever command made it.

use super::{Effects, StateMachine};
use crate::command::{KvCondition, LockAction, Response};
use crate::kv::{KvEvent, KvEventKind, KvStore, PutRequest};
use crate::lease::LeaseId;
use crate::ApplyError;

impl StateMachine {
    #[allow(clippy::too_many_arguments)] // the fields of `Op::KvPut`, unpacked
    pub(super) fn kv_put(
        &mut self,
        key: &[u8],
        value: &[u8],
        flags: u64,
        lease: Option<LeaseId>,
        condition: KvCondition,
        lock: &LockAction,
        now_ms: u64,
        fx: &mut Effects,
    ) -> Response {
        if let Some(id) = lease {
            if !self.leases.contains(id) {
                return Response::Rejected(ApplyError::UnknownLease { id });
            }
        }
        if let LockAction::Acquire(session) = lock {
            if !self.sessions.contains(session) {
                return Response::Rejected(ApplyError::UnknownSession {
                    id: session.clone(),
                });
            }
        }
        let request = PutRequest {
            key,
            value,
            flags,
            lease,
            condition,
            lock,
            now_ms,
        };
        let revision = self.revision;
        let applied = self.write_kv(fx, |kv, events| kv.put(&request, revision, events));
        if condition == KvCondition::None && *lock == LockAction::None {
            Response::Done
        } else {
            Response::Applied(applied)
        }
    }

    /// A delete with a condition is Consul's `DELETE ?cas=`, which acts on
    /// the one key even when `prefix` is set (Consul lets `cas` override
    /// `recurse`); it answers `Applied`. Otherwise the answer is `Deleted(n)`.
    pub(super) fn kv_delete(
        &mut self,
        key: &[u8],
        prefix: bool,
        condition: KvCondition,
        fx: &mut Effects,
    ) -> Response {
        let revision = self.revision;
        match condition {
            KvCondition::ModifyIndex(index) => Response::Applied(
                self.write_kv(fx, |kv, events| kv.delete_if(key, index, revision, events)),
            ),
            KvCondition::None if prefix => Response::Deleted(
                self.write_kv(fx, |kv, events| kv.delete_prefix(key, revision, events)),
            ),
            KvCondition::None => Response::Deleted(u64::from(
                self.write_kv(fx, |kv, events| kv.delete(key, revision, events)),
            )),
        }
    }

    pub(super) fn kv_compact(&mut self, revision: u64) -> Response {
        match self.kv.compact(revision) {
            Ok(()) => Response::Done,
            Err(e) => Response::Rejected(e),
        }
    }

    /// Runs a key-space write and follows each change it made into the lease
    /// and session indexes. Every key-space write goes through here, so those
    /// indexes cannot miss one.
    pub(super) fn write_kv<R>(
        &mut self,
        fx: &mut Effects,
        write: impl FnOnce(&mut KvStore, &mut Vec<KvEvent>) -> R,
    ) -> R {
        let start = fx.kv_events.len();
        let result = write(&mut self.kv, &mut fx.kv_events);
        for event in fx.kv_events.iter().skip(start) {
            self.track(event);
        }
        result
    }

    pub(super) fn track(&mut self, event: &KvEvent) {
        let key = event.kv.key.as_slice();
        if let Some(prev) = &event.prev {
            if let Some(lease) = prev.lease {
                self.leases.detach(lease, key);
            }
            if let Some(session) = &prev.session {
                self.sessions.release_key(session, key);
            }
        }
        if event.kind == KvEventKind::Put {
            if let Some(lease) = event.kv.lease {
                self.leases.attach(lease, key);
            }
            if let Some(session) = &event.kv.session {
                self.sessions.hold_key(session, key);
            }
        }
    }
}
