//! Applying catalog commands, then ending the sessions they undercut: those
//! on a deregistered node, and those depending on a check that failed or
//! went away.

use super::{Effects, StateMachine};
use crate::catalog::CatalogChanges;
use crate::command::{Op, Response};

impl StateMachine {
    pub(super) fn catalog_op(&mut self, op: &Op, now_ms: u64, fx: &mut Effects) -> Response {
        let revision = self.revision;
        let mut changes = CatalogChanges::default();
        let mut ended_node = None;
        let response = match op {
            Op::RegisterNode { node } => {
                self.catalog.register_node(node, revision, &mut changes);
                Response::Done
            }
            Op::DeregisterNode { node } => {
                self.catalog.deregister_node(node, revision, &mut changes);
                ended_node = Some(node.as_str());
                Response::Done
            }
            Op::RegisterService {
                node,
                service,
                checks,
                replace_checks,
            } => {
                self.catalog.register_service(
                    node,
                    service,
                    checks,
                    *replace_checks,
                    revision,
                    &mut changes,
                );
                Response::Done
            }
            Op::DeregisterService { node, service_id } => {
                self.catalog
                    .deregister_service(node, service_id, revision, &mut changes);
                Response::Done
            }
            Op::RegisterCheck { check } => match self.catalog.validate_check(check) {
                Ok(()) => {
                    self.catalog.register_check(check, revision, &mut changes);
                    Response::Done
                }
                Err(e) => Response::Rejected(e),
            },
            Op::DeregisterCheck { node, check_id } => {
                self.catalog
                    .deregister_check(node, check_id, revision, &mut changes);
                Response::Done
            }
            Op::UpdateCheck {
                node,
                check_id,
                status,
                output,
            } => match self.catalog.update_check(
                node,
                check_id,
                *status,
                output,
                revision,
                &mut changes,
            ) {
                Ok(()) => Response::Done,
                Err(e) => Response::Rejected(e),
            },
            // Not catalog commands; `dispatch` never sends them here.
            Op::KvPut { .. }
            | Op::KvDelete { .. }
            | Op::KvCompact { .. }
            | Op::CreateSession { .. }
            | Op::DestroySession { .. }
            | Op::LeaseGrant { .. }
            | Op::LeaseRevoke { .. }
            | Op::Txn { .. }
            | Op::RestoreSnapshot { .. } => Response::Done,
        };

        let mut ending = Vec::new();
        if let Some(node) = ended_node {
            ending.extend(self.sessions.ids_of_node(node));
        }
        for (node, check_id) in &changes.lost_checks {
            ending.extend(self.sessions.ids_depending_on(node, check_id));
        }
        for id in ending {
            self.destroy_session(&id, now_ms, fx);
        }
        fx.service_names.extend(changes.service_names);
        response
    }
}
