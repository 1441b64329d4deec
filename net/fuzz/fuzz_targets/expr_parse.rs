//! cargo-fuzz target: expressions of every kind parse, print, re-parse and evaluate
//! without panicking; updates that succeed yield valid items.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    keel_net::expr::fuzz::fuzz_expr(data);
});
