//! Configuration: one resolved [`Config`] from defaults, file, env and flags.
//!
//! Owns: every option, its default, its env name and the merge order.
//! Never: read by anything but the binary edge; nothing else reads std::env.
//!
//! Precedence, lowest first: built-in default < `--config` TOML file <
//! environment variable < command-line flag. Clap folds flag and env together
//! (flag wins); [`Config::resolve`] then lays that over the file and defaults.

pub mod env;
mod role;

pub use role::Role;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::consent::Policy;
use crate::contract::Region;
use crate::edge::PseudonymKey;
use crate::pipeline::PipelineOptions;

/// Default data dir: `./proviso-data`, next to where proviso runs.
pub fn default_data_dir() -> PathBuf {
    PathBuf::from("./proviso-data")
}
/// Default listen address: loopback only, so a fresh install exposes nothing.
pub fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7420))
}
/// Default region for national-format numbers without a `country` field.
pub const fn default_region() -> &'static str {
    "US"
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
/// Default snapshot interval: every 2M applied records.
pub const fn default_snapshot_every_records() -> u64 {
    2_000_000
}
/// Default log segment size: 256 MiB.
pub const fn default_segment_bytes() -> u64 {
    crate::log::DEFAULT_SEGMENT_BYTES
}

/// Options shared by every command that opens a data dir.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DataArgs {
    /// Data directory: log, state snapshots, pseudonym key, admin token
    /// [default: ./proviso-data]
    #[arg(long, env = env::PROVISO_DATA, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// TOML config file (see docs/configuration.md); flags and env override it
    #[arg(long, env = env::PROVISO_CONFIG, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Region used to read national-format numbers that carry no `country`
    /// field (ISO 3166 alpha-2) [default: US]
    #[arg(long, env = env::PROVISO_DEFAULT_REGION, value_name = "CC")]
    pub default_region: Option<String>,
    /// Consent policy file (TOML); the built-in policy is opt-in for EEA and
    /// GB, opt-out with a 30-day notice elsewhere
    #[arg(long, env = env::PROVISO_POLICY, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Abuse rules file (TOML, see docs/rules.md); reloaded when it changes.
    /// Without it the built-in default rules run
    #[arg(long, env = env::PROVISO_RULES, value_name = "FILE")]
    pub rules: Option<PathBuf>,
}

/// Options of `proviso serve`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Address to listen on; use port 0 to pick a free port (the bound
    /// address is printed) [default: 127.0.0.1:7420]
    #[arg(long, env = env::PROVISO_LISTEN, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Largest accepted request body in bytes; larger bodies get 413
    /// [default: 67108864]
    #[arg(long, env = env::PROVISO_MAX_REQUEST_BYTES, value_name = "BYTES")]
    pub max_request_bytes: Option<u64>,
    /// Seconds a client has to send a request head; also the longest a
    /// kept-alive connection may sit idle. Then it is closed [default: 10]
    #[arg(long, env = env::PROVISO_HEADER_TIMEOUT_SECONDS, value_name = "SECONDS")]
    pub header_timeout_seconds: Option<u64>,
    /// Seconds a request body may stall (no byte arriving) before the
    /// request gets 408 and the connection is closed [default: 30]
    #[arg(long, env = env::PROVISO_BODY_IDLE_TIMEOUT_SECONDS, value_name = "SECONDS")]
    pub body_idle_timeout_seconds: Option<u64>,
    /// Most connections open at once; each one over gets 503 and is closed
    /// [default: 512]
    #[arg(long, env = env::PROVISO_MAX_CONNECTIONS, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Most `GET /v1/live` streams one token may hold open; one more gets
    /// 429 [default: 4]
    #[arg(long, env = env::PROVISO_MAX_LIVE_STREAMS_PER_TOKEN, value_name = "N")]
    pub max_live_streams_per_token: Option<usize>,
}

