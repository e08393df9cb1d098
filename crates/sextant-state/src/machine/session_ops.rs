//! Creating sessions, and ending them with what they hold.

use super::{Effects, StateMachine};
use crate::command::Response;
use crate::session::{Session, SessionBehavior};
use crate::ApplyError;

impl StateMachine {
    /// Creates a session on a registered node whose checks all exist there
    /// and none is failing (a session born on a failing check would end at
    /// once).
    pub(super) fn create_session(&mut self, session: &Session) -> Response {
        match self.validate_session(session) {
            Ok(()) => {
                self.sessions.insert(Session {
                    create_index: self.revision,
                    modify_index: self.revision,
                    ..session.clone()
                });
                Response::Done
            }
            Err(e) => Response::Rejected(e),
        }
    }

    fn validate_session(&self, session: &Session) -> Result<(), ApplyError> {
        if self.sessions.contains(&session.id) {
            return Err(ApplyError::SessionExists {
                id: session.id.clone(),
            });
        }
        if self.catalog.node(&session.node).is_none() {
            return Err(ApplyError::UnknownNode {
                node: session.node.clone(),
            });
        }
        for check_id in session.all_checks() {
            match self.catalog.check(&session.node, check_id) {
                None => {
                    return Err(ApplyError::UnknownCheck {
                        node: session.node.clone(),
                        check_id: check_id.to_owned(),
                    })
                }
                Some(check) if check.status.is_failing() => {
                    return Err(ApplyError::CheckFailing {
                        node: session.node.clone(),
                        check_id: check_id.to_owned(),
                        status: check.status,
                    })
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Ends a session: each key whose lock it holds is released (a new
    /// version without the session) or deleted, per its behavior, and starts
    /// its lock-delay. `false` if there was no such session, which is not an
    /// error: a session may already have ended another way.
    pub(super) fn destroy_session(&mut self, id: &str, now_ms: u64, fx: &mut Effects) -> bool {
        let Some(session) = self.sessions.get(id) else {
            return false;
        };
        let behavior = session.behavior;
        let lock_delay_ms = session.lock_delay_ms;
        let keys: Vec<Vec<u8>> = self.sessions.held_keys(id).map(<[u8]>::to_vec).collect();
        let revision = self.revision;
        self.write_kv(fx, |kv, events| {
            for key in &keys {
                match behavior {
                    SessionBehavior::Release => kv.clear_session(key, id, revision, events),
                    SessionBehavior::Delete => {
                        if kv.get(key).and_then(|v| v.session.as_deref()) == Some(id) {
                            kv.delete(key, revision, events);
                        }
                    }
                }
            }
        });
        self.kv.delay_locks(&keys, now_ms, lock_delay_ms);
        self.sessions.remove(id);
        true
    }
}
