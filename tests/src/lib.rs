//! keel-tests: harnesses for crash and integration tests.
