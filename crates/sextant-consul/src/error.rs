//! The one place where failures become HTTP answers. Consul's clients read a
//! plain-text reason in the body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use sextant_core::registry::RegistryError;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    BadRequest(String),
    #[error("Request body({size} bytes) too large, max size: {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{0}")]
    Internal(String),
}

impl HttpError {
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::BadRequest(reason.into())
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Registry(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, "request failed");
        }
        (status, self.to_string()).into_response()
    }
}