/// The config file. Every key is optional; unknown keys are errors.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub default_region: Option<String>,
    pub max_request_bytes: Option<u64>,
    /// See `--header-timeout-seconds`.
    pub header_timeout_seconds: Option<u64>,
    /// See `--body-idle-timeout-seconds`.
    pub body_idle_timeout_seconds: Option<u64>,
    /// See `--max-connections`.
    pub max_connections: Option<usize>,
    /// See `--max-live-streams-per-token`.
    pub max_live_streams_per_token: Option<usize>,
    pub policy: Option<PathBuf>,
    pub snapshot_every_records: Option<u64>,
    pub segment_bytes: Option<u64>,
    /// Abuse rules file; see `--rules`.
    pub rules: Option<PathBuf>,
    /// Smallest audience ever released (k-anonymity); at least 10.
    pub audience_k: Option<u64>,
    /// Epsilon charged per noisy audience size (default 0.5). Setting it
    /// turns noise on for every advertiser answer: each one is noised and
    /// charged, and `noise=false` is refused. Unset, noise is opt-in
    /// (`noise=true`).
    pub audience_epsilon: Option<f64>,
    /// Epsilon each advertiser may spend per business per UTC day on noisy
    /// sizes (default 2.0).
    pub audience_daily_epsilon: Option<f64>,
    /// Longest time (seconds) an erased subject's events stay in the log.
    pub erasure_compaction_seconds: Option<u64>,
    /// How far (seconds) an event time may be ahead of its arrival.
    pub max_future_skew_seconds: Option<u64>,
    /// Extra API tokens: `[[tokens]] name = "...", role = "...", token = "..."`.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// Partner networks: `[[partners]] name, purposes, tokens, pseudonym_key`.
    #[serde(default)]
    pub partners: Vec<PartnerConfig>,
}

/// One partner network from the config file.
#[derive(Clone, Deserialize)]
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
    pub pseudonym_key: Option<Secret>,
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

/// A partner, resolved.
#[derive(Clone, Debug)]
pub struct Partner {
    pub name: String,
    pub purposes: Vec<crate::contract::Purpose>,
    pub tokens: Vec<Secret>,
    pub pseudonym_key: Option<PseudonymKey>,
}

/// One API token from the config file.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it (shown in logs; the token itself never is).
    pub name: String,
    /// admin, ingest, analyst, subject-service, reviewer or advertiser.
    pub role: String,
    pub token: Secret,
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

/// A secret string: prints and serializes as `***`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

/// Every problem found while resolving the config, listed together.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub default_region: Region,
    pub max_request_bytes: u64,
    pub policy: Policy,
    pub policy_source: String,
    pub snapshot_every_records: u64,
    pub segment_bytes: u64,
    pub tokens: Vec<TokenConfig>,
    pub pseudonym_key: Option<PseudonymKey>,
    pub partners: Vec<Partner>,
    /// Abuse rules file; `None` runs the built-in defaults.
    pub rules_path: Option<PathBuf>,
    pub audience: AudienceConfig,
    /// Longest time (seconds) an erased subject's events stay in the log.
    pub erasure_compaction_seconds: u64,
    /// How far (seconds) an event time may be ahead of its arrival; later
    /// times are refused, earlier ones ahead of arrival logged as arrival.
    pub max_future_skew_seconds: u64,
    /// Timeouts and caps on connections and streams.
    pub limits: ConnectionLimits,
}

/// Default allowed clock skew of event times: five minutes.
pub const fn default_max_future_skew_seconds() -> u64 {
    300
}

/// Timeouts and caps that keep one client from holding the server:
/// see docs/privacy.md, "Limits".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_timeout_seconds: u64,
    pub body_idle_timeout_seconds: u64,
    pub max_connections: usize,
    pub max_live_streams_per_token: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout_seconds: default_header_timeout_seconds(),
            body_idle_timeout_seconds: default_body_idle_timeout_seconds(),
            max_connections: default_max_connections(),
            max_live_streams_per_token: default_max_live_streams_per_token(),
        }
    }
}

