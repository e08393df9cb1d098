//! Every error an etcd client can receive from Sextant, and the one place
//! where it becomes a gRPC status. clientv3 maps statuses back to typed
//! errors by their exact message, so the strings below are etcd's own.

use sextant_state::txn::TxnInvalid;
use sextant_state::ApplyError;
use tonic::{Code, Status};

use sextant_core::registry::RegistryError;

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    #[error("etcdserver: key not found")]
    KeyNotFound,
    #[error("etcdserver: value is provided")]
    ValueProvided,
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision,
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    #[error("etcdserver: member not found")]
    MemberNotFound,
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    /// Writes to the read-only catalog view.
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    #[error("etcdserver: no leader")]
    NoLeader,
    #[error("etcdserver: request timed out")]
    Timeout,
    #[error("etcdserver: request timed out, possibly due to connection lost")]
    ConnectionLost,
    #[error("etcdserver: server stopped")]
    Stopped,
    #[error("etcdserver: {0}")]
    InvalidArgument(String),
    #[error("etcdserver: {0}")]
    Internal(String),
}

impl EtcdError {
    fn code(&self) -> Code {
        match self {
            EtcdError::EmptyKey
            | EtcdError::KeyNotFound
            | EtcdError::ValueProvided
            | EtcdError::LeaseProvided
            | EtcdError::TooManyOps
            | EtcdError::DuplicateKey
            | EtcdError::RequestTooLarge
            | EtcdError::InvalidArgument(_) => Code::InvalidArgument,
            EtcdError::Compacted | EtcdError::FutureRevision | EtcdError::LeaseTtlTooLarge => {
                Code::OutOfRange
            }
            EtcdError::LeaseNotFound | EtcdError::MemberNotFound => Code::NotFound,
            EtcdError::LeaseExists | EtcdError::PeerUrlExists => Code::FailedPrecondition,
            EtcdError::PermissionDenied => Code::PermissionDenied,
            EtcdError::NoLeader
            | EtcdError::Timeout
            | EtcdError::ConnectionLost
            | EtcdError::Stopped => Code::Unavailable,
            EtcdError::Internal(_) => Code::Internal,
        }
    }
}

impl From<EtcdError> for Status {
    fn from(e: EtcdError) -> Status {
        Status::new(e.code(), e.to_string())
    }
}

impl From<ApplyError> for EtcdError {
    fn from(e: ApplyError) -> EtcdError {
        match e {
            ApplyError::Compacted { .. } => EtcdError::Compacted,
            ApplyError::FutureRevision { .. } => EtcdError::FutureRevision,
            ApplyError::UnknownLease { .. } => EtcdError::LeaseNotFound,
            ApplyError::LeaseExists { .. } => EtcdError::LeaseExists,
            ApplyError::KeyNotFound { .. } => EtcdError::KeyNotFound,
            other => EtcdError::Internal(other.to_string()),
        }
    }
}

impl From<TxnInvalid> for EtcdError {
    fn from(e: TxnInvalid) -> EtcdError {
        match e {
            TxnInvalid::TooManyOps => EtcdError::TooManyOps,
            TxnInvalid::DuplicateKey => EtcdError::DuplicateKey,
        }
    }
}

impl From<RegistryError> for EtcdError {
    fn from(e: RegistryError) -> EtcdError {
        match e {
            RegistryError::NoLeader
            | RegistryError::Timeout { .. }
            | RegistryError::Unavailable { .. } => EtcdError::Timeout,
            RegistryError::ShuttingDown => EtcdError::Stopped,
            RegistryError::Indeterminate { .. } => EtcdError::ConnectionLost,
            RegistryError::Membership(reason) => EtcdError::InvalidArgument(reason),
        }
    }
}

/// Shorthand for the adapters: any of the errors above, as a status.
pub fn status(e: impl Into<EtcdError>) -> Status {
    Status::from(e.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_carry_etcds_codes_and_messages() {
        let s = status(ApplyError::Compacted {
            revision: 1,
            compacted: 5,
        });
        assert_eq!(s.code(), Code::OutOfRange);
        assert_eq!(
            s.message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
        let s = status(TxnInvalid::DuplicateKey);
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(
            s.message(),
            "etcdserver: duplicate key given in txn request"
        );
        let s = status(ApplyError::UnknownLease { id: 3 });
        assert_eq!(s.code(), Code::NotFound);
        assert_eq!(s.message(), "etcdserver: requested lease not found");
    }
}
