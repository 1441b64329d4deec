//! keel-consensus: the sans-IO replication group (to be built; see issue "Consensus").
