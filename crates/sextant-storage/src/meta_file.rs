//! Small meta files (vote, last purged log id, committed log id), replaced atomically.
//!
//! A meta file holds exactly one record in the log's record format (length + checksum +
//! payload). It is replaced by writing `<name>.tmp`, fsyncing it, renaming it over `<name>` and
//! fsyncing the directory, so after a crash the file holds either the old or the new value.

use std::fs;
use std::io;
use std::path::Path;
use std::path::PathBuf;

use super::record;

/// File holding the vote.
pub const VOTE: &str = "vote.meta";
/// File holding the last purged log id.
pub const PURGED: &str = "purged.meta";
/// File holding the last committed log id.
pub const COMMITTED: &str = "committed.meta";

use crate::atomic_file::TMP_SUFFIX;

pub use crate::atomic_file::sync_dir;

/// Atomically replaces `dir/name` with `payload`. Durable when it returns `Ok`.
pub fn write_atomic(dir: &Path, name: &str, payload: &[u8]) -> io::Result<()> {
    let mut buf = Vec::with_capacity(payload.len() + record::HEADER_LEN);
    record::encode_into(&mut buf, payload)?;
    crate::atomic_file::replace(dir, name, &buf)
}

/// Why a meta file could not be read back.
#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    Corrupt(String),
}

/// Reads `dir/name`; `Ok(None)` if it does not exist.
pub fn read(dir: &Path, name: &str) -> Result<Option<Vec<u8>>, ReadError> {
    let data = match fs::read(dir.join(name)) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ReadError::Io(e)),
    };
    let (payload, used) = record::decode(&data).map_err(|e| ReadError::Corrupt(e.to_string()))?;
    if used != data.len() {
        return Err(ReadError::Corrupt(format!(
            "{} trailing bytes after the record",
            data.len() - used
        )));
    }
    Ok(Some(payload.to_vec()))
}

/// Removes `*.tmp` files left by an interrupted [`write_atomic`]. Returns the removed paths.
pub fn remove_temp_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for ent in fs::read_dir(dir)? {
        let ent = ent?;
        let name = ent.file_name();
        if name.to_string_lossy().ends_with(TMP_SUFFIX) && ent.file_type()?.is_file() {
            fs::remove_file(ent.path())?;
            removed.push(ent.path());
        }
    }
    Ok(removed)
}
