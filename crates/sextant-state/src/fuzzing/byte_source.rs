//! Reads fuzzer bytes as a stream of small decisions.
//!
//! A fuzzer mutates bytes, not commands; reading every decision from the
//! front of the input keeps a one-byte mutation a one-decision change, which
//! is what lets coverage guidance make progress. An exhausted source answers
//! zeros, so every input, however short, describes a complete run.

/// A cursor over fuzzer input that hands out bounded choices.
pub struct ByteSource<'a> {
    data: &'a [u8],
}

impl<'a> ByteSource<'a> {
    /// Reads decisions from `data`, front to back.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte, or 0 once exhausted.
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// A coin flip.
    pub fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        usize::from(self.byte()) % n
    }

    /// One of `items`, which must not be empty.
    pub fn pick<'b, T>(&mut self, items: &'b [T]) -> &'b T {
        &items[self.below(items.len())]
    }

    /// Eight bytes as a little-endian integer, for values whose extremes matter.
    pub fn u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        for b in &mut bytes {
            *b = self.byte();
        }
        u64::from_le_bytes(bytes)
    }

    /// Up to `max` raw bytes (fewer when the input runs out).
    pub fn bytes(&mut self, max: usize) -> &'a [u8] {
        let len = self.below(max.saturating_add(1)).min(self.data.len());
        let (head, rest) = self.data.split_at(len);
        self.data = rest;
        head
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exhausted_source_answers_zeros() {
        let mut source = ByteSource::new(&[7]);
        assert_eq!(source.byte(), 7);
        assert!(source.is_empty());
        assert_eq!(source.byte(), 0);
        assert_eq!(source.below(5), 0);
        assert_eq!(source.bytes(10), b"");
        assert_eq!(source.u64(), 0);
    }

    #[test]
    fn choices_stay_in_bounds() {
        let data: Vec<u8> = (0..=255).collect();
        let mut source = ByteSource::new(&data);
        for _ in 0..200 {
            assert!(source.below(3) < 3);
        }
        assert_eq!(source.below(0), 0);
        assert!(source.bytes(4).len() <= 4);
    }
}
