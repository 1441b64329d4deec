//! Seeded inputs for the stable runs of the fuzz bodies (keel-net's and keel-engine's):
//! a SplitMix64 generator, so that every run sees the same inputs, and a byte mutator.

/// A small seeded PRNG (SplitMix64) so fuzz runs are reproducible from their seed.
#[derive(Clone, Debug)]
pub struct Prng(u64);

impl Prng {
    /// A PRNG from a seed.
    #[must_use]
    pub fn new(seed: u64) -> Prng {
        Prng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in 0..bound (bound > 0).
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }

    /// True with probability 1/n.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    /// Fewer than `bound` random bytes (bound > 0).
    pub fn bytes_below(&mut self, bound: usize) -> Vec<u8> {
        let n = self.below(bound);
        self.bytes(n)
    }
}

/// Applies one random mutation: change a byte in place ([`mutate_at`]), insert, delete,
/// truncate or duplicate a run.
pub fn mutate(prng: &mut Prng, bytes: &mut Vec<u8>) {
    if bytes.is_empty() {
        bytes.push(prng.next_u64() as u8);
        return;
    }
    let at = prng.below(bytes.len());
    match prng.below(6) {
        0 | 1 => mutate_at(prng, bytes, at),
        2 => bytes.insert(at, prng.next_u64() as u8),
        3 => {
            bytes.remove(at);
        }
        4 => bytes.truncate(at),
        _ => {
            let end = (at + 1 + prng.below(8)).min(bytes.len());
            let run = bytes.get(at..end).unwrap_or_default().to_vec();
            bytes.splice(at..at, run);
        }
    }
}

/// Changes the byte at `at` (if any) in place: a flipped bit, an edge value, or +-1.
pub fn mutate_at(prng: &mut Prng, bytes: &mut [u8], at: usize) {
    let Some(b) = bytes.get_mut(at) else {
        return;
    };
    let edges = [0x00, 0x01, 0x02, 0x7F, 0x80, 0xFF];
    *b = match prng.below(4) {
        0 => *b ^ (1 << prng.below(8)),
        1 => edges.get(prng.below(edges.len())).copied().unwrap_or(0),
        2 => b.wrapping_add(1),
        _ => b.wrapping_sub(1),
    };
}
