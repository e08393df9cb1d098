//! The snapshot file: a small header, then the state machine's snapshot
//! bytes (`StateMachine::encode_snapshot`).
//!
//! ```text
//! offset  size  field
//!      0     8  magic "SXTSNAP\n"
//!      8     2  archive format version (little-endian), 1
//!     10     8  revision the snapshot was taken at
//!     18     8  length of the body in bytes
//!     26     4  CRC-32 of bytes 0..26 followed by the body
//!     30     …  body
//! ```
//!
//! The header says how long the body must be, so a truncated file is told
//! apart from a damaged one, and the checksum covers the header's fields
//! too. [`Verifier`] checks a file as it streams by (the CLI saves without
//! holding the file in memory); [`open`] checks one held whole.

/// Identifies a Sextant snapshot file.
pub const MAGIC: [u8; 8] = *b"SXTSNAP\n";
/// The archive layout this build writes and reads.
pub const ARCHIVE_VERSION: u16 = 1;
/// Bytes before the body.
pub const HEADER_LEN: usize = 30;
/// Bytes of the header covered by the checksum (all but the checksum).
const CHECKED_HEADER_LEN: usize = 26;

/// Why a file is not a usable snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a Sextant snapshot file (bad magic)")]
    BadMagic,
    #[error("snapshot archive version {found} is not supported (this build reads {supported})")]
    UnsupportedVersion { found: u16, supported: u16 },
    #[error("snapshot is truncated: {got} of {expected} bytes")]
    Truncated { expected: u64, got: u64 },
    #[error("snapshot has {extra} bytes past its declared end")]
    TrailingBytes { extra: u64 },
    #[error("snapshot checksum mismatch (file is corrupt): header says {expected:#010x}, content gives {actual:#010x}")]
    ChecksumMismatch { expected: u32, actual: u32 },
}

/// What the header of a snapshot file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The revision (Raft index) the state was taken at.
    pub revision: u64,
    /// Length of the body that follows the header.
    pub body_len: u64,
    /// CRC-32 of the header's other fields and the body.
    pub checksum: u32,
}

fn checked_fields(revision: u64, body_len: u64) -> [u8; CHECKED_HEADER_LEN] {
    let mut fields = [0u8; CHECKED_HEADER_LEN];
    fields[..8].copy_from_slice(&MAGIC);
    fields[8..10].copy_from_slice(&ARCHIVE_VERSION.to_le_bytes());
    fields[10..18].copy_from_slice(&revision.to_le_bytes());
    fields[18..26].copy_from_slice(&body_len.to_le_bytes());
    fields
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(bytes);
    u64::from_le_bytes(buf)
}

impl Header {
    /// The header of a file holding `body`, taken at `revision`.
    pub fn for_body(revision: u64, body: &[u8]) -> Header {
        let body_len = body.len() as u64;
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&checked_fields(revision, body_len));
        hasher.update(body);
        Header {
            revision,
            body_len,
            checksum: hasher.finalize(),
        }
    }

    /// The header's bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut bytes = [0u8; HEADER_LEN];
        bytes[..CHECKED_HEADER_LEN].copy_from_slice(&checked_fields(self.revision, self.body_len));
        bytes[CHECKED_HEADER_LEN..].copy_from_slice(&self.checksum.to_le_bytes());
        bytes
    }

    /// Reads a header from the first [`HEADER_LEN`] bytes of a file; the
    /// checksum is checked later, against the body.
    pub fn decode(bytes: &[u8]) -> Result<Header, ArchiveError> {
        if bytes.len() >= MAGIC.len() && bytes[..MAGIC.len()] != MAGIC {
            return Err(ArchiveError::BadMagic);
        }
        if bytes.len() < HEADER_LEN {
            return Err(ArchiveError::Truncated {
                expected: HEADER_LEN as u64,
                got: bytes.len() as u64,
            });
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != ARCHIVE_VERSION {
            return Err(ArchiveError::UnsupportedVersion {
                found: version,
                supported: ARCHIVE_VERSION,
            });
        }
        let mut checksum = [0u8; 4];
        checksum.copy_from_slice(&bytes[CHECKED_HEADER_LEN..HEADER_LEN]);
        Ok(Header {
            revision: le_u64(&bytes[10..18]),
            body_len: le_u64(&bytes[18..26]),
            checksum: u32::from_le_bytes(checksum),
        })
    }

    /// The whole file's length.
    pub fn file_len(&self) -> u64 {
        self.body_len.saturating_add(HEADER_LEN as u64)
    }
}

/// Checks a snapshot file fed to it in pieces of any size.
#[derive(Debug, Default)]
pub struct Verifier {
    /// The header's bytes until all have arrived.
    pending: Vec<u8>,
    header: Option<Header>,
    hasher: crc32fast::Hasher,
    body_seen: u64,
}

