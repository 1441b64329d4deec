//! cargo-fuzz target: the superblock decision never panics and never ignores a valid
//! slot.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    keel_engine::fuzz::fuzz_superblock(data);
});
