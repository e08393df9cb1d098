//! The state-machine snapshot on disk: one file, replaced atomically.
//!
//! Layout: `MAGIC (8 bytes) | crc32 of body (u32 LE) | body length (u64 LE) | body`,
//! where the body is bincode of [`StoredSnapshot`]. The file is written to a
//! temporary name, fsynced, renamed over the old one, and the directory fsynced,
//! so a crash leaves either the old snapshot or the new one, never a mix.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::{LogId, SnapshotMeta};

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
    /// The last log id covered by the snapshot on disk, as far as this
    /// process knows. Held while saving: openraft builds snapshots in a task of
    /// their own, so a build and an install can finish at the same time, and
    /// the older must never replace the newer (the log before the newer one
    /// may already be purged).
    on_disk: Arc<Mutex<Option<LogId>>>,
}

impl SnapshotFile {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            on_disk: Arc::default(),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Durably replaces the current snapshot with `snapshot`.
    /// Does nothing if the snapshot on disk already covers as much.
    pub fn save(&self, snapshot: &StoredSnapshot) -> Result<(), SnapshotFileError> {
        let mut on_disk = self.on_disk.lock().unwrap_or_else(|e| e.into_inner());
        if on_disk.is_some() && snapshot.meta.last_log_id <= *on_disk {
            return Ok(());
        }
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
        sextant_storage::atomic_file::replace(&self.dir, FILE_NAME, &bytes).map_err(io_err)?;
        *on_disk = snapshot.meta.last_log_id;
        Ok(())
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
        let stored =
            decode(&bytes).map_err(|reason| SnapshotFileError::Corrupt { path, reason })?;
        let mut on_disk = self.on_disk.lock().unwrap_or_else(|e| e.into_inner());
        *on_disk = (*on_disk).max(stored.meta.last_log_id);
        Ok(Some(stored))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(index: u64) -> StoredSnapshot {
        StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: Some(LogId::new(openraft::CommittedLeaderId::new(1, 1), index)),
                last_membership: Default::default(),
                snapshot_id: format!("s{index}"),
            },
            data: vec![index as u8; 3],
        }
    }

    #[test]
    fn an_older_snapshot_never_replaces_a_newer_one() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let file = SnapshotFile::new(dir.path());
        file.save(&snapshot(20)).expect("save 20");
        file.save(&snapshot(10)).expect("save 10");
        let loaded = file.load().expect("load").expect("a snapshot");
        assert_eq!(loaded.meta.snapshot_id, "s20");
        // Another process (a restart) knows what is on disk after loading it.
        let reopened = SnapshotFile::new(dir.path());
        reopened.load().expect("load");
        reopened.save(&snapshot(15)).expect("save 15");
        assert_eq!(
            reopened
                .load()
                .expect("load")
                .expect("a snapshot")
                .meta
                .snapshot_id,
            "s20"
        );
        file.save(&snapshot(30)).expect("save 30");
        assert_eq!(
            file.load()
                .expect("load")
                .expect("a snapshot")
                .meta
                .snapshot_id,
            "s30"
        );
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let file = SnapshotFile::new(dir.path());
        file.save(&snapshot(5)).expect("save");
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).expect("write");
        assert!(matches!(
            file.load(),
            Err(SnapshotFileError::Corrupt { .. })
        ));
        std::fs::write(&path, &bytes[..10]).expect("write");
        assert!(matches!(
            file.load(),
            Err(SnapshotFileError::Corrupt { .. })
        ));
    }
}
