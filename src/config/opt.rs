//! The options struct: one field per option, which is at once its
//! command-line flag, its environment variable and its config file key.
//!
//! Owns: every option's name, type, default, `--help` text and help heading;
//! laying the `--config` file under env and flags.
//! Never: checks values against each other or opens a data dir (that is
//! [`super::Config::resolve`]).
//!
//! Each field carries a doc comment (its `--help` and its line in
//! docs/configuration.md), `long` (the flag: the field name in kebab case),
//! `env` (a const from [`super::env`]) and, when it has one, a named
//! `default_*()` used by both clap and serde. The serde name is the field
//! name, so the file key, the clap id and the Rust name are one string.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use serde::{Deserialize, Serialize};

use super::env;
use super::secret::Secret;

/// Help headings. Options under [`SERVE_ONLY_HEADINGS`] matter only to a
/// server; other commands accept them (one config file serves every
/// command) but leave them out of their `--help`.
pub mod heading {
    pub const DATA: &str = "Data dir";
    pub const PARTNERS: &str = "Partners";
    pub const SERVER: &str = "Server";
    pub const TOKENS: &str = "API tokens";
    pub const AUDIENCES: &str = "Audiences";
    pub const CLUSTER: &str = "Cluster";
}

/// See [`heading`].
pub const SERVE_ONLY_HEADINGS: &[&str] = &[heading::SERVER, heading::TOKENS, heading::AUDIENCES, heading::CLUSTER];

/// Default data dir: `./proviso-data`, next to where proviso runs.
pub fn default_data_dir() -> PathBuf {
    PathBuf::from("./proviso-data")
}
/// Default region for national-format numbers without a `country` field.
pub fn default_region() -> String {
    "US".to_string()
}
/// Default snapshot interval: every 2M applied records.
pub const fn default_snapshot_every_records() -> u64 {
    2_000_000
}
/// Default log segment size: 256 MiB.
pub const fn default_segment_bytes() -> u64 {
    crate::log::DEFAULT_SEGMENT_BYTES
}
/// Default erasure bound: one hour, so a burst of deletions costs one
/// rewrite of the log, not one each.
pub const fn default_erasure_compaction_seconds() -> u64 {
    3600
}
/// Default allowed clock skew of event times: five minutes.
pub const fn default_max_future_skew_seconds() -> u64 {
    300
}
/// Default idempotency window: 24 hours, as long as a client that retries
/// through an outage should keep resending a batch.
pub const fn default_idempotency_window_seconds() -> u64 {
    86_400
}
/// Default partition count of a new cluster.
pub const fn default_cluster_partitions() -> u16 {
    crate::cluster::DEFAULT_PARTITIONS
}
/// Default lease time of a cluster's partitions: a dead node's partitions
/// move after at most this long.
pub const fn default_cluster_lease_seconds() -> u64 {
    6
}
/// Default listen address: loopback only, so a fresh install exposes nothing.
pub fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7420))
}
/// Default largest request body: 64 MiB, about 500k events.
pub const fn default_max_request_bytes() -> u64 {
    64 << 20
}
/// Default header timeout: 10 s to send a request head (and the longest a
/// kept-alive connection may sit idle), ample for any client that is not
/// holding the connection on purpose.
pub const fn default_header_timeout_seconds() -> u64 {
    10
}
/// Default idle-body timeout: 30 s without a byte of a request body that is
/// still owed, generous for slow uplinks.
pub const fn default_body_idle_timeout_seconds() -> u64 {
    30
}
/// Default connection cap: 512, half the common per-process open-file limit
/// of 1024, so log segments and other files always have room.
pub const fn default_max_connections() -> usize {
    512
}
/// Default live streams per token: 4, a few dashboard tabs.
pub const fn default_max_live_streams_per_token() -> usize {
    4
}
/// Default k: 100, as ad platforms commonly use.
pub const fn default_audience_k() -> u64 {
    100
}
/// Default epsilon per noisy audience size when noise is asked for: 0.5
/// (Laplace scale 2), a few people's worth of noise on any size.
pub const fn default_audience_epsilon() -> f64 {
    0.5
}
/// Default daily epsilon per advertiser and business: 2.0, four noisy sizes
/// a day at the default epsilon.
pub const fn default_audience_daily_epsilon() -> f64 {
    2.0
}

