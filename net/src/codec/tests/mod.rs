//! Tests of the wire codec: golden frames (`../testdata/`), round trips of every message
//! kind with random items, the incremental decoder fed in every chunking, corruption and
//! truncation, limits, and seeded runs of the fuzz body.

mod body_tests;
mod frame_tests;
mod fuzz_tests;
mod golden_tests;
mod partition_tests;
mod strategies;
