//! The Raft network handed to openraft: its calls to other servers travel
//! over the internal gRPC API through [`PeerClients`].

use std::error::Error;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::TypeConfig;
use crate::node::{NodeId, ServerNode};
use crate::peer::{CallError, Method, PeerClients};

/// The network openraft uses to reach the other servers.
#[derive(Clone, Default)]
pub struct Network {
    pub clients: PeerClients,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &ServerNode) -> Connection {
        Connection {
            target,
            addr: node.raft_addr.clone(),
            clients: self.clients.clone(),
        }
    }
}

/// openraft's handle on one other server.
pub struct Connection {
    target: NodeId,
    addr: String,
    clients: PeerClients,
}

impl Connection {
    async fn raft_call<Req, Resp, E>(
        &self,
        method: Method,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, ServerNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: Error + DeserializeOwned,
    {
        let answer: Result<Resp, RaftError<NodeId, E>> = self
            .clients
            .call(&self.addr, method, request, option.hard_ttl())
            .await
            .map_err(|e| match e {
                CallError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&e)),
                _ => RPCError::Network(NetworkError::new(&e)),
            })?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, ServerNode, RaftError<NodeId>>>
    {
        self.raft_call(Method::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, ServerNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.raft_call(Method::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, ServerNode, RaftError<NodeId>>> {
        self.raft_call(Method::Vote, &rpc, &option).await
    }
}
