//! etcd's Maintenance service: status for `etcdctl endpoint status`, hashes
//! for consistency checks, a snapshot stream, and an always-empty alarm list
//! (Sextant raises no NOSPACE or CORRUPT alarms).

use std::pin::Pin;

use futures::Stream;
use sextant_proto::etcd::etcdserverpb::maintenance_server::Maintenance;
use sextant_proto::etcd::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, HashKvRequest,
    HashKvResponse, HashRequest, HashResponse, SnapshotRequest, SnapshotResponse, StatusRequest,
    StatusResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::error::{status, EtcdError};
use super::EtcdContext;
use sextant_core::registry::Consistency;

/// The version reported to etcd clients: an etcd 3.4 API level, with
/// Sextant's own version as semver build metadata. etcdctl 3.4 accepts it;
/// clients that gate features on the server version see 3.4.
pub const ETCD_VERSION: &str = concat!("3.4.0+sextant.", env!("CARGO_PKG_VERSION"));
/// Bytes per snapshot message.
const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;

pub struct MaintenanceService {
    ctx: EtcdContext,
}

impl MaintenanceService {
    pub fn new(ctx: EtcdContext) -> Self {
        Self { ctx }
    }

    fn snapshot_bytes(&self) -> Result<Vec<u8>, Status> {
        let state = self.ctx.registry.view();
        state
            .encode_snapshot()
            .map_err(|e| status(EtcdError::Internal(e.to_string())))
    }
}

type SnapshotStream =
    Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        _request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        Ok(Response::new(AlarmResponse {
            header: self.ctx.header(self.ctx.revision()),
            alarms: Vec::new(),
        }))
    }

    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let status = self.ctx.registry.status();
        // The snapshot's size stands in for etcd's database file size: it is
        // what a restore would hold.
        let db_size = i64::try_from(self.snapshot_bytes()?.len()).unwrap_or(i64::MAX);
        let learner = !status.membership.is_voter(self.ctx.registry.id());
        Ok(Response::new(StatusResponse {
            header: self.ctx.header(self.ctx.revision()),
            version: ETCD_VERSION.to_string(),
            db_size,
            leader: status.leader.unwrap_or(0),
            raft_index: status.last_log_index.unwrap_or(0),
            raft_term: status.term,
            raft_applied_index: status.last_applied_index.unwrap_or(0),
            errors: Vec::new(),
            db_size_in_use: db_size,
            is_learner: learner,
        }))
    }

    async fn defragment(
        &self,
        _request: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        // The state lives in memory; there is nothing to defragment.
        Ok(Response::new(DefragmentResponse {
            header: self.ctx.header(self.ctx.revision()),
        }))
    }

    /// A CRC-32 of the whole replicated state at this server's revision.
    async fn hash(&self, _request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        let bytes = self.snapshot_bytes()?;
        Ok(Response::new(HashResponse {
            header: self.ctx.header(self.ctx.revision()),
            hash: crc32fast::hash(&bytes),
        }))
    }

    /// A CRC-32 of the key space as of a revision (0: the latest). Members
    /// that applied the same log agree on it.
    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        let revision = u64::try_from(request.get_ref().revision).unwrap_or(0);
        self.ctx
            .registry
            .read_barrier(Consistency::Stale)
            .await
            .map_err(status)?;
        let (hash, compacted, current) = {
            let state = self.ctx.registry.view();
            let kv = state.kv();
            let at = if revision == 0 {
                kv.revision()
            } else {
                revision
            };
            let kvs = kv.range(&[0], &[0], Some(at)).map_err(status)?;
            let mut hasher = crc32fast::Hasher::new();
            for kv in kvs {
                hasher.update(&kv.key);
                hasher.update(&kv.value);
                for n in [kv.create_revision, kv.mod_revision, kv.version] {
                    hasher.update(&n.to_le_bytes());
                }
                hasher.update(&kv.lease.unwrap_or(0).to_le_bytes());
            }
            (hasher.finalize(), kv.compacted_revision(), kv.revision())
        };
        Ok(Response::new(HashKvResponse {
            header: self.ctx.header(current),
            hash,
            compact_revision: i64::try_from(compacted).unwrap_or(i64::MAX),
        }))
    }

    type SnapshotStream = SnapshotStream;

    /// Sextant's own snapshot format (the bytes `sextant snapshot save`
    /// writes), not a bbolt file: `etcdctl snapshot restore` cannot read it.
    async fn snapshot(
        &self,
        _request: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let bytes = self.snapshot_bytes()?;
        let header = self.ctx.header(self.ctx.revision());
        let (tx, rx) = mpsc::channel(4);
        let stop = self.ctx.stop.clone();
        tokio::spawn(async move {
            let mut remaining = bytes.len();
            for chunk in bytes.chunks(SNAPSHOT_CHUNK_BYTES) {
                remaining -= chunk.len();
                let message = SnapshotResponse {
                    header,
                    remaining_bytes: remaining as u64,
                    blob: chunk.to_vec(),
                };
                tokio::select! {
                    _ = sextant_core::tasks::stopped(stop.clone()) => return,
                    sent = tx.send(Ok(message)) => if sent.is_err() { return },
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