/// Default erasure bound: one hour, so a burst of deletions costs one
/// rewrite of the log, not one each.
pub const fn default_erasure_compaction_seconds() -> u64 {
    3600
}

/// How ad audience sizes are released.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AudienceConfig {
    /// Audiences smaller than this are suppressed (k-anonymity).
    pub k: u64,
    /// Epsilon charged per noisy size (Laplace scale 1/epsilon).
    pub epsilon: f64,
    /// Epsilon each advertiser may spend per business per UTC day.
    pub daily_epsilon: f64,
    /// Every advertiser answer is noised and charged (`audience_epsilon`
    /// is configured); otherwise only answers asked with `noise=true`.
    pub noise_required: bool,
}

/// Default k: 100, as ad platforms commonly use.
pub const fn default_audience_k() -> u64 {
    100
}

/// Smallest k accepted: below 10 an audience can single people out.
pub const MIN_AUDIENCE_K: u64 = 10;

impl Default for AudienceConfig {
    fn default() -> Self {
        AudienceConfig { k: default_audience_k(), epsilon: 0.5, daily_epsilon: 2.0, noise_required: false }
    }
}

impl Config {
    /// Resolves options for commands that open a data dir but serve nothing.
    pub fn resolve_data(args: &DataArgs) -> Result<Config, ConfigError> {
        Config::resolve(&ServeArgs { data: args.clone(), ..ServeArgs::default() })
    }

