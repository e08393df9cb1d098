//! Test-only storage faults, compiled in by the `failpoints` cargo feature and
//! switched on per server with the hidden `--failpoints` flag, the way etcd's
//! gofail builds are used by its robustness tests. A build without the feature
//! refuses every failpoint, so a released binary cannot be started with one.
//!
//! - `power-loss`: a SIGKILL of the process leaves the page cache intact, so
//!   it never tests the fsyncs. With this failpoint the writer records, after
//!   every fsync and before anything it covers is acknowledged, how many bytes
//!   of each segment are durable (in `synced.failpoint`, beside the segments);
//!   the next open discards every byte past that, as a power cut would.
//! - `fsync-error`: while a file named `fail-fsync` exists in the log
//!   directory, every fsync of a segment fails with an I/O error, as a failing
//!   disk's would.
//! - `unsynced-acks`: a planted bug for the safety harness to find: the group
//!   commit acknowledges appends once they are written, without fdatasync (a
//!   vote save still syncs them). Together with `power-loss`, acknowledged
//!   writes vanish in a whole-cluster crash.

use std::fmt;
use std::fs;
use std::io;
use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use super::meta_file;
use super::segment;
use super::segment::Segment;

/// The file whose presence makes log fsyncs fail (with `fsync-error`).
pub const FAIL_FSYNC_FILE: &str = "fail-fsync";

/// Durable lengths of the segments (with `power-loss`): `<file name> <bytes>` lines.
const SYNCED_FILE: &str = "synced.failpoint";

/// The failpoints one server runs with; all off by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Failpoints {
    pub power_loss: bool,
    pub fsync_error: bool,
    pub unsynced_acks: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FailpointError {
    #[error("this build has no failpoints (build the sextant binary with --features failpoints)")]
    NotCompiled,
    #[error("unknown failpoint {0:?} (known: power-loss, fsync-error, unsynced-acks)")]
    Unknown(String),
}

impl FromStr for Failpoints {
    type Err = FailpointError;

    /// A comma-separated list, e.g. `power-loss,fsync-error`; empty means none.
    fn from_str(text: &str) -> Result<Failpoints, FailpointError> {
        let mut failpoints = Failpoints::default();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if !cfg!(feature = "failpoints") {
                return Err(FailpointError::NotCompiled);
            }
            match name {
                "power-loss" => failpoints.power_loss = true,
                "fsync-error" => failpoints.fsync_error = true,
                "unsynced-acks" => failpoints.unsynced_acks = true,
                other => return Err(FailpointError::Unknown(other.to_owned())),
            }
        }
        Ok(failpoints)
    }
}

impl fmt::Display for Failpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = [
            (self.power_loss, "power-loss"),
            (self.fsync_error, "fsync-error"),
            (self.unsynced_acks, "unsynced-acks"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        f.write_str(&names.join(","))
    }
}

impl Failpoints {
    pub fn any(&self) -> bool {
        *self != Failpoints::default()
    }

    /// The injected error for an fsync in `dir`, if `fsync-error` is armed there.
    pub fn fsync_failure(&self, dir: &Path) -> Option<io::Error> {
        (self.fsync_error && dir.join(FAIL_FSYNC_FILE).exists()).then(|| {
            io::Error::other(format!(
                "injected fsync failure (failpoint fsync-error: {} exists)",
                dir.join(FAIL_FSYNC_FILE).display()
            ))
        })
    }

    /// Records how much of each segment is durable (with `power-loss`). A plain
    /// write: the page cache survives the SIGKILL this simulates a power cut for.
    pub fn record_synced(&self, dir: &Path, segments: &[Segment]) -> io::Result<()> {
        if !self.power_loss {
            return Ok(());
        }
        let mut text = String::new();
        for seg in segments {
            let name = segment::file_name(seg.first_index());
            text.push_str(&format!("{name} {}\n", seg.synced_len()));
        }
        fs::File::create(dir.join(SYNCED_FILE))?.write_all(text.as_bytes())
    }

    /// Before the log is opened (with `power-loss`): cuts every segment to its
    /// recorded durable length, and a segment created after the last record to
    /// nothing. Returns how many bytes were discarded. When anything was, the
    /// advisory committed id goes too: a crash may lose it, and it may now
    /// point past the log.
    pub fn discard_unsynced(&self, dir: &Path) -> io::Result<u64> {
        if !self.power_loss {
            return Ok(0);
        }
        let recorded = match fs::read_to_string(dir.join(SYNCED_FILE)) {
            Ok(text) => text,
            // Never recorded: the directory is new.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let durable = |name: &str| -> u64 {
            recorded
                .lines()
                .filter_map(|line| line.split_once(' '))
                .find(|(file, _)| *file == name)
                .and_then(|(_, len)| len.parse().ok())
                .unwrap_or(0)
        };
        let mut discarded = 0;
        for (_, path) in segment::list(dir)? {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let keep = durable(&name);
            let len = fs::metadata(&path)?.len();
            if len > keep {
                segment::trim_file(&path, keep)?;
                discarded += len - keep;
            }
        }
        if discarded > 0 {
            segment::remove_file(&dir.join(meta_file::COMMITTED))?;
            tracing::warn!(
                dir = %dir.display(),
                bytes = discarded,
                "failpoint power-loss: discarded log bytes that were never fsynced"
            );
        }
        Ok(discarded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_only_in_a_build_with_the_feature() {
        assert_eq!("".parse(), Ok(Failpoints::default()));
        let parsed = "power-loss, fsync-error".parse::<Failpoints>();
        if cfg!(feature = "failpoints") {
            let failpoints = parsed.expect("known failpoints");
            assert!(failpoints.power_loss && failpoints.fsync_error && !failpoints.unsynced_acks);
            assert_eq!(failpoints.to_string(), "power-loss,fsync-error");
            assert_eq!(
                "power-loss,melt".parse::<Failpoints>(),
                Err(FailpointError::Unknown("melt".to_owned()))
            );
        } else {
            assert_eq!(parsed, Err(FailpointError::NotCompiled));
        }
    }
}
