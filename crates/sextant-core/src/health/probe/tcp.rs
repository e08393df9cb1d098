//! TCP checks: passing when a connection opens within the timeout.

use std::time::Duration;

use sextant_state::catalog::CheckStatus;
use tokio::net::TcpStream;

use super::ProbeResult;

pub async fn probe(address: &str, timeout: Duration) -> ProbeResult {
    match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Ok(Ok(_)) => ProbeResult::new(
            CheckStatus::Passing,
            format!("TCP connect {address}: Success"),
        ),
        Ok(Err(e)) => {
            ProbeResult::new(CheckStatus::Critical, format!("TCP connect {address}: {e}"))
        }
        Err(_) => ProbeResult::new(
            CheckStatus::Critical,
            format!("TCP connect {address}: timed out after {timeout:?}"),
        ),
    }
}
