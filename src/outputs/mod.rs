//! Outputs: everything that leaves the process.
//!
//! Owns: the HTTP API (`api/`, including partner feeds, suggestions and
//! audiences), the disclosure audit log (`audit/`), the purpose feeds
//! (`feeds/`) and the dashboard's embedded pages (`dashboard/`).
//! Never: reads subject data except through `gate/`; every response about
//! subjects is built from a `Gated<T>`.

pub mod api;
pub mod audit;
pub mod dashboard;
pub mod feeds;
