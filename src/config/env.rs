//! Every environment variable proviso reads, each standing for one flag.

/// `--data`: the data directory.
pub const PROVISO_DATA: &str = "PROVISO_DATA";
/// `--listen`: the HTTP listen address.
pub const PROVISO_LISTEN: &str = "PROVISO_LISTEN";
/// `--config`: the TOML config file.
pub const PROVISO_CONFIG: &str = "PROVISO_CONFIG";
/// `--default-region`: region for national-format numbers without `country`.
pub const PROVISO_DEFAULT_REGION: &str = "PROVISO_DEFAULT_REGION";
/// `--max-request-bytes`: largest accepted request body.
pub const PROVISO_MAX_REQUEST_BYTES: &str = "PROVISO_MAX_REQUEST_BYTES";
/// `--header-timeout-seconds`: time to send a request head.
pub const PROVISO_HEADER_TIMEOUT_SECONDS: &str = "PROVISO_HEADER_TIMEOUT_SECONDS";
/// `--body-idle-timeout-seconds`: longest stall inside a request body.
pub const PROVISO_BODY_IDLE_TIMEOUT_SECONDS: &str = "PROVISO_BODY_IDLE_TIMEOUT_SECONDS";
/// `--max-connections`: most connections open at once.
pub const PROVISO_MAX_CONNECTIONS: &str = "PROVISO_MAX_CONNECTIONS";
/// `--max-live-streams-per-token`: most `/v1/live` streams per token.
pub const PROVISO_MAX_LIVE_STREAMS_PER_TOKEN: &str = "PROVISO_MAX_LIVE_STREAMS_PER_TOKEN";
/// `--policy`: the consent policy file.
pub const PROVISO_POLICY: &str = "PROVISO_POLICY";
/// `--rules`: the abuse rules file.
pub const PROVISO_RULES: &str = "PROVISO_RULES";
/// Admin bearer token (no flag: secrets stay out of `ps`).
pub const PROVISO_ADMIN_TOKEN: &str = "PROVISO_ADMIN_TOKEN";
/// Bearer token for the `ingest` role.
pub const PROVISO_INGEST_TOKEN: &str = "PROVISO_INGEST_TOKEN";
/// Bearer token for the `analyst` role.
pub const PROVISO_ANALYST_TOKEN: &str = "PROVISO_ANALYST_TOKEN";
/// Bearer token for the `subject-service` role.
pub const PROVISO_SUBJECT_SERVICE_TOKEN: &str = "PROVISO_SUBJECT_SERVICE_TOKEN";
/// Token with role `reviewer` (abuse review queue and decisions).
pub const PROVISO_REVIEWER_TOKEN: &str = "PROVISO_REVIEWER_TOKEN";
/// Token with role `advertiser` (audience sizes only).
pub const PROVISO_ADVERTISER_TOKEN: &str = "PROVISO_ADVERTISER_TOKEN";
/// Same as the `audience_k` file key: smallest audience size ever released (≥ 10).
pub const PROVISO_AUDIENCE_K: &str = "PROVISO_AUDIENCE_K";
/// Same as the `erasure_compaction_seconds` file key.
pub const PROVISO_ERASURE_COMPACTION_SECONDS: &str = "PROVISO_ERASURE_COMPACTION_SECONDS";
/// Same as the `max_future_skew_seconds` file key.
pub const PROVISO_MAX_FUTURE_SKEW_SECONDS: &str = "PROVISO_MAX_FUTURE_SKEW_SECONDS";
/// Pseudonym key as 64 hex digits (no flag); otherwise `pseudonym.key` in the data dir.
pub const PROVISO_PSEUDONYM_KEY: &str = "PROVISO_PSEUDONYM_KEY";
/// Log filter for tracing output, e.g. `info` or `proviso=debug`.
pub const PROVISO_LOG: &str = "PROVISO_LOG";

/// Every variable, for tests that must start from a clean environment.
pub const ALL: &[&str] = &[
    PROVISO_DATA,
    PROVISO_LISTEN,
    PROVISO_CONFIG,
    PROVISO_DEFAULT_REGION,
    PROVISO_MAX_REQUEST_BYTES,
    PROVISO_HEADER_TIMEOUT_SECONDS,
    PROVISO_BODY_IDLE_TIMEOUT_SECONDS,
    PROVISO_MAX_CONNECTIONS,
    PROVISO_MAX_LIVE_STREAMS_PER_TOKEN,
    PROVISO_POLICY,
    PROVISO_RULES,
    PROVISO_ADMIN_TOKEN,
    PROVISO_INGEST_TOKEN,
    PROVISO_ANALYST_TOKEN,
    PROVISO_SUBJECT_SERVICE_TOKEN,
    PROVISO_REVIEWER_TOKEN,
    PROVISO_ADVERTISER_TOKEN,
    PROVISO_AUDIENCE_K,
    PROVISO_ERASURE_COMPACTION_SECONDS,
    PROVISO_MAX_FUTURE_SKEW_SECONDS,
    PROVISO_PSEUDONYM_KEY,
    PROVISO_LOG,
];
