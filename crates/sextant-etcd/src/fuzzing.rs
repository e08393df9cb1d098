//! The `etcd_requests` target: an arbitrary protobuf message decoded as an
//! etcd Range, Put, DeleteRange or Txn request goes through the same checks
//! as on the gRPC port, and whatever passes them is then run against a small
//! state machine, as the server would propose or read it. Nothing may panic,
//! and the state must keep its invariants.

use prost::Message;
use sextant_proto::etcd::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest};
use sextant_state::fuzzing::ByteSource;
use sextant_state::txn::{Txn, TxnOp, MAX_TXN_OPS};
use sextant_state::{Command, Op, StateMachine};

use crate::convert;

/// A machine with a few keys at several revisions, one of them compacted
/// away, so that reads at old revisions and compare targets meet real data.
fn machine() -> StateMachine {
    let mut machine = StateMachine::new();
    let mut index = 0;
    let mut apply = |machine: &mut StateMachine, op: Op| {
        index += 1;
        machine.apply(index, &Command::new(1_000, op));
    };
    apply(
        &mut machine,
        Op::LeaseGrant {
            id: 7,
            ttl_secs: 60,
        },
    );
    for (key, value) in [("a", "1"), ("a/b", "2"), ("b", "3"), ("a", "4")] {
        apply(
            &mut machine,
            Op::KvPut {
                key: key.into(),
                value: value.into(),
                flags: 0,
                lease: (key == "b").then_some(7),
                condition: Default::default(),
                lock: Default::default(),
            },
        );
    }
    apply(&mut machine, Op::KvCompact { revision: 3 });
    machine
}

/// Applies a Txn the server would have proposed and checks the state after.
fn propose(txn: Txn) {
    if txn.validate(MAX_TXN_OPS).is_err() {
        return;
    }
    let mut machine = machine();
    let index = machine.revision() + 1;
    machine.apply(index, &Command::new(2_000, Op::Txn { txn }));
    if let Err(broken) = machine.check_invariants() {
        panic!("an etcd request broke an invariant: {broken}");
    }
}

/// The first byte picks the request type; the rest is its protobuf encoding.
pub fn etcd_requests(data: &[u8]) {
    let mut source = ByteSource::new(data);
    let which = source.byte();
    let body = source.rest();
    match which % 4 {
        0 => {
            let Ok(req) = RangeRequest::decode(body) else {
                return;
            };
            if let Ok(query) = convert::range_query(&req) {
                let _ = machine().kv().query(&query);
            }
        }
        1 => {
            let Ok(req) = PutRequest::decode(body) else {
                return;
            };
            if let Ok(op) = convert::put_op(&req) {
                propose(Txn {
                    success: vec![TxnOp::Put(op)],
                    ..Txn::default()
                });
            }
        }
        2 => {
            let Ok(req) = DeleteRangeRequest::decode(body) else {
                return;
            };
            if let Ok(op) = convert::delete_op(&req) {
                propose(Txn {
                    success: vec![TxnOp::Delete(op)],
                    ..Txn::default()
                });
            }
        }
        _ => {
            let Ok(req) = TxnRequest::decode(body) else {
                return;
            };
            if let Ok(txn) = convert::txn(&req) {
                propose(txn);
            }
        }
    }
}