/// Declares [`Opt`] and, from the same field list, the names of its options
/// and the one function that lays the config file under flags and env, so
/// a new field cannot be forgotten by either.
macro_rules! options {
    (
        $(#[$struct_attr:meta])*
        pub struct Opt {
            $(
                $(#[$field_attr:meta])*
                pub $field:ident: $type:ty,
            )*
        }
    ) => {
        $(#[$struct_attr])*
        pub struct Opt {
            $( $(#[$field_attr])* pub $field: $type, )*
        }

        impl Opt {
            /// Every option's name: its field, its clap id and (but for
            /// `config`) its file key.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($field)),*];

            /// Replaces each option for which `from_file(name)` holds with
            /// the file's value.
            fn take_from_file(&mut self, file: Opt, from_file: impl Fn(&str) -> bool) {
                $( if from_file(stringify!($field)) { self.$field = file.$field; } )*
            }
        }
    };
}

options! {
    /// Every option proviso has. Precedence, lowest first: built-in default
    /// < `--config` file < environment variable < flag (see
    /// [`OptArgs::layered`]). docs/configuration.md is generated from this.
    #[derive(Clone, Debug, PartialEq, clap::Args, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct Opt {
        /// Data directory: log, state snapshots, pseudonym key, admin token
        #[arg(long, env = env::PROVISO_DATA, value_name = "DIR", default_value_os_t = default_data_dir(), help_heading = heading::DATA)]
        #[serde(default = "default_data_dir")]
        pub data: PathBuf,
        /// TOML config file (see docs/configuration.md); env and flags override it. Not a file key: it names the file
        #[arg(long, env = env::PROVISO_CONFIG, value_name = "FILE", help_heading = heading::DATA)]
        #[serde(skip)]
        pub config: Option<PathBuf>,
        /// Region used to read national-format numbers that carry no `country` field (ISO 3166 alpha-2)
        #[arg(long, env = env::PROVISO_DEFAULT_REGION, value_name = "CC", default_value_t = default_region(), help_heading = heading::DATA)]
        #[serde(default = "default_region")]
        pub default_region: String,
        /// Consent policy file (TOML); unset, the built-in policy: opt-in for EEA and GB, opt-out with a 30-day notice elsewhere
        #[arg(long, env = env::PROVISO_POLICY, value_name = "FILE", help_heading = heading::DATA)]
        #[serde(default)]
        pub policy: Option<PathBuf>,
        /// Abuse rules file (TOML, see docs/rules.md), reloaded by a server when it changes; unset, the rules last loaded keep running (the built-in ones on a fresh data dir)
        #[arg(long, env = env::PROVISO_RULES, value_name = "FILE", help_heading = heading::DATA)]
        #[serde(default)]
        pub rules: Option<PathBuf>,
        /// Directory a running server writes backups into: `POST /v1/admin/backup` and `proviso backup NAME --server` name a new directory in it (a request never names a path); unset, `<data>-backups` beside the data directory
        #[arg(long, env = env::PROVISO_BACKUP_DIR, value_name = "DIR", help_heading = heading::DATA)]
        #[serde(default)]
        pub backup_dir: Option<PathBuf>,
        /// Pseudonym key, 64 hex digits; unset, `<data>/pseudonym.key` (mode 0600) is created on first start. Prefer the environment or the file: a flag shows in `ps`
        #[arg(long, env = env::PROVISO_PSEUDONYM_KEY, value_name = "HEX", hide_env_values = true, help_heading = heading::DATA)]
        #[serde(default)]
        pub pseudonym_key: Option<Secret>,
        /// Records applied between automatic state snapshots, at least (a snapshot also waits until twice its own size of log has been written since the last one)
        #[arg(long, env = env::PROVISO_SNAPSHOT_EVERY_RECORDS, value_name = "N", default_value_t = default_snapshot_every_records(), help_heading = heading::DATA)]
        #[serde(default = "default_snapshot_every_records")]
        pub snapshot_every_records: u64,
        /// Log segment size in bytes
        #[arg(long, env = env::PROVISO_SEGMENT_BYTES, value_name = "BYTES", default_value_t = default_segment_bytes(), help_heading = heading::DATA)]
        #[serde(default = "default_segment_bytes")]
        pub segment_bytes: u64,
        /// Longest time an erased person's events, handles and secret stay on disk, in seconds (0: the log is compacted before the deletion is acknowledged)
        #[arg(long, env = env::PROVISO_ERASURE_COMPACTION_SECONDS, value_name = "SECONDS", default_value_t = default_erasure_compaction_seconds(), help_heading = heading::DATA)]
        #[serde(default = "default_erasure_compaction_seconds")]
        pub erasure_compaction_seconds: u64,
        /// Event times further than this many seconds ahead of arrival are rejected (invalid_timestamp); times ahead by less are logged as the arrival time
        #[arg(long, env = env::PROVISO_MAX_FUTURE_SKEW_SECONDS, value_name = "SECONDS", default_value_t = default_max_future_skew_seconds(), help_heading = heading::DATA)]
        #[serde(default = "default_max_future_skew_seconds")]
        pub max_future_skew_seconds: u64,
        /// How long, in seconds, a batch sent to POST /v1/events with an Idempotency-Key is remembered: a resend with the same key within this time is answered as the first time and not applied again
        #[arg(long, env = env::PROVISO_IDEMPOTENCY_WINDOW_SECONDS, value_name = "SECONDS", default_value_t = default_idempotency_window_seconds(), help_heading = heading::DATA)]
        #[serde(default = "default_idempotency_window_seconds")]
        pub idempotency_window_seconds: u64,
        /// Address to listen on; port 0 picks a free port (the bound address is printed)
        #[arg(long, env = env::PROVISO_LISTEN, value_name = "ADDR", default_value_t = default_listen(), help_heading = heading::SERVER)]
        #[serde(default = "default_listen")]
        pub listen: SocketAddr,
        /// Largest accepted request body in bytes (at least 1024); larger bodies get 413
        #[arg(long, env = env::PROVISO_MAX_REQUEST_BYTES, value_name = "BYTES", default_value_t = default_max_request_bytes(), help_heading = heading::SERVER)]
        #[serde(default = "default_max_request_bytes")]
        pub max_request_bytes: u64,
        /// Seconds a client has to send a request head; also the longest a kept-alive connection may sit idle. Then it is closed
        #[arg(long, env = env::PROVISO_HEADER_TIMEOUT_SECONDS, value_name = "SECONDS", default_value_t = default_header_timeout_seconds(), help_heading = heading::SERVER)]
        #[serde(default = "default_header_timeout_seconds")]
        pub header_timeout_seconds: u64,
        /// Seconds a request body may stall (no byte arriving) before the request gets 408 and the connection is closed
        #[arg(long, env = env::PROVISO_BODY_IDLE_TIMEOUT_SECONDS, value_name = "SECONDS", default_value_t = default_body_idle_timeout_seconds(), help_heading = heading::SERVER)]
        #[serde(default = "default_body_idle_timeout_seconds")]
        pub body_idle_timeout_seconds: u64,
        /// Most connections open at once; each one over gets 503 and is closed
        #[arg(long, env = env::PROVISO_MAX_CONNECTIONS, value_name = "N", default_value_t = default_max_connections(), help_heading = heading::SERVER)]
        #[serde(default = "default_max_connections")]
        pub max_connections: usize,
        /// Most `GET /v1/live` streams one token may hold open; one more gets 429
        #[arg(long, env = env::PROVISO_MAX_LIVE_STREAMS_PER_TOKEN, value_name = "N", default_value_t = default_max_live_streams_per_token(), help_heading = heading::SERVER)]
        #[serde(default = "default_max_live_streams_per_token")]
        pub max_live_streams_per_token: usize,
        /// Admin token (at least 16 characters, like every token); unset (and no `admin` entry in `tokens`), the first start writes a generated one to `<data>/admin.token` (mode 0600) and says where
        #[arg(long, env = env::PROVISO_ADMIN_TOKEN, value_name = "TOKEN", hide_env_values = true, help_heading = heading::TOKENS)]
        #[serde(default)]
        pub admin_token: Option<Secret>,
        /// Token with role `ingest` (send events)
        #[arg(long, env = env::PROVISO_INGEST_TOKEN, value_name = "TOKEN", hide_env_values = true, help_heading = heading::TOKENS)]
        #[serde(default)]
        pub ingest_token: Option<Secret>,
        /// Token with role `analyst` (usage metrics, live stream)
        #[arg(long, env = env::PROVISO_ANALYST_TOKEN, value_name = "TOKEN", hide_env_values = true, help_heading = heading::TOKENS)]
        #[serde(default)]
        pub analyst_token: Option<Secret>,
        /// Token with role `subject-service` (consent, reports, erasure)
        #[arg(long, env = env::PROVISO_SUBJECT_SERVICE_TOKEN, value_name = "TOKEN", hide_env_values = true, help_heading = heading::TOKENS)]
        #[serde(default)]
        pub subject_service_token: Option<Secret>,
        /// Token with role `reviewer` (abuse review queue and decisions)
        #[arg(long, env = env::PROVISO_REVIEWER_TOKEN, value_name = "TOKEN", hide_env_values = true, help_heading = heading::TOKENS)]
        #[serde(default)]
        pub reviewer_token: Option<Secret>,
        /// Token with role `advertiser` (audience sizes only); its privacy budget is charged to the name `proviso_advertiser_token`
        #[arg(long, env = env::PROVISO_ADVERTISER_TOKEN, value_name = "TOKEN", hide_env_values = true, help_heading = heading::TOKENS)]
        #[serde(default)]
        pub advertiser_token: Option<Secret>,
        /// More named tokens, each NAME:ROLE:TOKEN (roles: admin, ingest, analyst, subject-service, reviewer, advertiser); repeat the flag, or separate entries with spaces. In the file, `[[tokens]]` tables with `name`, `role`, `token`. An advertiser's privacy budget belongs to its token's name
        #[arg(long, env = env::PROVISO_TOKENS, value_name = "NAME:ROLE:TOKEN", value_delimiter = ' ', hide_env_values = true, help_heading = heading::TOKENS)]
        #[serde(default)]
        pub tokens: Vec<TokenConfig>,
        /// Smallest audience size ever released (k-anonymity); at least 10
        #[arg(long, env = env::PROVISO_AUDIENCE_K, value_name = "K", default_value_t = default_audience_k(), help_heading = heading::AUDIENCES)]
        #[serde(default = "default_audience_k")]
        pub audience_k: u64,
        /// Laplace epsilon charged per noisy audience size. Setting it noises and charges every advertiser answer (`noise=false` is refused); unset, noise is opt-in (`noise=true`) at epsilon 0.5
        #[arg(long, env = env::PROVISO_AUDIENCE_EPSILON, value_name = "EPSILON", help_heading = heading::AUDIENCES)]
        #[serde(default)]
        pub audience_epsilon: Option<f64>,
        /// Epsilon each advertiser (token name) may spend per business per UTC day on noisy sizes
        #[arg(long, env = env::PROVISO_AUDIENCE_DAILY_EPSILON, value_name = "EPSILON", default_value_t = default_audience_daily_epsilon(), help_heading = heading::AUDIENCES)]
        #[serde(default = "default_audience_daily_epsilon")]
        pub audience_daily_epsilon: f64,
        /// Partner networks, each NAME:PURPOSE,...:TOKEN,...[:PSEUDONYM_KEY] (e.g. `friendnet:security,product:a-long-random-token`); repeat the flag, or separate entries with spaces. In the file, `[[partners]]` tables with `name`, `purposes`, `tokens`, `pseudonym_key`. The first partner owns the service's partner events that name none
        #[arg(long, env = env::PROVISO_PARTNERS, value_name = "PARTNER", value_delimiter = ' ', hide_env_values = true, help_heading = heading::PARTNERS)]
        #[serde(default)]
        pub partners: Vec<PartnerConfig>,
        /// Run as a node of the cluster whose NATS JetStream server is at this URL (e.g. `nats://127.0.0.1:4222`): every write goes through the cluster's log, and this node applies it. Unset: embedded single-node mode. Every node needs the same pseudonym key, policy and partners. NATS keeps events for at most erasure_compaction_seconds. Anyone who can publish to the cluster's subjects writes into every node: run NATS with authorization (nats_user and nats_password, or nats_token) and TLS (nats_ca); see docs/scale.md
        #[arg(long, env = env::PROVISO_NATS, value_name = "URL", help_heading = heading::CLUSTER)]
        #[serde(default)]
        pub nats: Option<String>,
        /// This node's name in the cluster (in logs and `/healthz`); default: the host name and the listen port
        #[arg(long, env = env::PROVISO_NODE, value_name = "NAME", help_heading = heading::CLUSTER)]
        #[serde(default)]
        pub node: Option<String>,
        /// User this node connects to NATS as (with nats_password), as the server's `authorization { users = [...] }` names it
        #[arg(long, env = env::PROVISO_NATS_USER, value_name = "USER", help_heading = heading::CLUSTER)]
        #[serde(default)]
        pub nats_user: Option<String>,
        /// Password of nats_user. Prefer the environment or the file: a flag shows in `ps`
        #[arg(long, env = env::PROVISO_NATS_PASSWORD, value_name = "PASSWORD", hide_env_values = true, help_heading = heading::CLUSTER)]
        #[serde(default)]
        pub nats_password: Option<Secret>,
        /// Token this node connects to NATS with (the server's `authorization { token: ... }`), instead of a user. Prefer the environment or the file: a flag shows in `ps`
        #[arg(long, env = env::PROVISO_NATS_TOKEN, value_name = "TOKEN", hide_env_values = true, help_heading = heading::CLUSTER)]
        #[serde(default)]
        pub nats_token: Option<Secret>,
        /// PEM file of the certificate authority that signed the NATS server's TLS certificate: set, this node talks to NATS over TLS only, and refuses a server it cannot verify
        #[arg(long, env = env::PROVISO_NATS_CA, value_name = "FILE", help_heading = heading::CLUSTER)]
        #[serde(default)]
        pub nats_ca: Option<PathBuf>,
        /// Lease time of each partition a node holds (2 to 300): a node that dies gives its partitions up to the others after at most this long; a node that stops cleanly at once. Fixed by the first node of a new cluster (later nodes use the cluster's)
        #[arg(long, env = env::PROVISO_CLUSTER_LEASE_SECONDS, value_name = "SECONDS", default_value_t = default_cluster_lease_seconds(), help_heading = heading::CLUSTER)]
        #[serde(default = "default_cluster_lease_seconds")]
        pub cluster_lease_seconds: u64,
        /// Virtual partitions of a new cluster (1 to 4096), each person's by their pseudonym. Fixed by the first node of a new cluster: a later node uses the cluster's, whatever it asks
        #[arg(long, env = env::PROVISO_CLUSTER_PARTITIONS, value_name = "COUNT", default_value_t = default_cluster_partitions(), help_heading = heading::CLUSTER)]
        #[serde(default = "default_cluster_partitions")]
        pub cluster_partitions: u16,
    }
}

impl Default for Opt {
    /// The built-in defaults: what clap gives with no flag and no env, and
    /// what serde gives for an empty file (a unit test checks all three).
    fn default() -> Self {
        Opt {
            data: default_data_dir(),
            config: None,
            default_region: default_region(),
            policy: None,
            rules: None,
            backup_dir: None,
            pseudonym_key: None,
            snapshot_every_records: default_snapshot_every_records(),
            segment_bytes: default_segment_bytes(),
            erasure_compaction_seconds: default_erasure_compaction_seconds(),
            max_future_skew_seconds: default_max_future_skew_seconds(),
            idempotency_window_seconds: default_idempotency_window_seconds(),
            listen: default_listen(),
            max_request_bytes: default_max_request_bytes(),
            header_timeout_seconds: default_header_timeout_seconds(),
            body_idle_timeout_seconds: default_body_idle_timeout_seconds(),
            max_connections: default_max_connections(),
            max_live_streams_per_token: default_max_live_streams_per_token(),
            admin_token: None,
            ingest_token: None,
            analyst_token: None,
            subject_service_token: None,
            reviewer_token: None,
            advertiser_token: None,
            tokens: Vec::new(),
            nats: None,
            node: None,
            nats_user: None,
            nats_password: None,
            nats_token: None,
            nats_ca: None,
            cluster_lease_seconds: default_cluster_lease_seconds(),
            cluster_partitions: default_cluster_partitions(),
            audience_k: default_audience_k(),
            audience_epsilon: None,
            audience_daily_epsilon: default_audience_daily_epsilon(),
            partners: Vec::new(),
        }
    }
}

impl Opt {
    /// The config file keys, as serde names them: every field but the
    /// skipped `config`. Read from the derived `Deserialize` itself (the
    /// field list it hands a deserializer), so docs and tests cannot drift
    /// from what the file really accepts.
    pub fn file_keys() -> &'static [&'static str] {
        use serde::de::{Error, Visitor};

        struct FieldNames(&'static [&'static str]);
        impl<'de> serde::Deserializer<'de> for &mut FieldNames {
            type Error = serde::de::value::Error;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
                Err(Error::custom("field names only"))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                self.0 = fields;
                Err(Error::custom("field names only"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
                unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
            }
        }
        let mut names = FieldNames(&[]);
        let _ = Opt::deserialize(&mut names);
        names.0
    }

    /// The options as a config file would write them, in field order, with
    /// secrets as `***` and unset options left out. (The `toml` crate is
    /// built without its writer; these values need only scalars, arrays and
    /// arrays of tables, and JSON's string and number syntax is TOML's.)
    pub fn to_toml(&self) -> String {
        let value = serde_json::to_value(self).unwrap_or_default();
        let mut keys = String::new();
        let mut tables = String::new();
        for key in Opt::file_keys() {
            match value.get(key) {
                None | Some(serde_json::Value::Null) => {}
                Some(serde_json::Value::Array(items)) if items.iter().all(serde_json::Value::is_object) => {
                    for item in items {
                        tables.push_str(&format!("\n[[{key}]]\n"));
                        for (field, field_value) in item.as_object().into_iter().flatten() {
                            if !field_value.is_null() {
                                tables.push_str(&format!("{field} = {field_value}\n"));
                            }
                        }
                    }
                }
                Some(scalar_or_list) => keys.push_str(&format!("{key} = {scalar_or_list}\n")),
            }
        }
        keys + &tables
    }
}

/// [`Opt`] as the command line gave it, remembering which options came
/// from a flag or an environment variable: the config file may set only
/// the others. Commands flatten this, not [`Opt`].
#[derive(Clone, Debug, Default)]
pub struct OptArgs {
    pub opt: Opt,
    /// Names of the options set by flag or environment variable.
    pub set_by_flag_or_env: BTreeSet<String>,
}

impl OptArgs {
    /// The options in force. Precedence, lowest first: built-in default <
    /// `--config` file < environment variable < flag. Clap already put env
    /// over defaults and flags over env; here the file replaces each option
    /// it names that no flag or env set. This is the only place layers meet.
    pub fn layered(&self) -> Result<Opt, String> {
        let mut opt = self.opt.clone();
        let Some(path) = &self.opt.config else { return Ok(opt) };
        let (file, keys) = read_file(path)?;
        opt.take_from_file(file, |name| keys.contains(name) && !self.set_by_flag_or_env.contains(name));
        Ok(opt)
    }
}

/// The config file as options, and the keys it names.
fn read_file(path: &Path) -> Result<(Opt, BTreeSet<String>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading config file {}: {e}", path.display()))?;
    let file: Opt = toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))?;
    Ok((file, table.keys().cloned().collect()))
}

impl clap::FromArgMatches for OptArgs {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let opt = Opt::from_arg_matches(matches)?;
        let set_by_flag_or_env = Opt::NAMES
            .iter()
            .filter(|name| {
                matches!(matches.value_source(name), Some(ValueSource::CommandLine | ValueSource::EnvVariable))
            })
            .map(|name| name.to_string())
            .collect();
        Ok(OptArgs { opt, set_by_flag_or_env })
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = OptArgs::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Args for OptArgs {
    fn augment_args(command: clap::Command) -> clap::Command {
        Opt::augment_args(command)
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Opt::augment_args_for_update(command)
    }
}

/// Options of the binary itself rather than of a data dir, for every
/// command. Not file keys: logging starts before any config file is read,
/// and covers commands that read none (`simulate`, `rules check`).
#[derive(Clone, Debug, clap::Args)]
pub struct GlobalOpt {
    /// Log filter for tracing output on stderr, e.g. `info` or `proviso=debug,warn`
    #[arg(long, global = true, env = env::PROVISO_LOG, value_name = "FILTER", default_value = "info")]
    pub log: String,
}

/// One API token, from a `[[tokens]]` table or a NAME:ROLE:TOKEN entry.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it (shown in logs; the token itself never is).
    pub name: String,
    /// admin, ingest, analyst, subject-service, reviewer or advertiser.
    pub role: String,
    pub token: Secret,
}

impl std::str::FromStr for TokenConfig {
    type Err = std::convert::Infallible;

    /// Never fails, so clap never echoes the text (it holds a token): an
    /// entry that is not NAME:ROLE:TOKEN gets an empty name, which
    /// [`super::Config::resolve`] reports without showing the entry.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut parts = text.splitn(3, ':');
        Ok(match (parts.next(), parts.next(), parts.next()) {
            (Some(name), Some(role), Some(token)) if !name.is_empty() => {
                TokenConfig { name: name.to_string(), role: role.to_string(), token: Secret::new(token.to_string()) }
            }
            _ => TokenConfig { name: String::new(), role: String::new(), token: Secret::new(text.to_string()) },
        })
    }
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("token", &self.token)
            .finish()
    }
}

