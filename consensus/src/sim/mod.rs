//! The deterministic simulator: one thread, one seed, a whole group.
//!
//! | module | holds |
//! | --- | --- |
//! | [`cluster`] | the world: hosts, clients, nemesis, placement, invariants, phases |
//! | [`core`] | a host's replica, bare or inside the multi-group layer |
//! | [`network`] | loss, duplication, delay/reordering, partitions |
//! | [`storage`] | durable vs in-flight writes; a crash keeps a torn prefix |
//! | [`linearizability`] | the per-key register checker |
//! | [`checker`] | bounded exhaustive exploration of a small configuration |
//!
//! Nothing here reads a clock, a file or a socket: a seed replays exactly.

pub mod checker;
pub mod cluster;
pub mod core;
pub mod linearizability;
pub mod network;
pub mod storage;

pub use crate::prng::Prng;
pub use cluster::{run_seed, RunFailure, RunOptions, RunReport, Shape, World};
