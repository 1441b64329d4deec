//! cargo-fuzz target: WAL frame decoding, batch checks, segment walk and tail scan never
//! panic, agree with each other, and accept no batch with flipped bits as other records.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    keel_engine::fuzz::fuzz_wal_frames(data);
});
