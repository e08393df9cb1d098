//! etcd's Cluster service over the Raft membership: a member is a Sextant
//! server, its id the Raft node id, its peer URL the raft address and its
//! client URL the gRPC address.

use sextant_proto::etcd::etcdserverpb::cluster_server::Cluster;
use sextant_proto::etcd::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberRemoveRequest, MemberRemoveResponse,
};
use tonic::{Request, Response, Status};

use super::error::{status, EtcdError};
use super::EtcdContext;
use sextant_core::peer::JoinRequest;
use sextant_core::ServerNode;

pub struct ClusterService {
    ctx: EtcdContext,
}

impl ClusterService {
    pub fn new(ctx: EtcdContext) -> Self {
        Self { ctx }
    }

    /// Every member as this server's applied membership lists it.
    fn members(&self) -> Vec<Member> {
        let membership = self.ctx.registry.status().membership;
        membership
            .nodes()
            .map(|(id, node)| member(id, node, !membership.is_voter(id)))
            .collect()
    }
}

fn url(addr: &str) -> Vec<String> {
    if addr.is_empty() {
        Vec::new()
    } else {
        vec![format!("http://{addr}")]
    }
}

fn member(id: u64, node: &ServerNode, is_learner: bool) -> Member {
    Member {
        id,
        name: node.name.clone(),
        peer_urls: url(&node.raft_addr),
        client_urls: url(&node.grpc_addr),
        is_learner,
    }
}

/// `host:port` from a peer URL such as `http://10.0.0.2:8300`.
fn peer_addr(peer_url: &str) -> Result<String, EtcdError> {
    let rest = peer_url
        .strip_prefix("http://")
        .or_else(|| peer_url.strip_prefix("https://"))
        .unwrap_or(peer_url);
    let addr = rest.trim_end_matches('/');
    if addr.is_empty() || !addr.contains(':') {
        return Err(EtcdError::InvalidArgument(format!(
            "invalid peer URL {peer_url:?}"
        )));
    }
    Ok(addr.to_string())
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    /// Adds a learner (etcd's `isLearner`) or a voter at the peer URL, under
    /// a fresh member id. A Sextant server normally joins by itself with
    /// `--join`; this is for etcd tooling, and the server at that address
    /// must answer Raft as that member id.
    async fn member_add(
        &self,
        request: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        let req = request.into_inner();
        let [peer_url] = req.peer_urls.as_slice() else {
            return Err(status(EtcdError::InvalidArgument(
                "exactly one peer URL is supported".into(),
            )));
        };
        let raft_addr = peer_addr(peer_url).map_err(status)?;
        if self
            .members()
            .iter()
            .any(|m| m.peer_urls.iter().any(|u| u.ends_with(&raft_addr)))
        {
            return Err(status(EtcdError::PeerUrlExists));
        }
        let id = rand::random::<u64>().max(1);
        let node = ServerNode {
            raft_addr,
            ..ServerNode::default()
        };
        self.ctx
            .registry
            .add_member(
                JoinRequest {
                    id,
                    node: node.clone(),
                },
                req.is_learner,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(MemberAddResponse {
            header: self.ctx.header(0),
            member: Some(member(id, &node, req.is_learner)),
            members: self.members(),
        }))
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        let id = request.into_inner().id;
        if !self.members().iter().any(|m| m.id == id) {
            return Err(status(EtcdError::MemberNotFound));
        }
        self.ctx.registry.remove_server(id).await.map_err(status)?;
        Ok(Response::new(MemberRemoveResponse {
            header: self.ctx.header(0),
            members: self.members(),
        }))
    }

    async fn member_list(
        &self,
        _request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        Ok(Response::new(MemberListResponse {
            header: self.ctx.header(0),
            members: self.members(),
        }))
    }
}
