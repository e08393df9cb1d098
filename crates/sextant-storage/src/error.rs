//! Errors raised while opening and recovering the log directory.

use std::io;
use std::path::PathBuf;

use openraft::AnyError;
use openraft::ErrorSubject;
use openraft::ErrorVerb;
use openraft::NodeId;
use openraft::StorageError;
use openraft::StorageIOError;

/// Failure to open or recover a [`LogStore`](super::LogStore).
///
/// Torn or corrupt log tails are *not* errors: recovery trims them (with a warning). These
/// errors mean the directory cannot be used safely without an operator looking at it.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// An I/O operation on `path` failed.
    #[error("log store I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A meta file (vote, purged id) failed its checksum or could not be decoded. These files
    /// are written atomically and fsynced, so this indicates media corruption.
    #[error("corrupt meta file {}: {reason}", path.display())]
    CorruptMeta { path: PathBuf, reason: String },

    /// A log record passed its checksum but its payload is not a decodable entry: the file was
    /// written by an incompatible version. Recovery refuses to trim it away.
    #[error("undecodable log entry in {} at offset {offset}: {reason}", path.display())]
    Decode {
        path: PathBuf,
        offset: u64,
        reason: String,
    },

    /// The configuration is unusable.
    #[error("invalid log store configuration: {0}")]
    Config(String),

    /// The writer thread could not be started.
    #[error("failed to spawn the log writer thread: {0}")]
    Spawn(#[source] io::Error),
}

impl OpenError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> OpenError {
        let path = path.into();
        move |source| OpenError::Io { path, source }
    }
}

impl<NID: NodeId> From<OpenError> for StorageError<NID> {
    fn from(e: OpenError) -> Self {
        StorageError::IO {
            source: StorageIOError::new(ErrorSubject::Store, ErrorVerb::Read, AnyError::new(&e)),
        }
    }
}
