//! Every environment variable proviso reads, each standing for one flag and
//! (but for `PROVISO_CONFIG`, `PROVISO_LOG` and `PROVISO_TOKEN`) one config
//! file key of the same name in snake case.
//!
//! Owns: the variable names. [`super::Opt`] and the client flags of the
//! commands name them here, never as string literals.
//! Never: reads a variable; clap does, through the `env` of each option.

/// `--data`, file key `data`: the data directory.
pub const PROVISO_DATA: &str = "PROVISO_DATA";
/// `--config`: the TOML config file (no file key: it names the file).
pub const PROVISO_CONFIG: &str = "PROVISO_CONFIG";
/// `--default-region`, `default_region`: region for national-format numbers without `country`.
pub const PROVISO_DEFAULT_REGION: &str = "PROVISO_DEFAULT_REGION";
/// `--policy`, `policy`: the consent policy file.
pub const PROVISO_POLICY: &str = "PROVISO_POLICY";
/// `--rules`, `rules`: the abuse rules file.
pub const PROVISO_RULES: &str = "PROVISO_RULES";
/// `--backup-dir`, `backup_dir`: where a running server writes backups.
pub const PROVISO_BACKUP_DIR: &str = "PROVISO_BACKUP_DIR";
/// `--pseudonym-key`, `pseudonym_key`: 64 hex digits; otherwise `pseudonym.key` in the data dir.
pub const PROVISO_PSEUDONYM_KEY: &str = "PROVISO_PSEUDONYM_KEY";
/// `--snapshot-every-records`, `snapshot_every_records`: records between snapshots.
pub const PROVISO_SNAPSHOT_EVERY_RECORDS: &str = "PROVISO_SNAPSHOT_EVERY_RECORDS";
/// `--segment-bytes`, `segment_bytes`: log segment size.
pub const PROVISO_SEGMENT_BYTES: &str = "PROVISO_SEGMENT_BYTES";
/// `--erasure-compaction-seconds`, `erasure_compaction_seconds`: longest stay of erased events.
pub const PROVISO_ERASURE_COMPACTION_SECONDS: &str = "PROVISO_ERASURE_COMPACTION_SECONDS";
/// `--max-future-skew-seconds`, `max_future_skew_seconds`: how far event times may lead arrival.
pub const PROVISO_MAX_FUTURE_SKEW_SECONDS: &str = "PROVISO_MAX_FUTURE_SKEW_SECONDS";
/// `--idempotency-window-seconds`, `idempotency_window_seconds`: how long an `Idempotency-Key` is honoured.
pub const PROVISO_IDEMPOTENCY_WINDOW_SECONDS: &str = "PROVISO_IDEMPOTENCY_WINDOW_SECONDS";
/// `--nats`, `nats`: the NATS server of the cluster this node joins.
pub const PROVISO_NATS: &str = "PROVISO_NATS";
/// `--node`, `node`: this node's name in its cluster.
pub const PROVISO_NODE: &str = "PROVISO_NODE";
/// `--nats-user`, `nats_user`: the NATS user a node connects as.
pub const PROVISO_NATS_USER: &str = "PROVISO_NATS_USER";
/// `--nats-password`, `nats_password`: that user's password.
pub const PROVISO_NATS_PASSWORD: &str = "PROVISO_NATS_PASSWORD";
/// `--nats-token`, `nats_token`: the token a node connects to NATS with.
pub const PROVISO_NATS_TOKEN: &str = "PROVISO_NATS_TOKEN";
/// `--nats-ca`, `nats_ca`: the CA of the NATS server's TLS certificate.
pub const PROVISO_NATS_CA: &str = "PROVISO_NATS_CA";
/// `--cluster-lease-seconds`, `cluster_lease_seconds`: a partition lease's time.
pub const PROVISO_CLUSTER_LEASE_SECONDS: &str = "PROVISO_CLUSTER_LEASE_SECONDS";
/// `--cluster-partitions`, `cluster_partitions`: partitions of a new cluster.
pub const PROVISO_CLUSTER_PARTITIONS: &str = "PROVISO_CLUSTER_PARTITIONS";
/// `--listen`, `listen`: the HTTP listen address.
pub const PROVISO_LISTEN: &str = "PROVISO_LISTEN";
/// `--max-request-bytes`, `max_request_bytes`: largest accepted request body.
pub const PROVISO_MAX_REQUEST_BYTES: &str = "PROVISO_MAX_REQUEST_BYTES";
/// `--header-timeout-seconds`, `header_timeout_seconds`: time to send a request head.
pub const PROVISO_HEADER_TIMEOUT_SECONDS: &str = "PROVISO_HEADER_TIMEOUT_SECONDS";
/// `--body-idle-timeout-seconds`, `body_idle_timeout_seconds`: longest stall inside a request body.
pub const PROVISO_BODY_IDLE_TIMEOUT_SECONDS: &str = "PROVISO_BODY_IDLE_TIMEOUT_SECONDS";
/// `--max-connections`, `max_connections`: most connections open at once.
pub const PROVISO_MAX_CONNECTIONS: &str = "PROVISO_MAX_CONNECTIONS";
/// `--max-live-streams-per-token`, `max_live_streams_per_token`: most `/v1/live` streams per token.
pub const PROVISO_MAX_LIVE_STREAMS_PER_TOKEN: &str = "PROVISO_MAX_LIVE_STREAMS_PER_TOKEN";
/// `--admin-token`, `admin_token`: the admin bearer token.
pub const PROVISO_ADMIN_TOKEN: &str = "PROVISO_ADMIN_TOKEN";
/// `--ingest-token`, `ingest_token`: bearer token for the `ingest` role.
pub const PROVISO_INGEST_TOKEN: &str = "PROVISO_INGEST_TOKEN";
/// `--analyst-token`, `analyst_token`: bearer token for the `analyst` role.
pub const PROVISO_ANALYST_TOKEN: &str = "PROVISO_ANALYST_TOKEN";
/// `--subject-service-token`, `subject_service_token`: bearer token for the `subject-service` role.
pub const PROVISO_SUBJECT_SERVICE_TOKEN: &str = "PROVISO_SUBJECT_SERVICE_TOKEN";
/// `--reviewer-token`, `reviewer_token`: token with role `reviewer` (abuse review queue and decisions).
pub const PROVISO_REVIEWER_TOKEN: &str = "PROVISO_REVIEWER_TOKEN";
/// `--advertiser-token`, `advertiser_token`: token with role `advertiser` (audience sizes only).
pub const PROVISO_ADVERTISER_TOKEN: &str = "PROVISO_ADVERTISER_TOKEN";
/// `--tokens`, `[[tokens]]`: named tokens, space-separated NAME:ROLE:TOKEN entries.
pub const PROVISO_TOKENS: &str = "PROVISO_TOKENS";
/// `--audience-k`, `audience_k`: smallest audience size ever released (≥ 10).
pub const PROVISO_AUDIENCE_K: &str = "PROVISO_AUDIENCE_K";
/// `--audience-epsilon`, `audience_epsilon`: epsilon per noisy audience size.
pub const PROVISO_AUDIENCE_EPSILON: &str = "PROVISO_AUDIENCE_EPSILON";
/// `--audience-daily-epsilon`, `audience_daily_epsilon`: epsilon per advertiser per business per day.
pub const PROVISO_AUDIENCE_DAILY_EPSILON: &str = "PROVISO_AUDIENCE_DAILY_EPSILON";
/// `--partners`, `[[partners]]`: partner networks, space-separated entries.
pub const PROVISO_PARTNERS: &str = "PROVISO_PARTNERS";
/// `--log` (every command; no file key): tracing filter, e.g. `info` or `proviso=debug`.
pub const PROVISO_LOG: &str = "PROVISO_LOG";
/// `--token` of `query --server` and `simulate --server`: the client's
/// bearer token for a running server (a client setting, not a server option).
pub const PROVISO_TOKEN: &str = "PROVISO_TOKEN";

