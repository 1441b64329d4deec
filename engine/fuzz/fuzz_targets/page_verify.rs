//! cargo-fuzz target: page verification and the accessors of verified pages never panic;
//! verified pages are canonical and a flipped bit fails the checksum.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    keel_engine::fuzz::fuzz_page(data);
});