    /// Merges defaults < file < env/flags, checking everything and reporting
    /// every problem at once.
    pub fn resolve(args: &ServeArgs) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let file = match &args.data.config {
            Some(path) => read_file_config(path).unwrap_or_else(|problem| {
                problems.push(problem);
                FileConfig::default()
            }),
            None => FileConfig::default(),
        };
        let region_text = args
            .data
            .default_region
            .clone()
            .or(file.default_region.clone())
            .unwrap_or_else(|| default_region().to_string());
        let default_region = match Region::parse(&region_text.to_ascii_uppercase()) {
            Some(region) if region_text.to_ascii_uppercase().parse::<phonenumber::country::Id>().is_ok() => region,
            _ => {
                problems.push(format!("default_region `{region_text}` is not an ISO 3166 alpha-2 region code"));
                Region(*b"US")
            }
        };
        let policy_path = args.data.policy.clone().or(file.policy.clone());
        let (policy, policy_source) = match &policy_path {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => match Policy::from_toml(&text) {
                    Ok(policy) => (policy, path.display().to_string()),
                    Err(error) => {
                        problems.extend(error.problems.into_iter().map(|p| format!("policy {}: {p}", path.display())));
                        (Policy::default_policy(), "built-in".into())
                    }
                },
                Err(error) => {
                    problems.push(format!("reading policy file {}: {error}", path.display()));
                    (Policy::default_policy(), "built-in".into())
                }
            },
            None => (Policy::default_policy(), "built-in".into()),
        };
        let max_request_bytes =
            args.max_request_bytes.or(file.max_request_bytes).unwrap_or(default_max_request_bytes());
        if max_request_bytes < 1024 {
            problems.push(format!("max_request_bytes must be at least 1024, got {max_request_bytes}"));
        }
        let defaults = ConnectionLimits::default();
        let limits = ConnectionLimits {
            header_timeout_seconds: args
                .header_timeout_seconds
                .or(file.header_timeout_seconds)
                .unwrap_or(defaults.header_timeout_seconds),
            body_idle_timeout_seconds: args
                .body_idle_timeout_seconds
                .or(file.body_idle_timeout_seconds)
                .unwrap_or(defaults.body_idle_timeout_seconds),
            max_connections: args.max_connections.or(file.max_connections).unwrap_or(defaults.max_connections),
            max_live_streams_per_token: args
                .max_live_streams_per_token
                .or(file.max_live_streams_per_token)
                .unwrap_or(defaults.max_live_streams_per_token),
        };
        for (name, value) in [
            ("header_timeout_seconds", limits.header_timeout_seconds),
            ("body_idle_timeout_seconds", limits.body_idle_timeout_seconds),
            ("max_connections", limits.max_connections as u64),
            ("max_live_streams_per_token", limits.max_live_streams_per_token as u64),
        ] {
            if value == 0 {
                problems.push(format!("{name} must be at least 1"));
            }
        }
        let mut tokens = file.tokens.clone();
        for (variable, role) in [
            (env::PROVISO_INGEST_TOKEN, "ingest"),
            (env::PROVISO_ANALYST_TOKEN, "analyst"),
            (env::PROVISO_SUBJECT_SERVICE_TOKEN, "subject-service"),
            (env::PROVISO_REVIEWER_TOKEN, "reviewer"),
            (env::PROVISO_ADVERTISER_TOKEN, "advertiser"),
            (env::PROVISO_ADMIN_TOKEN, "admin"),
        ] {
            if let Some(token) = std::env::var(variable).ok().filter(|t| !t.is_empty()) {
                tokens.push(TokenConfig {
                    name: variable.to_ascii_lowercase(),
                    role: role.into(),
                    token: Secret(token),
                });
            }
        }
        for token in &tokens {
            if Role::parse(&token.role).is_none() {
                problems.push(format!(
                    "token `{}`: role `{}` is not one of admin, ingest, analyst, subject-service, reviewer, advertiser",
                    token.name, token.role
                ));
            }
            if token.role == "partner" {
                problems.push(format!(
                    "token `{}`: partner tokens belong in a [[partners]] entry, which names the partner",
                    token.name
                ));
            }
            if token.token.expose().len() < 16 {
                problems.push(format!("token `{}`: tokens must be at least 16 characters", token.name));
            }
        }
        let pseudonym_key = match std::env::var(env::PROVISO_PSEUDONYM_KEY).ok().filter(|k| !k.is_empty()) {
            Some(hex) => match PseudonymKey::from_hex(&hex) {
                Ok(key) => Some(key),
                Err(_) => {
                    problems.push(format!("{} must be 64 hex digits", env::PROVISO_PSEUDONYM_KEY));
                    None
                }
            },
            None => None,
        };
        let partners = resolve_partners(&file.partners, &mut problems);
        let mut audience = AudienceConfig::default();
        let k_env = std::env::var(env::PROVISO_AUDIENCE_K).ok().filter(|v| !v.is_empty());
        match k_env.map(|v| v.parse::<u64>()) {
            Some(Ok(k)) => audience.k = k,
            Some(Err(_)) => problems.push(format!("{} must be a whole number", env::PROVISO_AUDIENCE_K)),
            None => audience.k = file.audience_k.unwrap_or(audience.k),
        }
        if audience.k < MIN_AUDIENCE_K {
            problems.push(format!("audience_k must be at least {MIN_AUDIENCE_K}, got {}", audience.k));
        }
        audience.epsilon = file.audience_epsilon.unwrap_or(audience.epsilon);
        audience.noise_required = file.audience_epsilon.is_some();
        audience.daily_epsilon = file.audience_daily_epsilon.unwrap_or(audience.daily_epsilon);
        if !(audience.epsilon > 0.0 && audience.epsilon <= audience.daily_epsilon) {
            problems.push("audience_epsilon must be positive and at most audience_daily_epsilon".to_string());
        }
        // Only the path: the rules are compiled where they are installed
        // (the pipeline), and checked before anything opens by the binary.
        let rules_path = args.data.rules.clone().or(file.rules.clone());
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        let erasure_compaction_seconds = match std::env::var(env::PROVISO_ERASURE_COMPACTION_SECONDS).ok() {
            Some(text) => text.parse().unwrap_or_else(|_| {
                problems.push(format!("{} must be a whole number of seconds", env::PROVISO_ERASURE_COMPACTION_SECONDS));
                default_erasure_compaction_seconds()
            }),
            None => file.erasure_compaction_seconds.unwrap_or(default_erasure_compaction_seconds()),
        };
        let max_future_skew_seconds = match std::env::var(env::PROVISO_MAX_FUTURE_SKEW_SECONDS).ok() {
            Some(text) => text.parse().unwrap_or_else(|_| {
                problems.push(format!("{} must be a whole number of seconds", env::PROVISO_MAX_FUTURE_SKEW_SECONDS));
                default_max_future_skew_seconds()
            }),
            None => file.max_future_skew_seconds.unwrap_or(default_max_future_skew_seconds()),
        };
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        Ok(Config {
            partners,
            rules_path,
            audience,
            erasure_compaction_seconds,
            max_future_skew_seconds,
            limits,
            data_dir: args.data.data.clone().or(file.data).unwrap_or_else(default_data_dir),
            listen: args.listen.or(file.listen).unwrap_or_else(default_listen),
            default_region,
            max_request_bytes,
            policy,
            policy_source,
            snapshot_every_records: file.snapshot_every_records.unwrap_or(default_snapshot_every_records()),
            segment_bytes: file.segment_bytes.unwrap_or(default_segment_bytes()),
            tokens,
            pseudonym_key,
        })
    }

    pub fn pipeline_options(&self) -> PipelineOptions {
        PipelineOptions {
            data_dir: self.data_dir.clone(),
            pseudonym_key: self.pseudonym_key.clone(),
            default_region: self.default_region,
            policy: self.policy.clone(),
            segment_bytes: self.segment_bytes,
            snapshot_every_records: self.snapshot_every_records,
            default_partner: self
                .partners
                .first()
                .map(|partner| partner.name.clone())
                .unwrap_or_else(|| crate::contract::DEFAULT_PARTNER.to_string()),
            rules_path: self.rules_path.clone(),
            erasure_compaction: std::time::Duration::from_secs(self.erasure_compaction_seconds),
            max_future_skew_ms: i64::try_from(self.max_future_skew_seconds.saturating_mul(1000)).unwrap_or(i64::MAX),
        }
    }
}

