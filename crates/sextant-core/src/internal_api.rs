//! The server side of the internal gRPC API: each method decodes its frame,
//! hands it to openraft, the registry, discovery, the lease keeper or health
//! checking, and encodes the answer.

use std::sync::Arc;
use std::time::Duration;

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use sextant_proto::internal::internal_server::Internal;
use sextant_proto::internal::Frame;
use tonic::{Request, Response, Status};

use crate::cluster::discovery::Discovery;
use crate::health::Health;
use crate::lease_keeper::{KeeperRequest, LeaseKeeper};
use crate::node::NodeId;
use crate::peer::{
    decode, encode, ForwardRequest, HealthWriteRequest, Hello, JoinRequest, LeaveRequest,
    ReadIndexRequest, RenewSessionRequest, RenewSessionResponse, TtlUpdateRequest,
};
use crate::raft::TypeConfig;
use crate::registry::Registry;

pub struct InternalService {
    registry: Arc<Registry>,
    discovery: Arc<Discovery>,
    /// Answers followers' etcd keep-alives while this server leads.
    lease_keeper: Arc<LeaseKeeper>,
    /// Takes the TTL updates and session renewals other servers pass on.
    health: Arc<Health>,
}

impl InternalService {
    pub fn new(
        registry: Arc<Registry>,
        discovery: Arc<Discovery>,
        lease_keeper: Arc<LeaseKeeper>,
        health: Arc<Health>,
    ) -> Self {
        Self {
            registry,
            discovery,
            lease_keeper,
            health,
        }
    }
}

type Answer = Result<Response<Frame>, Status>;

fn answer<T: serde::Serialize>(value: &T) -> Answer {
    encode(value).map(Response::new)
}

#[tonic::async_trait]
impl Internal for InternalService {
    async fn append_entries(&self, request: Request<Frame>) -> Answer {
        let rpc: AppendEntriesRequest<TypeConfig> = decode(request.get_ref())?;
        self.registry.note_leader_contact();
        answer(&self.registry.raft().append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<Frame>) -> Answer {
        let rpc: VoteRequest<NodeId> = decode(request.get_ref())?;
        answer(&self.registry.raft().vote(rpc).await)
    }

    async fn install_snapshot(&self, request: Request<Frame>) -> Answer {
        let rpc: InstallSnapshotRequest<TypeConfig> = decode(request.get_ref())?;
        self.registry.note_leader_contact();
        answer(&self.registry.raft().install_snapshot(rpc).await)
    }

    async fn forward(&self, request: Request<Frame>) -> Answer {
        let rpc: ForwardRequest = decode(request.get_ref())?;
        answer(&self.registry.write_local(rpc.command).await)
    }

    async fn read_index(&self, request: Request<Frame>) -> Answer {
        let rpc: ReadIndexRequest = decode(request.get_ref())?;
        answer(&self.registry.read_index_local(rpc).await)
    }

    async fn hello(&self, request: Request<Frame>) -> Answer {
        let rpc: Hello = decode(request.get_ref())?;
        answer(&self.discovery.greet(rpc).await)
    }

    async fn join(&self, request: Request<Frame>) -> Answer {
        let rpc: JoinRequest = decode(request.get_ref())?;
        answer(&self.registry.add_server_local(rpc).await)
    }

    async fn leave(&self, request: Request<Frame>) -> Answer {
        let rpc: LeaveRequest = decode(request.get_ref())?;
        answer(&self.registry.remove_server_local(rpc.id).await)
    }

    async fn lease_keeper(&self, request: Request<Frame>) -> Answer {
        let rpc: KeeperRequest = decode(request.get_ref())?;
        answer(&self.lease_keeper.answer_local(rpc))
    }

    async fn lease_keepers(&self, request: Request<Frame>) -> Answer {
        let rpcs: Vec<KeeperRequest> = decode(request.get_ref())?;
        let keeper = &self.lease_keeper;
        let answers: Vec<_> = rpcs.into_iter().map(|r| keeper.answer_local(r)).collect();
        answer(&answers)
    }

    async fn ttl_updates(&self, request: Request<Frame>) -> Answer {
        let rpcs: Vec<TtlUpdateRequest> = decode(request.get_ref())?;
        let updates = rpcs
            .into_iter()
            .map(|rpc| self.health.ttl_update_passed_on(rpc));
        answer(&futures::future::join_all(updates).await)
    }

    async fn health_write(&self, request: Request<Frame>) -> Answer {
        let rpc: HealthWriteRequest = decode(request.get_ref())?;
        answer(&crate::health::writer::accept(&self.health, rpc).await)
    }

    async fn renew_session(&self, request: Request<Frame>) -> Answer {
        let rpc: RenewSessionRequest = decode(request.get_ref())?;
        let renewed: RenewSessionResponse = self
            .health
            .renew_session(&rpc.id, Duration::from_millis(rpc.ttl_ms));
        answer(&renewed)
    }
}