/// Every variable, for tests that must start from a clean environment.
pub const ALL: &[&str] = &[
    PROVISO_DATA,
    PROVISO_NATS,
    PROVISO_NODE,
    PROVISO_NATS_USER,
    PROVISO_NATS_PASSWORD,
    PROVISO_NATS_TOKEN,
    PROVISO_NATS_CA,
    PROVISO_CLUSTER_LEASE_SECONDS,
    PROVISO_CLUSTER_PARTITIONS,
    PROVISO_CONFIG,
    PROVISO_DEFAULT_REGION,
    PROVISO_POLICY,
    PROVISO_RULES,
    PROVISO_BACKUP_DIR,
    PROVISO_PSEUDONYM_KEY,
    PROVISO_SNAPSHOT_EVERY_RECORDS,
    PROVISO_SEGMENT_BYTES,
    PROVISO_ERASURE_COMPACTION_SECONDS,
    PROVISO_MAX_FUTURE_SKEW_SECONDS,
    PROVISO_IDEMPOTENCY_WINDOW_SECONDS,
    PROVISO_LISTEN,
    PROVISO_MAX_REQUEST_BYTES,
    PROVISO_HEADER_TIMEOUT_SECONDS,
    PROVISO_BODY_IDLE_TIMEOUT_SECONDS,
    PROVISO_MAX_CONNECTIONS,
    PROVISO_MAX_LIVE_STREAMS_PER_TOKEN,
    PROVISO_ADMIN_TOKEN,
    PROVISO_INGEST_TOKEN,
    PROVISO_ANALYST_TOKEN,
    PROVISO_SUBJECT_SERVICE_TOKEN,
    PROVISO_REVIEWER_TOKEN,
    PROVISO_ADVERTISER_TOKEN,
    PROVISO_TOKENS,
    PROVISO_AUDIENCE_K,
    PROVISO_AUDIENCE_EPSILON,
    PROVISO_AUDIENCE_DAILY_EPSILON,
    PROVISO_PARTNERS,
    PROVISO_LOG,
    PROVISO_TOKEN,
];
