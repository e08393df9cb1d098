//! Between etcd's wire messages and the state crate's types, with the
//! request checks etcd makes before it proposes anything.

use sextant_proto::etcd::etcdserverpb::{
    compare, range_request, request_op, response_op, Compare as PbCompare, DeleteRangeRequest,
    DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp,
    ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use sextant_proto::etcd::mvccpb;
use sextant_state::kv::{
    KeyValue, KvEvent, KvEventKind, RangeQuery, RangeResult, SortOrder, SortTarget,
};
use sextant_state::txn::{
    Compare, CompareResult, CompareTarget, DeleteOp, PutOp, Txn, TxnOp, TxnOpResult, TxnResult,
};

use super::catalog_view;
use super::error::EtcdError;

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Negative revisions and bounds mean "none", as zero does.
fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

pub fn kv(kv: &KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key.clone(),
        create_revision: signed(kv.create_revision),
        mod_revision: signed(kv.mod_revision),
        version: signed(kv.version),
        value: kv.value.clone(),
        lease: kv.lease.unwrap_or(0),
    }
}

/// A watch event; the previous version only when the watcher asked for it.
pub fn event(event: &KvEvent, with_prev: bool) -> mvccpb::Event {
    let kind = match event.kind {
        KvEventKind::Put => mvccpb::event::EventType::Put,
        KvEventKind::Delete => mvccpb::event::EventType::Delete,
    };
    mvccpb::Event {
        r#type: kind as i32,
        kv: Some(kv(&event.kv)),
        prev_kv: if with_prev {
            event.prev.as_ref().map(kv)
        } else {
            None
        },
    }
}

fn require_key(key: &[u8]) -> Result<(), EtcdError> {
    if key.is_empty() {
        Err(EtcdError::EmptyKey)
    } else {
        Ok(())
    }
}

pub fn range_query(req: &RangeRequest) -> Result<RangeQuery, EtcdError> {
    require_key(&req.key)?;
    let sort_order = match range_request::SortOrder::try_from(req.sort_order) {
        Ok(range_request::SortOrder::None) => SortOrder::None,
        Ok(range_request::SortOrder::Ascend) => SortOrder::Ascend,
        Ok(range_request::SortOrder::Descend) => SortOrder::Descend,
        Err(_) => return Err(EtcdError::InvalidArgument("invalid sort option".into())),
    };
    let sort_target = match range_request::SortTarget::try_from(req.sort_target) {
        Ok(range_request::SortTarget::Key) => SortTarget::Key,
        Ok(range_request::SortTarget::Version) => SortTarget::Version,
        Ok(range_request::SortTarget::Create) => SortTarget::Create,
        Ok(range_request::SortTarget::Mod) => SortTarget::Mod,
        Ok(range_request::SortTarget::Value) => SortTarget::Value,
        Err(_) => return Err(EtcdError::InvalidArgument("invalid sort option".into())),
    };
    Ok(RangeQuery {
        key: req.key.clone(),
        range_end: req.range_end.clone(),
        limit: unsigned(req.limit),
        revision: unsigned(req.revision),
        sort_order,
        sort_target,
        keys_only: req.keys_only,
        count_only: req.count_only,
        min_mod_revision: unsigned(req.min_mod_revision),
        max_mod_revision: unsigned(req.max_mod_revision),
        min_create_revision: unsigned(req.min_create_revision),
        max_create_revision: unsigned(req.max_create_revision),
    })
}

pub fn range_response(result: &RangeResult, header: Option<ResponseHeader>) -> RangeResponse {
    RangeResponse {
        header,
        kvs: result.kvs.iter().map(kv).collect(),
        more: result.more,
        count: signed(result.count),
    }
}

pub fn put_op(req: &PutRequest) -> Result<PutOp, EtcdError> {
    require_key(&req.key)?;
    if req.ignore_value && !req.value.is_empty() {
        return Err(EtcdError::ValueProvided);
    }
    if req.ignore_lease && req.lease != 0 {
        return Err(EtcdError::LeaseProvided);
    }
    if catalog_view::covers(&req.key, &[]) {
        return Err(EtcdError::PermissionDenied);
    }
    Ok(PutOp {
        key: req.key.clone(),
        value: req.value.clone(),
        lease: req.lease,
        prev_kv: req.prev_kv,
        ignore_value: req.ignore_value,
        ignore_lease: req.ignore_lease,
    })
}

pub fn delete_op(req: &DeleteRangeRequest) -> Result<DeleteOp, EtcdError> {
    require_key(&req.key)?;
    if catalog_view::overlaps(&req.key, &req.range_end) {
        return Err(EtcdError::PermissionDenied);
    }
    Ok(DeleteOp {
        key: req.key.clone(),
        range_end: req.range_end.clone(),
        prev_kv: req.prev_kv,
    })
}

