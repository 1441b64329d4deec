//! keel-tools: the pieces behind the `keel` binary.