fn resolve_partners(configs: &[PartnerConfig], problems: &mut Vec<String>) -> Vec<Partner> {
    let mut partners = Vec::new();
    for config in configs {
        let name = &config.name;
        if !crate::edge::is_partner_name(name) {
            problems.push(format!("partner `{name}`: name must be 1-32 characters from a-z 0-9 _ -"));
        }
        if partners.iter().any(|p: &Partner| &p.name == name) {
            problems.push(format!("partner `{name}` is declared twice"));
        }
        let mut purposes = Vec::new();
        for purpose in &config.purposes {
            match crate::contract::Purpose::parse(purpose) {
                Some(parsed) => purposes.push(parsed),
                None => problems.push(format!(
                    "partner `{name}`: purpose `{purpose}` is not one of {}",
                    crate::contract::Purpose::expected().trim_end()
                )),
            }
        }
        if config.tokens.is_empty() {
            problems.push(format!("partner `{name}`: needs at least one token"));
        }
        if config.tokens.iter().any(|token| token.expose().len() < 16) {
            problems.push(format!("partner `{name}`: tokens must be at least 16 characters"));
        }
        let pseudonym_key = match &config.pseudonym_key {
            Some(hex) => match PseudonymKey::from_hex(hex.expose()) {
                Ok(key) => Some(key),
                Err(_) => {
                    problems.push(format!("partner `{name}`: pseudonym_key must be 64 hex digits"));
                    None
                }
            },
            None => None,
        };
        partners.push(Partner { name: name.clone(), purposes, tokens: config.tokens.clone(), pseudonym_key });
    }
    partners
}

