//! Processors: read accepted events in log order and keep derived state.
//!
//! Owns: one sub-module per use of the data: `usage` (active users and
//! messages), `graph` (address books), `links` (partner accounts), `abuse`
//! (rules, actions, security records), `audiences` (business contacts by day).
//! Never: writes to an output. Whatever leaves the process goes through
//! `gate/` first.

pub mod abuse;
pub mod audiences;
pub mod graph;
pub mod links;
pub mod usage;