impl Verifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// The header, once its bytes have all been seen.
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// Feeds the next bytes of the file. Fails as soon as the header is
    /// wrong or the file runs past its declared length.
    pub fn update(&mut self, mut chunk: &[u8]) -> Result<(), ArchiveError> {
        if self.header.is_none() {
            let wanted = HEADER_LEN - self.pending.len();
            let (head, rest) = chunk.split_at(wanted.min(chunk.len()));
            self.pending.extend_from_slice(head);
            chunk = rest;
            if self.pending.len() < HEADER_LEN {
                // A wrong magic is known from the first 8 bytes.
                if self.pending.len() >= MAGIC.len() && self.pending[..MAGIC.len()] != MAGIC {
                    return Err(ArchiveError::BadMagic);
                }
                return Ok(());
            }
            let header = Header::decode(&self.pending)?;
            self.hasher.update(&self.pending[..CHECKED_HEADER_LEN]);
            self.header = Some(header);
        }
        let Some(header) = self.header else {
            return Ok(());
        };
        let seen = self.body_seen.saturating_add(chunk.len() as u64);
        if seen > header.body_len {
            return Err(ArchiveError::TrailingBytes {
                extra: seen - header.body_len,
            });
        }
        self.hasher.update(chunk);
        self.body_seen = seen;
        Ok(())
    }

    /// Ends the file: it must be whole and its checksum must match.
    pub fn finish(self) -> Result<Header, ArchiveError> {
        let Some(header) = self.header else {
            if self.pending.len() >= MAGIC.len() && self.pending[..MAGIC.len()] != MAGIC {
                return Err(ArchiveError::BadMagic);
            }
            return Err(ArchiveError::Truncated {
                expected: HEADER_LEN as u64,
                got: self.pending.len() as u64,
            });
        };
        if self.body_seen < header.body_len {
            return Err(ArchiveError::Truncated {
                expected: header.file_len(),
                got: self.body_seen.saturating_add(HEADER_LEN as u64),
            });
        }
        let actual = self.hasher.finalize();
        if actual != header.checksum {
            return Err(ArchiveError::ChecksumMismatch {
                expected: header.checksum,
                actual,
            });
        }
        Ok(header)
    }
}

/// Checks a whole snapshot file; returns its header and its body.
pub fn open(file: &[u8]) -> Result<(Header, &[u8]), ArchiveError> {
    let mut verifier = Verifier::new();
    verifier.update(file)?;
    let header = verifier.finish()?;
    Ok((header, &file[HEADER_LEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(revision: u64, body: &[u8]) -> Vec<u8> {
        let mut bytes = Header::for_body(revision, body).encode().to_vec();
        bytes.extend_from_slice(body);
        bytes
    }

    #[test]
    fn a_whole_file_opens_to_its_header_and_body() {
        let body: Vec<u8> = (0..5000u32).map(|n| (n % 251) as u8).collect();
        let bytes = file(42, &body);
        let (header, opened) = open(&bytes).expect("valid");
        assert_eq!(header.revision, 42);
        assert_eq!(header.body_len, 5000);
        assert_eq!(header.file_len(), bytes.len() as u64);
        assert_eq!(opened, body.as_slice());
    }

    #[test]
    fn pieces_of_any_size_verify_like_the_whole() {
        let body: Vec<u8> = (0..777u32).map(|n| (n * 7) as u8).collect();
        let bytes = file(9, &body);
        for piece in [1, 3, 29, 30, 31, 500, 10_000] {
            let mut verifier = Verifier::new();
            for chunk in bytes.chunks(piece) {
                verifier.update(chunk).expect("valid piece");
            }
            assert_eq!(
                verifier.finish().map(|h| h.revision),
                Ok(9),
                "pieces of {piece}"
            );
        }
    }

    #[test]
    fn every_truncation_is_reported_as_one() {
        let bytes = file(3, b"some state");
        for cut in 0..bytes.len() {
            assert!(
                matches!(open(&bytes[..cut]), Err(ArchiveError::Truncated { .. })),
                "cut at {cut}: {:?}",
                open(&bytes[..cut])
            );
        }
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let bytes = file(3, b"some state to protect");
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x20;
            assert!(open(&damaged).is_err(), "flip at {at} went unnoticed");
        }
    }

    #[test]
    fn extra_bytes_and_foreign_files_are_refused() {
        let mut bytes = file(3, b"state");
        bytes.push(0);
        assert_eq!(open(&bytes), Err(ArchiveError::TrailingBytes { extra: 1 }));
        assert_eq!(
            open(b"PK\x03\x04 a zip file, not a snapshot"),
            Err(ArchiveError::BadMagic)
        );
        let mut newer = file(3, b"state");
        newer[8] = 2;
        assert!(matches!(
            open(&newer),
            Err(ArchiveError::UnsupportedVersion { found: 2, .. })
        ));
    }
}
