//! Outputs: everything that leaves the process.
//!
//! Owns: the HTTP API (`api/`); partner feeds, the audit log and the
//! dashboard arrive with later issues.
//! Never: reads subject data except through `gate/`; every response about
//! subjects is built from a `Gated<T>`.

pub mod api;
