//! cargo-fuzz target: the frame decoder and message codec never panic, and round-trip
//! every frame they accept.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    keel_net::codec::fuzz::fuzz_frames(data);
});
