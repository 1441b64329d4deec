//! keel-tests: harnesses for crash and integration tests.
//!
//! - [`run_on_executor`]: runs a future on a fresh glommio executor set up as keel needs it.
//! - [`Prng`]: a small seeded generator, so that every randomized test replays from a seed.
//! - [`crash`]: the ledger of acknowledged writes kept by the SIGKILL crash test.

pub mod crash;

use std::future::Future;

/// Runs `f` to completion on a new glommio executor on this thread, unbound to any CPU,
/// with an explicit I/O memory budget (glommio pins it; see DEVELOPERS notes on memlock).
pub fn run_on_executor<T: 'static>(
    name: &str,
    io_memory_bytes: usize,
    f: impl Future<Output = T> + 'static,
) -> anyhow::Result<T> {
    let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .name(name)
        .io_memory(io_memory_bytes)
        .make()
        .map_err(|e| anyhow::anyhow!("building the executor: {e}"))?;
    Ok(ex.run(f))
}

/// SplitMix64 (keel-net's seeded generator): test decisions (never used inside a core).
#[derive(Clone, Debug)]
pub struct Prng(keel_net::fuzz_input::Prng);

impl Prng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Prng {
        Prng(keel_net::fuzz_input::Prng::new(seed))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}
