//! Replacing a small file so that a crash leaves either the old content or the
//! new, never a mix: write a temporary file, fsync it, rename it over the old
//! one, fsync the directory.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// The suffix of the temporary file a replacement writes first.
pub const TMP_SUFFIX: &str = ".tmp";

/// fsyncs a directory so that creations, renames and deletions in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Durably replaces `dir/name` with `bytes`.
pub fn replace(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}
