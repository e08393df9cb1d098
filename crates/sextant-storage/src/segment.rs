//! One segment file: `log-<first_index:020>.seg`, a sequence of records holding consecutive
//! log indexes starting at `first_index`.

use std::fs;
use std::fs::File;
use std::fs::OpenOptions;
use std::io;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;

use super::error::OpenError;
use super::record;

const PREFIX: &str = "log-";
const SUFFIX: &str = ".seg";

/// File name of the segment whose first entry has index `first_index`.
pub fn file_name(first_index: u64) -> String {
    format!("{PREFIX}{first_index:020}{SUFFIX}")
}

/// Parses a segment file name back into its first index.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Segment files in `dir`, sorted by first index.
pub fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for ent in fs::read_dir(dir)? {
        let ent = ent?;
        if let Some(first) = ent.file_name().to_str().and_then(parse_file_name) {
            out.push((first, ent.path()));
        }
    }
    out.sort_by_key(|(first, _)| *first);
    Ok(out)
}

/// Removes a file, treating "already gone" as success.
pub fn remove_file(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Cuts the file at `len` and makes the new size durable.
pub fn trim_file(path: &Path, len: u64) -> io::Result<()> {
    let f = OpenOptions::new().write(true).open(path)?;
    f.set_len(len)?;
    f.sync_all()
}

/// The writer's view of one segment file.
#[derive(Debug)]
pub struct Segment {
    path: PathBuf,
    first_index: u64,
    /// Start offset of each record; record `i` holds index `first_index + i`.
    offsets: Vec<u64>,
    /// Bytes of intact records (the write position).
    len: u64,
    /// Open handle, kept for the segment being appended to.
    file: Option<File>,
    /// Written since the last sync.
    dirty: bool,
    /// Bytes known to be on disk: up to the last sync (what the `power-loss`
    /// failpoint keeps).
    synced_len: u64,
}

impl Segment {
    /// Creates (or empties) the segment file for `first_index`. The caller fsyncs the directory.
    pub fn create(dir: &Path, first_index: u64) -> io::Result<Segment> {
        let path = dir.join(file_name(first_index));
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)?;
        // Reopen in append mode so writes always land at the end.
        drop(file);
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok(Segment {
            path,
            first_index,
            offsets: Vec::new(),
            len: 0,
            file: Some(file),
            dirty: false,
            synced_len: 0,
        })
    }

    /// A segment found intact by recovery. Its file holds exactly `len` bytes.
    pub fn recovered(path: PathBuf, first_index: u64, offsets: Vec<u64>, len: u64) -> Segment {
        Segment {
            path,
            first_index,
            offsets,
            len,
            file: None,
            dirty: false,
            synced_len: len,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn first_index(&self) -> u64 {
        self.first_index
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn count(&self) -> u64 {
        self.offsets.len() as u64
    }

    /// Index the next appended record must have.
    pub fn next_index(&self) -> u64 {
        self.first_index + self.count()
    }

    /// Index of the last record, if any.
    pub fn last_index(&self) -> Option<u64> {
        (self.count() > 0).then(|| self.next_index() - 1)
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    pub fn synced_len(&self) -> u64 {
        self.synced_len
    }

    fn file(&mut self) -> io::Result<&mut File> {
        match &mut self.file {
            Some(f) => Ok(f),
            slot => {
                let f = OpenOptions::new().append(true).open(&self.path)?;
                Ok(slot.insert(f))
            }
        }
    }

    /// Appends already framed records (`bytes` is their concatenation, `record_lens` their
    /// framed lengths). Not durable until [`Segment::sync`].
    pub fn append(&mut self, bytes: &[u8], record_lens: &[u32]) -> io::Result<()> {
        self.dirty = true;
        self.file()?.write_all(bytes)?;
        let mut off = self.len;
        for len in record_lens {
            self.offsets.push(off);
            off += u64::from(*len);
        }
        self.len = off;
        Ok(())
    }

    /// fdatasyncs the segment if it was written to. Returns whether a sync was issued.
    pub fn sync(&mut self) -> io::Result<bool> {
        if !self.dirty {
            return Ok(false);
        }
        self.file()?.sync_data()?;
        self.dirty = false;
        self.synced_len = self.len;
        Ok(true)
    }

    /// Closes the file handle (the segment is no longer appended to).
    pub fn close(&mut self) {
        self.file = None;
    }

    /// Removes records with index `>= index` (which must lie inside this segment) and makes the
    /// cut durable.
    pub fn truncate_from(&mut self, index: u64) -> io::Result<()> {
        let Some(pos) = index
            .checked_sub(self.first_index)
            .filter(|p| *p < self.count())
        else {
            return Ok(());
        };
        let pos = pos as usize;
        let cut = self.offsets[pos];
        let f = self.file()?;
        f.set_len(cut)?;
        f.sync_all()?;
        self.offsets.truncate(pos);
        self.len = cut;
        self.dirty = false;
        self.synced_len = cut;
        Ok(())
    }
}

/// What the caller of [`scan`] decides about one intact record.
pub enum Visit {
    /// The record belongs to the log.
    Accept,
    /// The record is intact but must not be part of the log (e.g. an index discontinuity).
    Reject(String),
}

/// Where and why a scan stopped before the end of the file.
#[derive(Debug)]
pub struct Stop {
    pub offset: u64,
    pub reason: String,
}

/// Result of scanning one segment file.
#[derive(Debug)]
pub struct ScanOutcome {
    /// Start offsets of the accepted records.
    pub offsets: Vec<u64>,
    /// End of the last accepted record.
    pub valid_len: u64,
    /// Size of the file.
    pub file_len: u64,
    /// Set when the file holds anything after `valid_len`.
    pub stop: Option<Stop>,
}

/// Reads `path` and hands each intact record to `visit` (with its offset) until the end of the
/// file, a damaged record, or a record `visit` rejects.
pub fn scan(
    path: &Path,
    mut visit: impl FnMut(u64, &[u8]) -> Result<Visit, OpenError>,
) -> Result<ScanOutcome, OpenError> {
    let data = fs::read(path).map_err(OpenError::io(path))?;
    let file_len = data.len() as u64;
    let mut offsets = Vec::new();
    let mut pos = 0usize;
    let mut stop = None;
    while pos < data.len() {
        let offset = pos as u64;
        match record::decode(&data[pos..]) {
            Ok((payload, used)) => match visit(offset, payload)? {
                Visit::Accept => {
                    offsets.push(offset);
                    pos += used;
                }
                Visit::Reject(reason) => {
                    stop = Some(Stop { offset, reason });
                    break;
                }
            },
            Err(e) => {
                stop = Some(Stop {
                    offset,
                    reason: e.to_string(),
                });
                break;
            }
        }
    }
    Ok(ScanOutcome {
        offsets,
        valid_len: pos as u64,
        file_len,
        stop,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(file_name(42), "log-00000000000000000042.seg");
        assert_eq!(parse_file_name(&file_name(42)), Some(42));
        assert_eq!(parse_file_name(&file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_file_name("log-42.seg"), None);
        assert_eq!(parse_file_name("log-0000000000000000004x.seg"), None);
        assert_eq!(parse_file_name("vote.meta"), None);
    }
}
