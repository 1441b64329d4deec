//! cargo-fuzz target: the storage-key decoder never panics and round-trips what it accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    keel_net::model::fuzz::fuzz_storage_key_decode(data);
});
