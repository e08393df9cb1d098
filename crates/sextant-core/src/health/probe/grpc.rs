//! gRPC checks: the standard `grpc.health.v1.Health/Check` call; only
//! `SERVING` passes. The target is `host:port`, optionally followed by
//! `/service` to ask about one service instead of the whole server.

use std::time::Duration;

use sextant_state::catalog::CheckStatus;
use tonic::transport::Endpoint;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use super::ProbeResult;

pub async fn probe(target: &str, use_tls: bool, timeout: Duration) -> ProbeResult {
    let critical = |why: String| {
        ProbeResult::new(CheckStatus::Critical, format!("gRPC check {target}: {why}"))
    };
    if use_tls {
        return critical("gRPC over TLS is not supported by this server yet".into());
    }
    let (authority, service) = target.split_once('/').unwrap_or((target, ""));
    let endpoint = match Endpoint::from_shared(format!("http://{authority}")) {
        Ok(endpoint) => endpoint.connect_timeout(timeout).timeout(timeout),
        Err(e) => return critical(format!("invalid target: {e}")),
    };
    let call = async {
        let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
        let mut client = HealthClient::new(channel);
        let request = HealthCheckRequest {
            service: service.to_owned(),
        };
        client
            .check(request)
            .await
            .map(|r| r.into_inner().status)
            .map_err(|status| format!("{}: {}", status.code(), status.message()))
    };
    match tokio::time::timeout(timeout, call).await {
        Err(_) => critical(format!("timed out after {timeout:?}")),
        Ok(Err(why)) => critical(why),
        Ok(Ok(status)) if status == ServingStatus::Serving as i32 => ProbeResult::new(
            CheckStatus::Passing,
            format!("gRPC check {target}: SERVING"),
        ),
        Ok(Ok(status)) => {
            let name = ServingStatus::try_from(status)
                .map(|s| s.as_str_name().to_owned())
                .unwrap_or_else(|_| status.to_string());
            critical(format!("status {name}"))
        }
    }
}
