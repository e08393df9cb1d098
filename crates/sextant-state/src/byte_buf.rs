//! Serde for a `Vec<u8>` field as one byte string instead of a sequence of
//! numbers. In bincode both have the same bytes on the wire (a length, then
//! the bytes), but a sequence is written and read one element at a time; a
//! multi-megabyte field must be a single copy, or encoding it for an
//! AppendEntries message takes longer than openraft lets that message take.

use serde::de::{Deserializer, Error, SeqAccess, Visitor};
use serde::Serializer;

/// Writes the bytes as one byte string.
pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(bytes)
}

/// Reads a byte string, or a sequence of numbers (what formats without byte
/// strings, such as JSON, write for one).
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    deserializer.deserialize_byte_buf(ByteBufVisitor)
}

struct ByteBufVisitor;

impl<'de> Visitor<'de> for ByteBufVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
        Ok(bytes.to_vec())
    }

    fn visit_byte_buf<E: Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(bytes)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        // The hint comes from the input: trust it only up to a bound.
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
        while let Some(byte) = seq.next_element()? {
            bytes.push(byte);
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Plain {
        bytes: Vec<u8>,
    }

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Fast {
        #[serde(with = "super")]
        bytes: Vec<u8>,
    }

    #[test]
    fn bincode_bytes_are_the_same_as_for_a_plain_vec() {
        let bytes: Vec<u8> = (0..=255).collect();
        let plain = bincode::serialize(&Plain {
            bytes: bytes.clone(),
        })
        .expect("encodes");
        let fast = bincode::serialize(&Fast {
            bytes: bytes.clone(),
        })
        .expect("encodes");
        assert_eq!(plain, fast);
        let back: Fast = bincode::deserialize(&plain).expect("decodes");
        assert_eq!(back.bytes, bytes);
    }
}
