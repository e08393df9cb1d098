//! The one place where failures of the Nacos API become HTTP answers.
//!
//! Nacos answers a bad parameter with HTTP 400 and a plain-text body listing
//! the exception's causes, each as `caused: <message>;`; a missing resource
//! with its status and the same body. Clients show that text as it is.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use sextant_core::registry::RegistryError;

/// Why a Nacos request failed.
#[derive(Debug, thiserror::Error)]
pub enum NacosError {
    /// A parameter is missing or malformed; nothing was changed.
    #[error("{0}")]
    BadRequest(String),
    /// The instance or service asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The replicated state could not be reached or written.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Anything else that went wrong on this server.
    #[error("{0}")]
    Internal(String),
}

impl NacosError {
    /// A refused parameter, with the reason the client sees.
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::BadRequest(reason.into())
    }

    /// Nacos's message for a required parameter that is absent.
    pub fn required(name: &str) -> Self {
        Self::BadRequest(format!("Param '{name}' is required."))
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            // Worth retrying (Nacos clients try another server).
            Self::Registry(
                RegistryError::NoLeader
                | RegistryError::Timeout { .. }
                | RegistryError::ShuttingDown
                | RegistryError::Indeterminate { .. },
            ) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Registry(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for NacosError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, "Nacos request failed");
        }
        (status, format!("caused: {self};")).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn errors_have_nacos_shape() {
        let response = NacosError::required("ip").into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .expect("body");
        assert_eq!(&body[..], b"caused: Param 'ip' is required.;");
    }
}
