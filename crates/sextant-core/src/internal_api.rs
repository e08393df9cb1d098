//! The server side of the internal gRPC API: each method decodes its frame,
//! hands it to openraft, the registry or discovery, and encodes the answer.

use std::sync::Arc;

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use sextant_proto::internal::internal_server::Internal;
use sextant_proto::internal::Frame;
use tonic::{Request, Response, Status};

use super::rpc::{
    decode, encode, ForwardRequest, Hello, JoinRequest, LeaveRequest, ReadIndexRequest,
};
use super::{NodeId, TypeConfig};
use crate::cluster::discovery::Discovery;
use crate::lease_keeper::{KeeperRequest, LeaseKeeper};
use crate::registry::Registry;

pub struct InternalService {
    registry: Arc<Registry>,
    discovery: Arc<Discovery>,
    /// Answers followers' etcd keep-alives while this server leads.
    lease_keeper: Option<Arc<LeaseKeeper>>,
}

impl InternalService {
    pub fn new(registry: Arc<Registry>, discovery: Arc<Discovery>) -> Self {
        Self {
            registry,
            discovery,
            lease_keeper: None,
        }
    }

    pub fn with_lease_keeper(mut self, keeper: Arc<LeaseKeeper>) -> Self {
        self.lease_keeper = Some(keeper);
        self
    }

    fn keeper(&self) -> Result<&LeaseKeeper, Status> {
        self.lease_keeper
            .as_deref()
            .ok_or_else(|| Status::unavailable("no lease keeper on this server"))
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
        answer(&self.keeper()?.answer_local(rpc))
    }

    async fn lease_keepers(&self, request: Request<Frame>) -> Answer {
        let rpcs: Vec<KeeperRequest> = decode(request.get_ref())?;
        let keeper = self.keeper()?;
        let answers: Vec<_> = rpcs.into_iter().map(|r| keeper.answer_local(r)).collect();
        answer(&answers)
    }
}
