//! Consistent hashing: a ring of virtual nodes, so adding or removing an
//! endpoint moves only about 1/N of the keys.

/// A ring built over endpoint keys.
///
/// ```
/// use sextant_client::HashRing;
///
/// let ring = HashRing::new(["a", "b", "c"].iter().copied(), 100);
/// let owner = ring.owner(b"user-42").unwrap();
/// assert_eq!(ring.owner(b"user-42"), Some(owner), "stable");
/// ```
#[derive(Clone, Debug)]
pub struct HashRing {
    /// (point on the ring, index of the endpoint), sorted by point.
    points: Vec<(u64, usize)>,
}

impl HashRing {
    /// Places `virtual_nodes` points per key (at least 1) on the ring. The
    /// index returned by [`HashRing::owner`] is the key's position in `keys`.
    ///
    /// ```
    /// let ring = sextant_client::HashRing::new(std::iter::empty::<&str>(), 10);
    /// assert_eq!(ring.owner(b"x"), None);
    /// ```
    pub fn new<'a>(keys: impl Iterator<Item = &'a str>, virtual_nodes: u32) -> HashRing {
        let mut points = Vec::new();
        for (index, key) in keys.enumerate() {
            for replica in 0..virtual_nodes.max(1) {
                let mut bytes = key.as_bytes().to_vec();
                bytes.push(b'#');
                bytes.extend_from_slice(&replica.to_be_bytes());
                points.push((hash(&bytes), index));
            }
        }
        points.sort_unstable();
        HashRing { points }
    }

    /// The index of the endpoint owning `request_key`: the first point at or
    /// after the key's hash, wrapping around.
    ///
    /// ```
    /// let ring = sextant_client::HashRing::new(["only"].iter().copied(), 3);
    /// assert_eq!(ring.owner(b"anything"), Some(0));
    /// ```
    pub fn owner(&self, request_key: &[u8]) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let h = hash(request_key);
        let at = self.points.partition_point(|(point, _)| *point < h);
        let (_, index) = self.points[at % self.points.len()];
        Some(index)
    }
}

/// FNV-1a finished with a SplitMix64 mix: stable across processes and
/// versions (unlike std's hasher), and well spread for short keys.
pub(crate) fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        h ^= u64::from(*byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_spread_evenly_and_few_move_when_an_endpoint_leaves() {
        let names = ["a", "b", "c", "d"];
        let ring = HashRing::new(names.iter().copied(), 160);
        let keys: Vec<String> = (0..20_000).map(|i| format!("user-{i}")).collect();
        let mut counts = [0usize; 4];
        let owners: Vec<usize> = keys
            .iter()
            .map(|k| ring.owner(k.as_bytes()).unwrap_or(usize::MAX))
            .collect();
        for &o in &owners {
            counts[o] += 1;
        }
        for c in counts {
            assert!((4000..6000).contains(&c), "uneven: {counts:?}");
        }
        // Remove "d": only its keys move; the rest keep their owner.
        let smaller = HashRing::new(names[..3].iter().copied(), 160);
        for (key, &before) in keys.iter().zip(&owners) {
            let after = smaller.owner(key.as_bytes()).unwrap_or(usize::MAX);
            if before != 3 {
                assert_eq!(after, before, "{key} moved");
            }
        }
    }
}
