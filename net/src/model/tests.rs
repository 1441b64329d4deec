//! Tests of the data model (filled below).
