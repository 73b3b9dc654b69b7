//! Processors: read accepted events in log order and keep derived state.
//!
//! Owns: one sub-module per use of the data (`usage` now; abuse, graph and
//! audiences arrive with later issues).
//! Never: writes to an output. Whatever leaves the process goes through
//! `gate/` first.

pub mod usage;
