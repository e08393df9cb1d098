//! etcd's KV service. Put and DeleteRange travel as one-op Txns, so every
//! etcd write has one apply path; Range reads after a read barrier
//! (serializable: local state; otherwise linearizable).

use prost::Message;
use sextant_proto::etcd::etcdserverpb::kv_server::Kv;
use sextant_proto::etcd::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use sextant_state::kv::RangeResult;
use sextant_state::txn::{Txn, TxnOp, TxnOpResult, TxnResult, MAX_TXN_OPS};
use sextant_state::{Op, Response as Applied};
use tonic::{Request, Response, Status};

use super::error::{status, EtcdError};
use super::{catalog_view, convert, EtcdContext, MAX_REQUEST_BYTES};
use sextant_core::registry::Consistency;

pub struct KvService {
    ctx: EtcdContext,
}

impl KvService {
    pub fn new(ctx: EtcdContext) -> Self {
        Self { ctx }
    }

    /// Proposes a Txn; answers its result and revision.
    async fn write(&self, txn: Txn) -> Result<(TxnResult, u64), Status> {
        txn.validate(MAX_TXN_OPS).map_err(status)?;
        let outcome = self
            .ctx
            .registry
            .write(Op::Txn { txn })
            .await
            .map_err(status)?;
        match outcome.response {
            Applied::Txn(result) => Ok((result, outcome.revision)),
            Applied::Rejected(e) => Err(status(e)),
            other => Err(status(EtcdError::Internal(format!(
                "unexpected answer to a txn: {other:?}"
            )))),
        }
    }

    /// The one op of a single-op Txn's answer.
    fn only(result: TxnResult) -> Result<TxnOpResult, Status> {
        result
            .responses
            .into_iter()
            .next()
            .ok_or_else(|| status(EtcdError::Internal("a txn answered no op".into())))
    }
}

fn too_large(request: &impl Message) -> Result<(), Status> {
    if request.encoded_len() > MAX_REQUEST_BYTES {
        return Err(status(EtcdError::RequestTooLarge));
    }
    Ok(())
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let req = request.into_inner();
        let query = convert::range_query(&req).map_err(status)?;
        let consistency = if req.serializable {
            Consistency::Stale
        } else {
            Consistency::Consistent
        };
        self.ctx
            .registry
            .read_barrier(consistency)
            .await
            .map_err(status)?;
        let (mut result, revision, catalog) = {
            let state = self.ctx.registry.view();
            let kv = state.kv();
            let result = kv.query(&query).map_err(status)?;
            // The catalog view has no history: it joins latest reads only.
            let catalog = if query.revision == 0 {
                catalog_view::range(state.catalog(), &query.key, &query.range_end)
            } else {
                Vec::new()
            };
            (result, kv.revision(), catalog)
        };
        if !catalog.is_empty() {
            merge_catalog(&mut result, &query, catalog);
        }
        let header = self.ctx.header(revision);
        Ok(Response::new(convert::range_response(&result, header)))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        too_large(request.get_ref())?;
        let op = convert::put_op(request.get_ref()).map_err(status)?;
        let (result, revision) = self
            .write(Txn {
                success: vec![TxnOp::Put(op)],
                ..Txn::default()
            })
            .await?;
        let header = self.ctx.header(revision);
        Ok(Response::new(convert::put_response(
            &Self::only(result)?,
            header,
        )))
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let op = convert::delete_op(request.get_ref()).map_err(status)?;
        let (result, revision) = self
            .write(Txn {
                success: vec![TxnOp::Delete(op)],
                ..Txn::default()
            })
            .await?;
        let header = self.ctx.header(revision);
        Ok(Response::new(convert::delete_response(
            &Self::only(result)?,
            header,
        )))
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        too_large(request.get_ref())?;
        let txn = convert::txn(request.get_ref()).map_err(status)?;
        let (result, revision) = self.write(txn).await?;
        let header = self.ctx.header(revision);
        Ok(Response::new(convert::txn_response(&result, header)))
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let revision = u64::try_from(request.get_ref().revision).unwrap_or(0);
        // Applying a compaction is synchronous here, so `physical` is
        // satisfied by the time the write returns.
        let outcome = self
            .ctx
            .registry
            .write(Op::KvCompact { revision })
            .await
            .map_err(status)?;
        if let Applied::Rejected(e) = outcome.response {
            return Err(status(e));
        }
        let header = self.ctx.header(outcome.revision);
        Ok(Response::new(CompactionResponse { header }))
    }
}

/// Adds catalog-view keys to a latest read: counted, merged in key order
/// (descending when asked), cut at the limit. Sorting by other targets
/// orders the stored keys only; the view's keys follow key order.
fn merge_catalog(
    result: &mut RangeResult,
    query: &sextant_state::kv::RangeQuery,
    catalog: Vec<sextant_state::kv::KeyValue>,
) {
    result.count += catalog.len() as u64;
    if query.count_only {
        return;
    }
    let mut all = std::mem::take(&mut result.kvs);
    let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
    all.extend(catalog.into_iter().map(|mut kv| {
        if query.keys_only {
            kv.value.clear();
        }
        kv
    }));
    // The stores' own answer was cut at `limit`; with the view added, the
    // cut is made again over the merged, re-sorted set.
    all.sort_by(|a, b| a.key.cmp(&b.key));
    if query.sort_order == sextant_state::kv::SortOrder::Descend
        && query.sort_target == sextant_state::kv::SortTarget::Key
    {
        all.reverse();
    }
    result.more |= query.limit > 0 && all.len() > limit;
    if query.limit > 0 {
        all.truncate(limit);
    }
    result.kvs = all;
}
