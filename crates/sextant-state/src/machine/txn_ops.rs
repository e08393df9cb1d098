//! Applying an etcd Txn (and so every etcd Put and DeleteRange): compares,
//! then the taken branch, all at this entry's revision. A Txn that fails
//! half-way (an unknown lease, a read at a compacted revision) is undone
//! whole: etcd clients rely on a Txn being all or nothing.

use super::{Effects, StateMachine};
use crate::command::{KvCondition, LockAction, Response};
use crate::kv::{KvEvent, PutRequest};
use crate::txn::{PutOp, Txn, TxnOp, TxnOpResult, TxnResult};
use crate::ApplyError;

impl StateMachine {
    pub(super) fn txn(&mut self, txn: &Txn, now_ms: u64, fx: &mut Effects) -> Response {
        let start = fx.kv_events.len();
        let last_change = self.kv.last_change_revision();
        match self.run_txn(txn, now_ms, &mut fx.kv_events) {
            Ok(result) => {
                let events: Vec<KvEvent> = fx.kv_events[start..].to_vec();
                for event in &events {
                    self.track(event);
                }
                Response::Txn(result)
            }
            Err(e) => {
                self.kv.undo(&fx.kv_events[start..], last_change);
                fx.kv_events.truncate(start);
                Response::Rejected(e)
            }
        }
    }

    fn run_txn(
        &mut self,
        txn: &Txn,
        now_ms: u64,
        events: &mut Vec<KvEvent>,
    ) -> Result<TxnResult, ApplyError> {
        let succeeded = txn.compares.iter().all(|c| c.holds(&self.kv));
        let branch = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        let mut responses = Vec::with_capacity(branch.len());
        for op in branch {
            responses.push(self.run_op(op, now_ms, events)?);
        }
        Ok(TxnResult {
            succeeded,
            responses,
        })
    }

    fn run_op(
        &mut self,
        op: &TxnOp,
        now_ms: u64,
        events: &mut Vec<KvEvent>,
    ) -> Result<TxnOpResult, ApplyError> {
        let revision = self.revision;
        match op {
            TxnOp::Range(query) => Ok(TxnOpResult::Range(self.kv.query(query)?)),
            TxnOp::Put(put) => self.run_put(put, now_ms, events),
            TxnOp::Delete(delete) => {
                let deleted =
                    self.kv
                        .delete_range(&delete.key, &delete.range_end, revision, events);
                Ok(TxnOpResult::Delete {
                    deleted: deleted.len() as u64,
                    prev_kvs: if delete.prev_kv { deleted } else { Vec::new() },
                })
            }
            TxnOp::Txn(nested) => Ok(TxnOpResult::Txn(self.run_txn(nested, now_ms, events)?)),
        }
    }

    fn run_put(
        &mut self,
        put: &PutOp,
        now_ms: u64,
        events: &mut Vec<KvEvent>,
    ) -> Result<TxnOpResult, ApplyError> {
        let prev = self.kv.get(&put.key).cloned();
        let key_not_found = || ApplyError::KeyNotFound {
            key: put.key.clone(),
        };
        let value = match (&prev, put.ignore_value) {
            (Some(prev), true) => prev.value.clone(),
            (None, true) => return Err(key_not_found()),
            (_, false) => put.value.clone(),
        };
        let lease = match (&prev, put.ignore_lease) {
            (Some(prev), true) => prev.lease,
            (None, true) => return Err(key_not_found()),
            (_, false) if put.lease == 0 => None,
            (_, false) => {
                if !self.leases.contains(put.lease) {
                    return Err(ApplyError::UnknownLease { id: put.lease });
                }
                Some(put.lease)
            }
        };
        let request = PutRequest {
            key: &put.key,
            value: &value,
            flags: 0,
            lease,
            condition: KvCondition::None,
            lock: &LockAction::None,
            now_ms,
        };
        self.kv.put(&request, self.revision, events);
        Ok(TxnOpResult::Put {
            prev: if put.prev_kv { prev } else { None },
        })
    }
}