/// One partner network, from a `[[partners]]` table or a
/// `NAME:PURPOSE,...:TOKEN,...[:PSEUDONYM_KEY]` entry.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerConfig {
    /// Its name in URLs and events: 1-32 characters from a-z 0-9 _ -.
    pub name: String,
    /// Purposes it may receive data for (e.g. security, product, ads).
    pub purposes: Vec<String>,
    /// Bearer tokens with role `partner` for this partner.
    pub tokens: Vec<Secret>,
    /// 64 hex digits keying the subject handles this partner sees, so no two
    /// partners share an identifier for anyone. Derived from the main
    /// pseudonym key and the name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudonym_key: Option<Secret>,
}

impl std::str::FromStr for PartnerConfig {
    type Err = std::convert::Infallible;

    /// Never fails, so clap never echoes the text (it holds tokens): an
    /// entry without NAME, PURPOSES and TOKENS gets an empty name, which
    /// [`super::Config::resolve`] reports without showing the entry.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let list = |part: &str| part.split(',').filter(|item| !item.is_empty()).map(str::to_string).collect::<Vec<_>>();
        let mut parts = text.splitn(4, ':');
        Ok(match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(name), Some(purposes), Some(tokens), key) => PartnerConfig {
                name: name.to_string(),
                purposes: list(purposes),
                tokens: list(tokens).into_iter().map(Secret::new).collect(),
                pseudonym_key: key.map(|key| Secret::new(key.to_string())),
            },
            _ if text.is_empty() => {
                PartnerConfig { name: String::new(), purposes: Vec::new(), tokens: Vec::new(), pseudonym_key: None }
            }
            _ => PartnerConfig {
                name: String::new(),
                purposes: Vec::new(),
                tokens: vec![Secret::new(text.to_string())],
                pseudonym_key: None,
            },
        })
    }
}

impl std::fmt::Debug for PartnerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartnerConfig")
            .field("name", &self.name)
            .field("purposes", &self.purposes)
            .field("tokens", &self.tokens)
            .field("pseudonym_key", &self.pseudonym_key)
            .finish()
    }
}
