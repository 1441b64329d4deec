//! Helpers shared by keel-bench's integration tests.
#![expect(clippy::expect_used, reason = "test helpers outside #[test] functions")]

use keel_bench::workload::{preset, WorkloadSpec};

/// YCSB C over `records` records of one 10-byte field.
pub fn small_c(records: u64) -> WorkloadSpec {
    let (mix, distribution) = preset("c").expect("preset c");
    WorkloadSpec {
        name: "c".to_owned(),
        mix,
        distribution,
        records,
        field_count: 1,
        field_bytes: 10,
        scan_length_max: 10,
        write_all_fields: false,
    }
}
