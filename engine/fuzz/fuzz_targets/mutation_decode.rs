//! cargo-fuzz target: the WAL payload decoder never panics and round-trips what it accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    keel_engine::fuzz::fuzz_mutation(data);
});
