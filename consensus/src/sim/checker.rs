//! Bounded exhaustive model checker (to be written).
