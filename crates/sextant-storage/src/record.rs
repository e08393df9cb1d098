//! Framing of one log record.
//!
//! A record is `[len: u32 LE][crc: u32 LE][payload]`, where `len` is the payload length and `crc`
//! is the CRC-32 (IEEE) of the four `len` bytes followed by the payload. Covering the length
//! makes a zero-filled tail (`len = 0, crc = 0`) fail the check instead of decoding as an empty
//! record. The payload is the bincode encoding of one Raft log entry.

use std::io;

/// Bytes of the record header (`len` + `crc`).
pub const HEADER_LEN: usize = 8;

/// Largest payload accepted. A header claiming more than this is treated as corruption.
pub const MAX_PAYLOAD_LEN: u32 = 1 << 30;

/// Checksum stored in a record header.
pub fn checksum(len_le: [u8; 4], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len_le);
    h.update(payload);
    h.finalize()
}

/// Reserves a header at the end of `buf`; the payload must be written after it and the record
/// completed with [`finish`]. Returns the position of the header.
pub fn begin(buf: &mut Vec<u8>) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; HEADER_LEN]);
    start
}

/// Fills in the header of the record that starts at `start` and whose payload runs to the end
/// of `buf`. Returns the framed length (header + payload).
pub fn finish(buf: &mut [u8], start: usize) -> io::Result<u32> {
    let payload_len = buf.len().saturating_sub(start + HEADER_LEN);
    let len = u32::try_from(payload_len)
        .ok()
        .filter(|l| *l <= MAX_PAYLOAD_LEN)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("log entry of {payload_len} bytes exceeds the {MAX_PAYLOAD_LEN}-byte record limit"),
            )
        })?;
    let len_le = len.to_le_bytes();
    let crc = checksum(len_le, &buf[start + HEADER_LEN..]);
    buf[start..start + 4].copy_from_slice(&len_le);
    buf[start + 4..start + HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    Ok(len + HEADER_LEN as u32)
}

/// Frames `payload` as one record appended to `buf`. Returns the framed length.
pub fn encode_into(buf: &mut Vec<u8>, payload: &[u8]) -> io::Result<u32> {
    let start = begin(buf);
    buf.extend_from_slice(payload);
    match finish(buf, start) {
        Ok(n) => Ok(n),
        Err(e) => {
            buf.truncate(start);
            Err(e)
        }
    }
}

/// Why the bytes at an offset are not an intact record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// The record runs past the end of the data: a torn (partially written) tail.
    Torn { needed: usize, available: usize },
    /// The length field is zero or larger than [`MAX_PAYLOAD_LEN`].
    BadLength(u32),
    /// The checksum does not match the length and payload.
    BadChecksum { stored: u32, computed: u32 },
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::Torn { needed, available } => {
                write!(
                    f,
                    "torn record: needs {needed} bytes, {available} available"
                )
            }
            RecordError::BadLength(len) => write!(f, "invalid record length {len}"),
            RecordError::BadChecksum { stored, computed } => {
                write!(
                    f,
                    "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
                )
            }
        }
    }
}

/// Decodes the record at the start of `data`. Returns the payload and the framed length.
pub fn decode(data: &[u8]) -> Result<(&[u8], usize), RecordError> {
    if data.len() < HEADER_LEN {
        return Err(RecordError::Torn {
            needed: HEADER_LEN,
            available: data.len(),
        });
    }
    let len_le = [data[0], data[1], data[2], data[3]];
    let len = u32::from_le_bytes(len_le);
    let stored = u32::from_le_bytes([data[4], data[5], data[6], data[7]]);
    if len == 0 || len > MAX_PAYLOAD_LEN {
        return Err(RecordError::BadLength(len));
    }
    let total = HEADER_LEN + len as usize;
    if data.len() < total {
        return Err(RecordError::Torn {
            needed: total,
            available: data.len(),
        });
    }
    let payload = &data[HEADER_LEN..total];
    let computed = checksum(len_le, payload);
    if computed != stored {
        return Err(RecordError::BadChecksum { stored, computed });
    }
    Ok((payload, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_damage() -> Result<(), Box<dyn std::error::Error>> {
        let mut buf = Vec::new();
        let n = encode_into(&mut buf, b"hello")?;
        assert_eq!(n as usize, buf.len());
        assert_eq!(decode(&buf), Ok((&b"hello"[..], buf.len())));
        for cut in 0..buf.len() {
            assert!(matches!(decode(&buf[..cut]), Err(RecordError::Torn { .. })));
        }
        buf[HEADER_LEN + 1] ^= 0x40;
        assert!(matches!(decode(&buf), Err(RecordError::BadChecksum { .. })));
        assert!(matches!(decode(&[0u8; 16]), Err(RecordError::BadLength(0))));
        Ok(())
    }
}
