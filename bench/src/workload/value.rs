//! Field values: slices of one random buffer, so generating a value costs no randomness
//! per byte and no allocation beyond the request itself.

use crate::prng::Prng;

/// Bytes in the shared buffer values are cut from.
const POOL_BYTES: usize = 1 << 20;

/// A buffer of random printable bytes from which field values are cut.
#[derive(Debug, Clone)]
pub struct ValuePool {
    bytes: Vec<u8>,
}

impl ValuePool {
    /// A pool filled from `seed`.
    pub fn new(seed: u64) -> ValuePool {
        let mut prng = Prng::new(seed);
        let bytes = (0..POOL_BYTES)
            .map(|_| b' ' + (prng.below(95) as u8))
            .collect();
        ValuePool { bytes }
    }

    /// A value of `len` bytes (at most the pool's size) at a random offset, as text.
    pub fn value(&self, prng: &mut Prng, len: usize) -> &str {
        let len = len.min(self.bytes.len());
        let start = prng.below((self.bytes.len() - len + 1) as u64) as usize;
        let slice = self.bytes.get(start..start + len).unwrap_or_default();
        // Every byte is printable ASCII, so this never fails; an empty value otherwise.
        std::str::from_utf8(slice).unwrap_or_default()
    }
}
