//! keel-bench: the load generator (to be built; see issue "keel-bench").
