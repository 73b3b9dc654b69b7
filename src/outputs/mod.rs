//! Outputs: everything that leaves the process.
//!
//! Owns: the HTTP API (`api/`, including partner feeds, suggestions and
//! audiences) and the disclosure audit log (`audit/`); the dashboard arrives
//! with a later issue.
//! Never: reads subject data except through `gate/`; every response about
//! subjects is built from a `Gated<T>`.

pub mod api;
pub mod audit;
pub mod feeds;
