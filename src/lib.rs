//! proviso: consent-gated, privacy-first sharing of messaging usage data.
//!
//! # The data path
//!
//! ```text
//!  NDJSON ──▶ edge ──▶ log ──▶ state/processors ──▶ gate ──▶ outputs
//!  (HTTP,     strict   fsync'd  usage (roaring)     allow(   HTTP API,
//!   CLI)      schema,  segments, consent registry   subject, /metrics
//!             E.164 →  group                        purpose,
//!             pseudonym commit                      at)
//! ```
//!
//! # Layout
//! - [`clock`]: the wall clock.
//! - [`config`]: the one resolved configuration (defaults < file < env < flags).
//! - [`contract`]: event contract v1 after the edge, and its binary codec.
//! - [`edge`]: the privacy edge; the only place a phone number exists.
//! - [`log`]: the durable, append-only event log and the data dir lock.
//! - [`pipeline`]: the write path (edge → log → state) with group commit.
//! - [`state`]: derived state, snapshots and rebuild.
//! - [`processors`]: usage metrics (abuse, graph, audiences come later).
//! - [`consent`]: the consent registry and the policy file.
//! - [`gate`]: `allow(subject, purpose, at)`, the only door out.
//! - [`outputs`]: the HTTP API.
//! - [`server`]: starts the pipeline and the API together.
//! - [`telemetry`]: proviso's own Prometheus series.
//! - [`sim`]: the deterministic workload simulator.
//! - [`vault`]: per-person secrets that erasure destroys (crypto-shredding).

pub mod clock;
pub mod codec;
pub mod config;
pub mod consent;
pub mod contract;
pub mod edge;
pub mod gate;
pub mod log;
pub mod outputs;
pub mod pipeline;
pub mod processors;
pub mod server;
pub mod sim;
pub mod state;
pub mod telemetry;
pub mod vault;
