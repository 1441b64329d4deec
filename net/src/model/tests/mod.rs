//! Tests of the data model: unit tests, property tests against reference models, golden
//! vectors (`../testdata/`) and seeded runs of the fuzz bodies.

mod codec_tests;
mod fuzz_tests;
mod key_tests;
mod number_tests;
pub(crate) mod strategies;
