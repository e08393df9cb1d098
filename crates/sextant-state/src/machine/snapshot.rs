//! The snapshot codec: the whole state as bytes, for Raft snapshots and for
//! `sextant snapshot save/restore`.
//!
//! Every replica must produce the same bytes for the same state, which holds
//! because the state has only ordered containers. The first byte is the
//! format version, so that a later format can still read or refuse an older
//! one. Decoding trusts nothing: any input yields a state or an error, and a
//! decoded state must pass the invariant check before it is used.

use bincode::Options;

use super::StateMachine;

/// The format `encode_snapshot` writes: a version byte, then the state in
/// bincode (varint integers, little-endian).
/// Version 2 added the etcd cluster id.
pub const SNAPSHOT_FORMAT_VERSION: u8 = 2;

#[derive(thiserror::Error, Debug)]
pub enum SnapshotError {
    #[error("snapshot is empty")]
    Empty,
    #[error("snapshot format version {found} is not supported (this build reads {supported})")]
    UnsupportedVersion { found: u8, supported: u8 },
    #[error("snapshot encoding failed")]
    Encode(#[source] bincode::Error),
    #[error("snapshot is corrupt")]
    Corrupt(#[source] bincode::Error),
    #[error("snapshot decodes to an inconsistent state: {reason}")]
    Inconsistent { reason: String },
}

fn codec() -> impl Options {
    bincode::DefaultOptions::new()
}

impl StateMachine {
    /// The whole state as bytes. It cannot fail for this state's types
    /// (bincode fails only on unsized sequences or custom serializers); the
    /// error is passed on rather than assumed away.
    pub fn encode_snapshot(&self) -> Result<Vec<u8>, SnapshotError> {
        let mut bytes = vec![SNAPSHOT_FORMAT_VERSION];
        codec()
            .serialize_into(&mut bytes, self)
            .map_err(SnapshotError::Encode)?;
        Ok(bytes)
    }

    /// A state from bytes written by `encode_snapshot`. Anything else —
    /// truncated, corrupted, of another version, or decoding to a state that
    /// breaks an invariant — is an error, never a panic.
    pub fn decode_snapshot(bytes: &[u8]) -> Result<StateMachine, SnapshotError> {
        let (&version, body) = bytes.split_first().ok_or(SnapshotError::Empty)?;
        if version != SNAPSHOT_FORMAT_VERSION {
            return Err(SnapshotError::UnsupportedVersion {
                found: version,
                supported: SNAPSHOT_FORMAT_VERSION,
            });
        }
        let machine: StateMachine = codec()
            // No length read from the input may claim more than the input holds.
            .with_limit(u64::try_from(body.len()).unwrap_or(u64::MAX))
            .deserialize(body)
            .map_err(SnapshotError::Corrupt)?;
        machine
            .check_invariants()
            .map_err(|reason| SnapshotError::Inconsistent { reason })?;
        Ok(machine)
    }
}
