//! proviso: consent-gated, privacy-first sharing of messaging usage data.
//!
//! # The data path
//!
//! ```text
//!  NDJSON ──▶ edge ──▶ pipeline ──▶ log ──▶ state ──────────▶ gate ──▶ disclose ──▶ outputs
//!  (HTTP,     strict   group        fsync'd  subjects,         allow(   audit,       HTTP API,
//!   CLI)      schema,  commit,      segments processors,       subject, k-anon,     partner feeds,
//!             E.164 →  erasure,              consent           purpose, noise,      audit log,
//!             pseudonym snapshots                              at)      budget      dashboard
//! ```
//!
//! # Layers
//!
//! Modules are declared below lowest layer first. A module may use modules
//! of its own layer or a lower one, never a higher one: no arrow points back
//! up the data path (`tests/architecture.rs` checks every `crate::` path).
//!
//! | layer | modules |
//! |---|---|
//! | 0 | [`clock`], [`codec`], [`contract`], [`prefetch`] |
//! | 1 | [`edge`], [`log`], [`sim`] |
//! | 2 | [`vault`], [`telemetry`] |
//! | 3 | [`processors`], [`consent`] |
//! | 4 | [`state`] |
//! | 5 | [`pipeline`] |
//! | 6 | [`gate`] |
//! | 7 | [`disclose`] |
//! | 8 | [`config`] |
//! | 9 | [`outputs`] |
//! | 10 | [`server`], `fuzzing` (entry points for `fuzz/` only) |
//! | 11 | the binary: `main.rs` and `cli/` |
//!
//! # Layout
//! - [`clock`]: the wall clock.
//! - [`codec`]: little-endian bytes for snapshots (no I/O).
//! - [`prefetch`]: the cache-line hint hash tables use to overlap misses.
//! - [`contract`]: event contract v1 after the edge, control records, and the
//!   log's binary codec.
//! - [`edge`]: the privacy edge; the only place a phone number exists.
//! - [`log`]: the durable, append-only log, the data dir lock, file modes.
//! - [`sim`]: the deterministic workload simulator.
//! - [`vault`]: per-person secrets that erasure destroys (crypto-shredding).
//! - [`telemetry`]: proviso's own Prometheus series and internal events.
//! - [`processors`]: derived data per use: `usage` (roaring bitmaps),
//!   `graph` (address books, friend suggestions), `links` (partner accounts),
//!   `abuse` (rules, actions, security records, backtest scoring) and
//!   `audiences` (business contacts by day, privacy budgets).
//! - [`consent`]: the consent registry and the policy file.
//! - [`cluster`]: cluster mode's event stream and settings in NATS
//!   JetStream (issue 16, in progress; the binary does not use it yet).
//! - [`state`]: the subject registry and every processor, applied in log
//!   order; snapshots; the backtest replay.
//! - [`pipeline`]: the write path (edge → log → state): opening, group
//!   commit, erasure compaction, snapshots, installing abuse rules.
//! - [`gate`]: `allow(subject, purpose, at)` and `Gated<T>`, the only door out.
//! - [`disclose`]: everything that decides, records and shapes what leaves
//!   about people: gate → audit → feed, k-anonymity, noise and budget,
//!   retraction, reconciliation at start; `audit/` (the hash-chained
//!   disclosure log) and `feeds/` (partner purpose feeds); the bodies,
//!   sealed there, leave only as `Gated<T>`.
//! - [`config`]: the one resolved configuration (defaults < file < env < flags).
//! - [`outputs`]: everything that leaves the process over the wire: `api/`
//!   (HTTP; turns only `Gated<T>` into bodies about people) and
//!   `dashboard/` (embedded pages).
//! - [`server`]: starts the pipeline and the API together.

// Layer 0: nothing from this crate.
pub mod clock;
pub mod codec;
pub mod contract;
pub mod failpoint;
pub mod prefetch;

// Layer 1.
pub mod edge;
pub mod log;
pub mod sim;

// Layer 2.
pub mod telemetry;
pub mod vault;

// Layer 3.
pub mod consent;
pub mod processors;

// Layer 4.
pub mod cluster;
pub mod state;

// Layer 5.
pub mod pipeline;

// Layer 6.
pub mod gate;

// Layer 7.
pub mod disclose;

// Layer 8.
pub mod config;

// Layer 9.
pub mod outputs;

// Layer 10.
#[doc(hidden)]
pub mod fuzzing;
pub mod server;
