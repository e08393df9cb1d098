//! The state-machine snapshot on disk: one file, replaced atomically.
//!
//! Layout: `MAGIC (8 bytes) | crc32 of body (u32 LE) | body length (u64 LE) | body`,
//! where the body is bincode of [`StoredSnapshot`]. The file is written to a
//! temporary name, fsynced, renamed over the old one, and the directory fsynced,
//! so a crash leaves either the old snapshot or the new one, never a mix.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::SnapshotMeta;

const MAGIC: &[u8; 8] = b"SXSNAP01";
const FILE_NAME: &str = "state.snap";
const HEADER_LEN: usize = MAGIC.len() + 4 + 8;

/// A snapshot as kept on disk: openraft's metadata and the encoded state machine.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct StoredSnapshot {
    pub meta: SnapshotMeta,
    pub data: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    #[error("snapshot file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("snapshot file {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// Where the current snapshot of one server lives.
#[derive(Clone, Debug)]
pub struct SnapshotFile {
    dir: PathBuf,
}

impl SnapshotFile {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Durably replaces the current snapshot with `snapshot`.
    pub fn save(&self, snapshot: &StoredSnapshot) -> Result<(), SnapshotFileError> {
        let path = self.path();
        let io_err = |source| SnapshotFileError::Io {
            path: path.clone(),
            source,
        };
        let body = bincode::serialize(snapshot).map_err(|e| SnapshotFileError::Corrupt {
            path: path.clone(),
            reason: format!("cannot encode: {e}"),
        })?;
        fs::create_dir_all(&self.dir).map_err(io_err)?;
        let mut bytes = Vec::with_capacity(HEADER_LEN + body.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&body);
        crate::atomic_file::replace(&self.dir, FILE_NAME, &bytes).map_err(io_err)
    }

    /// Reads the current snapshot, if one was ever saved.
    pub fn load(&self) -> Result<Option<StoredSnapshot>, SnapshotFileError> {
        let path = self.path();
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(mut f) => f
                .read_to_end(&mut bytes)
                .map_err(|source| SnapshotFileError::Io {
                    path: path.clone(),
                    source,
                })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(SnapshotFileError::Io { path, source }),
        };
        decode(&bytes)
            .map(Some)
            .map_err(|reason| SnapshotFileError::Corrupt { path, reason })
    }
}

fn decode(bytes: &[u8]) -> Result<StoredSnapshot, String> {
    if bytes.len() < HEADER_LEN || &bytes[..MAGIC.len()] != MAGIC {
        return Err("bad header".into());
    }
    let crc = u32::from_le_bytes(read_array(&bytes[8..12]));
    let len = u64::from_le_bytes(read_array(&bytes[12..20]));
    let body = &bytes[HEADER_LEN..];
    if body.len() as u64 != len {
        return Err(format!("length {} but header says {len}", body.len()));
    }
    if crc32fast::hash(body) != crc {
        return Err("checksum mismatch".into());
    }
    bincode::deserialize(body).map_err(|e| format!("cannot decode: {e}"))
}

fn read_array<const N: usize>(slice: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&slice[..N]);
    out
}