fn read_file_config(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading config file {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented example config parses, and each layer overrides the one
    /// below it: flag > file > default.
    #[test]
    fn example_config_parses_and_layers_override_in_order() {
        let example = include_str!("../../docs/proviso.example.toml");
        let file: FileConfig = toml::from_str(example).expect("example config parses");
        assert!(!file.tokens.is_empty());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("proviso.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\ndefault_region = \"IN\"\n").expect("write");
        let from_file = Config::resolve(&ServeArgs {
            data: DataArgs { config: Some(path.clone()), ..DataArgs::default() },
            ..ServeArgs::default()
        })
        .expect("resolves");
        assert_eq!(from_file.listen, "127.0.0.1:9000".parse().expect("addr"));
        assert_eq!(from_file.default_region, Region(*b"IN"));
        assert_eq!(from_file.max_request_bytes, default_max_request_bytes());
        let from_flag = Config::resolve(&ServeArgs {
            data: DataArgs { config: Some(path), default_region: Some("br".into()), ..DataArgs::default() },
            listen: Some("127.0.0.1:9001".parse().expect("addr")),
            ..ServeArgs::default()
        })
        .expect("resolves");
        assert_eq!(from_flag.listen, "127.0.0.1:9001".parse().expect("addr"));
        assert_eq!(from_flag.default_region, Region(*b"BR"));
    }

    #[test]
    fn bad_config_lists_every_problem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("proviso.toml");
        std::fs::write(&path, "max_request_bytes = 10\n[[tokens]]\nname = \"x\"\nrole = \"root\"\ntoken = \"short\"\n")
            .expect("write");
        let error = Config::resolve(&ServeArgs {
            data: DataArgs { config: Some(path), default_region: Some("XX1".into()), ..DataArgs::default() },
            ..ServeArgs::default()
        })
        .expect_err("invalid");
        let text = error.to_string();
        assert!(text.contains("default_region"), "{text}");
        assert!(text.contains("max_request_bytes"), "{text}");
        assert!(text.contains("role `root`"), "{text}");
        assert!(text.contains("at least 16 characters"), "{text}");
    }

    /// Connection limits: default < file < flag (clap folds env into the
    /// flag), and zero is refused.
    #[test]
    fn connection_limits_layer_and_refuse_zero() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("proviso.toml");
        std::fs::write(&path, "max_connections = 7\nheader_timeout_seconds = 3\n").expect("write");
        let config = Config::resolve(&ServeArgs {
            data: DataArgs { config: Some(path.clone()), ..DataArgs::default() },
            header_timeout_seconds: Some(5),
            ..ServeArgs::default()
        })
        .expect("resolves");
        assert_eq!(
            config.limits,
            ConnectionLimits {
                header_timeout_seconds: 5,
                body_idle_timeout_seconds: default_body_idle_timeout_seconds(),
                max_connections: 7,
                max_live_streams_per_token: default_max_live_streams_per_token(),
            }
        );
        let error = Config::resolve(&ServeArgs {
            data: DataArgs { config: Some(path), ..DataArgs::default() },
            max_live_streams_per_token: Some(0),
            body_idle_timeout_seconds: Some(0),
            ..ServeArgs::default()
        })
        .expect_err("zero is refused");
        let text = error.to_string();
        assert!(text.contains("max_live_streams_per_token must be at least 1"), "{text}");
        assert!(text.contains("body_idle_timeout_seconds must be at least 1"), "{text}");
    }

    #[test]
    fn secrets_never_print() {
        let token = TokenConfig { name: "n".into(), role: "admin".into(), token: Secret("supersecretvalue123".into()) };
        assert!(!format!("{token:?}").contains("supersecret"));
        assert_eq!(serde_json::to_string(&token.token).expect("json"), "\"***\"");
    }
}
