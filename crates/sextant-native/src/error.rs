//! Every failure a native client can receive, and the one place where it
//! becomes a gRPC status.

use tonic::{Code, Status};

use sextant_core::registry::RegistryError;

/// Why a native API call failed.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    /// The request is malformed; nothing was written.
    #[error("{0}")]
    InvalidArgument(String),
    /// The state machine refused the write (it changed nothing).
    #[error("refused: {0}")]
    Rejected(String),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("the server is shutting down")]
    ShuttingDown,
}

impl NativeError {
    /// A malformed request, with the reason the client reads.
    pub fn invalid(reason: impl Into<String>) -> Self {
        Self::InvalidArgument(reason.into())
    }

    fn code(&self) -> Code {
        match self {
            Self::InvalidArgument(_) | Self::Rejected(_) => Code::InvalidArgument,
            // Every write of this API is idempotent (register, deregister,
            // pass a TTL), so a write whose outcome is unknown is as safe to
            // retry elsewhere as one that was never made: Unavailable tells
            // the client exactly that.
            Self::Registry(
                RegistryError::NoLeader
                | RegistryError::Timeout { .. }
                | RegistryError::ShuttingDown
                | RegistryError::Indeterminate { .. }
                | RegistryError::Unavailable { .. },
            )
            | Self::ShuttingDown => Code::Unavailable,
            Self::Registry(RegistryError::Membership(_)) => Code::Internal,
        }
    }
}

impl From<NativeError> for Status {
    fn from(e: NativeError) -> Status {
        let code = e.code();
        if code == Code::Internal {
            tracing::warn!(error = %e, "native API request failed");
        }
        Status::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_leader_is_unavailable_and_bad_input_is_invalid() {
        let s = Status::from(NativeError::from(RegistryError::NoLeader));
        assert_eq!(s.code(), Code::Unavailable);
        assert_eq!(s.message(), "No cluster leader");
        let s = Status::from(NativeError::invalid("instance.id must not be empty"));
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(s.message(), "instance.id must not be empty");
    }
}