fn compare(c: &PbCompare) -> Result<Compare, EtcdError> {
    require_key(&c.key)?;
    let result = match compare::CompareResult::try_from(c.result) {
        Ok(compare::CompareResult::Equal) => CompareResult::Equal,
        Ok(compare::CompareResult::Greater) => CompareResult::Greater,
        Ok(compare::CompareResult::Less) => CompareResult::Less,
        Ok(compare::CompareResult::NotEqual) => CompareResult::NotEqual,
        Err(_) => return Err(EtcdError::InvalidArgument("invalid compare result".into())),
    };
    use compare::TargetUnion as U;
    let operand = c.target_union.clone();
    let target = match compare::CompareTarget::try_from(c.target) {
        Ok(compare::CompareTarget::Version) => CompareTarget::Version(match operand {
            Some(U::Version(v)) => v,
            _ => 0,
        }),
        Ok(compare::CompareTarget::Create) => CompareTarget::Create(match operand {
            Some(U::CreateRevision(v)) => v,
            _ => 0,
        }),
        Ok(compare::CompareTarget::Mod) => CompareTarget::Mod(match operand {
            Some(U::ModRevision(v)) => v,
            _ => 0,
        }),
        Ok(compare::CompareTarget::Value) => CompareTarget::Value(match operand {
            Some(U::Value(v)) => v,
            _ => Vec::new(),
        }),
        Ok(compare::CompareTarget::Lease) => CompareTarget::Lease(match operand {
            Some(U::Lease(v)) => v,
            _ => 0,
        }),
        Err(_) => return Err(EtcdError::InvalidArgument("invalid compare target".into())),
    };
    Ok(Compare {
        key: c.key.clone(),
        range_end: c.range_end.clone(),
        result,
        target,
    })
}

fn txn_op(op: &RequestOp) -> Result<TxnOp, EtcdError> {
    match &op.request {
        Some(request_op::Request::RequestRange(r)) => Ok(TxnOp::Range(range_query(r)?)),
        Some(request_op::Request::RequestPut(p)) => Ok(TxnOp::Put(put_op(p)?)),
        Some(request_op::Request::RequestDeleteRange(d)) => Ok(TxnOp::Delete(delete_op(d)?)),
        Some(request_op::Request::RequestTxn(t)) => Ok(TxnOp::Txn(txn(t)?)),
        None => Err(EtcdError::InvalidArgument("empty request in txn".into())),
    }
}

pub fn txn(req: &TxnRequest) -> Result<Txn, EtcdError> {
    Ok(Txn {
        compares: req.compare.iter().map(compare).collect::<Result<_, _>>()?,
        success: req.success.iter().map(txn_op).collect::<Result<_, _>>()?,
        failure: req.failure.iter().map(txn_op).collect::<Result<_, _>>()?,
    })
}

pub fn put_response(result: &TxnOpResult, header: Option<ResponseHeader>) -> PutResponse {
    let prev_kv = match result {
        TxnOpResult::Put { prev } => prev.as_ref().map(kv),
        _ => None,
    };
    PutResponse { header, prev_kv }
}

pub fn delete_response(
    result: &TxnOpResult,
    header: Option<ResponseHeader>,
) -> DeleteRangeResponse {
    match result {
        TxnOpResult::Delete { deleted, prev_kvs } => DeleteRangeResponse {
            header,
            deleted: signed(*deleted),
            prev_kvs: prev_kvs.iter().map(kv).collect(),
        },
        _ => DeleteRangeResponse {
            header,
            ..DeleteRangeResponse::default()
        },
    }
}

/// A Txn's answer; every nested response carries the same header, as etcd's do.
pub fn txn_response(result: &TxnResult, header: Option<ResponseHeader>) -> TxnResponse {
    let responses = result
        .responses
        .iter()
        .map(|r| {
            let response = match r {
                TxnOpResult::Range(range) => {
                    response_op::Response::ResponseRange(range_response(range, header))
                }
                TxnOpResult::Put { .. } => {
                    response_op::Response::ResponsePut(put_response(r, header))
                }
                TxnOpResult::Delete { .. } => {
                    response_op::Response::ResponseDeleteRange(delete_response(r, header))
                }
                TxnOpResult::Txn(nested) => {
                    response_op::Response::ResponseTxn(txn_response(nested, header))
                }
            };
            ResponseOp {
                response: Some(response),
            }
        })
        .collect();
    TxnResponse {
        header,
        succeeded: result.succeeded,
        responses,
    }
}
