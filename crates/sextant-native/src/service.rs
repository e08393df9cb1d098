//! The `sextant.v1.Registry` service: each call hands its request to the
//! module that implements it and turns its error into a status.

use sextant_proto::v1::registry_server::Registry as RegistryApi;
use sextant_proto::v1::{
    DeregisterRequest, DeregisterResponse, DiscoverRequest, DiscoverResponse, KeepAliveRequest,
    RegisterRequest, RegisterResponse, WatchRequest,
};
use tonic::{Request, Response, Status, Streaming};

use super::{discover, keepalive, register, watch, NativeContext, NATIVE_NODE};

pub struct NativeRegistry {
    ctx: NativeContext,
}

impl NativeRegistry {
    pub fn new(ctx: NativeContext) -> Self {
        Self { ctx }
    }
}

#[tonic::async_trait]
impl RegistryApi for NativeRegistry {
    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        let revision = register::register(&self.ctx, request.into_inner()).await?;
        Ok(Response::new(RegisterResponse {
            revision,
            node: NATIVE_NODE.to_owned(),
        }))
    }

    async fn deregister(
        &self,
        request: Request<DeregisterRequest>,
    ) -> Result<Response<DeregisterResponse>, Status> {
        let DeregisterRequest { instance_id, node } = request.into_inner();
        let revision = register::deregister(&self.ctx, instance_id, node).await?;
        Ok(Response::new(DeregisterResponse { revision }))
    }

    type KeepAliveStream = keepalive::KeepAliveStream;

    async fn keep_alive(
        &self,
        request: Request<Streaming<KeepAliveRequest>>,
    ) -> Result<Response<Self::KeepAliveStream>, Status> {
        Ok(Response::new(keepalive::stream(
            self.ctx.clone(),
            request.into_inner(),
        )))
    }

    async fn discover(
        &self,
        request: Request<DiscoverRequest>,
    ) -> Result<Response<DiscoverResponse>, Status> {
        let found = discover::discover(&self.ctx, request.into_inner()).await?;
        Ok(Response::new(found))
    }

    type WatchStream = watch::WatchStream;

    async fn watch(
        &self,
        request: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let stream = watch::open(self.ctx.clone(), request.into_inner()).await?;
        Ok(Response::new(stream))
    }
}
