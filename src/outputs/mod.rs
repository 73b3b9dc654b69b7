//! Outputs: everything that leaves the process over the wire.
//!
//! Owns: the HTTP API (`api/`: routing, auth, limits, error shape, OpenAPI)
//! and the dashboard's embedded pages (`dashboard/`).
//! Never: decides what may leave: every partner-, advertiser-, subject- and
//! staff-facing body comes from `disclose/` as a `Gated<T>`, the only thing
//! the API turns into a response.

pub mod api;
pub mod dashboard;
