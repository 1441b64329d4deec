//! Tests of the expression module.
