//! Configuration: the one options struct ([`Opt`]: flags, env names and
//! file keys at once) and the [`Config`] resolved and checked from it.
//!
//! Owns: every option, its default, its env name, the merge order, and the
//! checks that turn options into a usable configuration.
//! Never: read by anything but the binary edge; nothing else reads std::env;
//! never imports a module further down the data path than the ones whose
//! types it fills in (no outputs, processors, server or cli).
//!
//! Precedence, lowest first: built-in default < `--config` TOML file <
//! environment variable < command-line flag, laid in one place:
//! [`OptArgs::layered`]. docs/configuration.md is generated from [`Opt`]
//! ([`docs`]); `proviso config show` prints the options in force.

pub mod docs;
pub mod env;
mod opt;
mod role;
mod secret;

pub use opt::*;
pub use role::Role;
pub use secret::Secret;

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::consent::Policy;
use crate::contract::Region;
use crate::edge::PseudonymKey;
use crate::pipeline::PipelineOptions;

/// A partner, resolved.
#[derive(Clone, Debug)]
pub struct Partner {
    pub name: String,
    pub purposes: Vec<crate::contract::Purpose>,
    pub tokens: Vec<Secret>,
    pub pseudonym_key: Option<PseudonymKey>,
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
    /// Where a running server writes backups (each a new directory in it).
    pub backup_dir: PathBuf,
    pub audience: AudienceConfig,
    /// Longest time (seconds) an erased subject's events stay in the log.
    pub erasure_compaction_seconds: u64,
    /// How far (seconds) an event time may be ahead of its arrival; later
    /// times are refused, earlier ones ahead of arrival logged as arrival.
    pub max_future_skew_seconds: u64,
    /// How long (seconds) an `Idempotency-Key` on `POST /v1/events` is honoured.
    pub idempotency_window_seconds: u64,
    /// Timeouts and caps on connections and streams.
    pub limits: ConnectionLimits,
    /// Cluster mode: the NATS server's URL and this node's name; `None`:
    /// embedded single-node mode.
    pub cluster: Option<ClusterConfig>,
    /// The options this was resolved from, as `proviso config show` prints
    /// them (secrets as `***`).
    pub opt: Opt,
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

/// Smallest k accepted: below 10 an audience can single people out.
pub const MIN_AUDIENCE_K: u64 = 10;

impl Default for AudienceConfig {
    fn default() -> Self {
        AudienceConfig {
            k: default_audience_k(),
            epsilon: default_audience_epsilon(),
            daily_epsilon: default_audience_daily_epsilon(),
            noise_required: false,
        }
    }
}

impl Config {
    /// Lays the options (see [`OptArgs::layered`]) and checks them,
    /// reporting every problem at once.
    pub fn resolve(args: &OptArgs) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let opt = args.layered().unwrap_or_else(|problem| {
            problems.push(problem);
            args.opt.clone()
        });
        Config::check(opt, problems)
    }

    /// Checks options given in code (`proviso demo`, tests): no file, no env.
    pub fn from_opt(opt: Opt) -> Result<Config, ConfigError> {
        Config::check(opt, Vec::new())
    }

    fn check(mut opt: Opt, mut problems: Vec<String>) -> Result<Config, ConfigError> {
        drop_empty_values(&mut opt);
        let region_text = opt.default_region.to_ascii_uppercase();
        let default_region = match Region::parse(&region_text) {
            Some(region) if region_text.parse::<phonenumber::country::Id>().is_ok() => region,
            _ => {
                problems
                    .push(format!("default_region `{}` is not an ISO 3166 alpha-2 region code", opt.default_region));
                Region(*b"US")
            }
        };
        let (policy, policy_source) = match &opt.policy {
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
        if opt.max_request_bytes < 1024 {
            problems.push(format!("max_request_bytes must be at least 1024, got {}", opt.max_request_bytes));
        }
        let limits = ConnectionLimits {
            header_timeout_seconds: opt.header_timeout_seconds,
            body_idle_timeout_seconds: opt.body_idle_timeout_seconds,
            max_connections: opt.max_connections,
            max_live_streams_per_token: opt.max_live_streams_per_token,
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
        let tokens = role_tokens(&opt);
        for token in &tokens {
            if token.name.is_empty() {
                // The entry may be nothing but a token: never echo it.
                problems.push(
                    "tokens: an entry has no name; write NAME:ROLE:TOKEN, or a [[tokens]] table with name, role and token"
                        .to_string(),
                );
                continue;
            }
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
        let pseudonym_key = match &opt.pseudonym_key {
            Some(hex) => match PseudonymKey::from_hex(hex.expose()) {
                Ok(key) => Some(key),
                Err(_) => {
                    problems.push(format!("pseudonym_key ({}) must be 64 hex digits", env::PROVISO_PSEUDONYM_KEY));
                    None
                }
            },
            None => None,
        };
        let partners = resolve_partners(&opt.partners, &mut problems);
        let audience = AudienceConfig {
            k: opt.audience_k,
            epsilon: opt.audience_epsilon.unwrap_or(default_audience_epsilon()),
            daily_epsilon: opt.audience_daily_epsilon,
            noise_required: opt.audience_epsilon.is_some(),
        };
        if audience.k < MIN_AUDIENCE_K {
            problems.push(format!("audience_k must be at least {MIN_AUDIENCE_K}, got {}", audience.k));
        }
        if !(audience.epsilon > 0.0 && audience.epsilon <= audience.daily_epsilon) {
            problems.push("audience_epsilon must be positive and at most audience_daily_epsilon".to_string());
        }
        if opt.nats.is_some() && pseudonym_key.is_none() {
            problems.push(format!(
                "nats ({}) needs pseudonym_key ({}): every node of a cluster derives pseudonyms with the same key, \
                 so it is given to each, not generated by one",
                env::PROVISO_NATS,
                env::PROVISO_PSEUDONYM_KEY
            ));
        }
        let cluster_options =
            [opt.nats_user.is_some(), opt.nats_password.is_some(), opt.nats_token.is_some(), opt.nats_ca.is_some()];
        if opt.nats.is_none() && cluster_options.contains(&true) {
            problems.push(format!(
                "nats_user, nats_password, nats_token and nats_ca are for a node of a cluster: set nats ({}) too",
                env::PROVISO_NATS
            ));
        }
        if opt.nats.as_deref().is_some_and(|url| url.split_once("://").map_or(url, |(_, rest)| rest).contains('@')) {
            problems.push(format!(
                "nats ({}): put the user and password in nats_user and nats_password ({}), not in the URL (it shows \
                 in logs and `proviso config show`)",
                env::PROVISO_NATS,
                env::PROVISO_NATS_PASSWORD
            ));
        }
        if opt.nats_user.is_some() != opt.nats_password.is_some() {
            problems.push(format!(
                "nats_user ({}) and nats_password ({}) go together",
                env::PROVISO_NATS_USER,
                env::PROVISO_NATS_PASSWORD
            ));
        }
        if opt.nats_user.is_some() && opt.nats_token.is_some() {
            problems.push("give NATS a user and password or a token, not both".to_string());
        }
        if !(1..=crate::cluster::MAX_PARTITIONS).contains(&opt.cluster_partitions) {
            problems.push(format!(
                "cluster_partitions ({}): {} is not between 1 and {}",
                env::PROVISO_CLUSTER_PARTITIONS,
                opt.cluster_partitions,
                crate::cluster::MAX_PARTITIONS
            ));
        }
        if !(2..=300).contains(&opt.cluster_lease_seconds) {
            problems.push(format!(
                "cluster_lease_seconds ({}): {} is not between 2 and 300",
                env::PROVISO_CLUSTER_LEASE_SECONDS,
                opt.cluster_lease_seconds
            ));
        }
        if let Some(ca) = &opt.nats_ca {
            if let Err(error) = std::fs::metadata(ca) {
                problems.push(format!("nats_ca ({}): {}: {error}", env::PROVISO_NATS_CA, ca.display()));
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        Ok(Config {
            data_dir: opt.data.clone(),
            listen: opt.listen,
            default_region,
            max_request_bytes: opt.max_request_bytes,
            policy,
            policy_source,
            snapshot_every_records: opt.snapshot_every_records,
            segment_bytes: opt.segment_bytes,
            tokens,
            pseudonym_key,
            partners,
            rules_path: opt.rules.clone(),
            backup_dir: opt.backup_dir.clone().unwrap_or_else(|| default_backup_dir(&opt.data)),
            audience,
            erasure_compaction_seconds: opt.erasure_compaction_seconds,
            max_future_skew_seconds: opt.max_future_skew_seconds,
            idempotency_window_seconds: opt.idempotency_window_seconds,
            limits,
            cluster: opt.nats.clone().map(|url| ClusterConfig {
                url,
                node: opt.node.clone().unwrap_or_else(|| format!("{}:{}", host_name(), opt.listen.port())),
                auth: crate::cluster::NatsAuth {
                    user: opt.nats_user.clone().zip(opt.nats_password.as_ref().map(|p| p.expose().to_string())),
                    token: opt.nats_token.as_ref().map(|token| token.expose().to_string()),
                    ca: opt.nats_ca.clone(),
                },
                lease: std::time::Duration::from_secs(opt.cluster_lease_seconds),
                partitions: opt.cluster_partitions,
            }),
            opt,
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
            clock: crate::clock::Clock::system(),
            idempotency_window: std::time::Duration::from_secs(self.idempotency_window_seconds),
            cluster: None,
        }
    }
}

fn resolve_partners(configs: &[PartnerConfig], problems: &mut Vec<String>) -> Vec<Partner> {
    let mut partners = Vec::new();
    for config in configs {
        let name = &config.name;
        if name.is_empty() {
            // The entry may hold tokens: never echo it.
            problems.push(
                "partners: an entry has no name; write NAME:PURPOSE,...:TOKEN,...[:PSEUDONYM_KEY], or a [[partners]] table with name, purposes and tokens"
                    .to_string(),
            );
            continue;
        }
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

/// An empty value is no value: a variable set to nothing (`PROVISO_ADMIN_TOKEN=`)
/// leaves its secret unset, and an empty entry (an empty `PROVISO_TOKENS`,
/// doubled spaces) is no entry. `config show` then shows what is in force.
fn drop_empty_values(opt: &mut Opt) {
    for secret in [
        &mut opt.pseudonym_key,
        &mut opt.admin_token,
        &mut opt.ingest_token,
        &mut opt.analyst_token,
        &mut opt.subject_service_token,
        &mut opt.reviewer_token,
        &mut opt.advertiser_token,
    ] {
        if secret.as_ref().is_some_and(|value| value.expose().is_empty()) {
            *secret = None;
        }
    }
    opt.tokens.retain(|token| !(token.name.is_empty() && token.token.expose().is_empty()));
    opt.partners.retain(|partner| !(partner.name.is_empty() && partner.tokens.is_empty()));
}

/// The `tokens` entries, then one entry per role token that is set, named after its environment variable in
/// lower case: an advertiser's budget follows that name, whichever layer
/// set the token.
fn role_tokens(opt: &Opt) -> Vec<TokenConfig> {
    let mut tokens = opt.tokens.clone();
    for (token, variable, role) in [
        (&opt.ingest_token, env::PROVISO_INGEST_TOKEN, Role::Ingest),
        (&opt.analyst_token, env::PROVISO_ANALYST_TOKEN, Role::Analyst),
        (&opt.subject_service_token, env::PROVISO_SUBJECT_SERVICE_TOKEN, Role::SubjectService),
        (&opt.reviewer_token, env::PROVISO_REVIEWER_TOKEN, Role::Reviewer),
        (&opt.advertiser_token, env::PROVISO_ADVERTISER_TOKEN, Role::Advertiser),
        (&opt.admin_token, env::PROVISO_ADMIN_TOKEN, Role::Admin),
    ] {
        if let Some(token) = token {
            tokens.push(TokenConfig {
                name: variable.to_ascii_lowercase(),
                role: role.as_str().to_string(),
                token: token.clone(),
            });
        }
    }
    tokens
}

/// `<data>-backups` beside the data directory.
fn default_backup_dir(data: &std::path::Path) -> PathBuf {
    let mut name = data.file_name().map(|name| name.to_os_string()).unwrap_or_else(|| "proviso-data".into());
    name.push("-backups");
    data.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use clap::{Args, FromArgMatches};

    use super::*;

    /// Parses `args` (after the command name) as a command flattening
    /// [`OptArgs`], blind to the environment this test runs in.
    fn parse(args: &[&str]) -> OptArgs {
        let command = OptArgs::augment_args(clap::Command::new("proviso")).mut_args(|arg| arg.env(None));
        let matches = command.try_get_matches_from(std::iter::once("proviso").chain(args.iter().copied()));
        OptArgs::from_arg_matches(&matches.expect("parses")).expect("options")
    }

    fn write_config(text: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("proviso.toml");
        std::fs::write(&path, text).expect("write");
        let path = path.to_str().expect("utf8").to_string();
        (dir, path)
    }

    /// The documented example config parses, and each layer overrides the one
    /// below it: flag > file > default. (Env sits between file and flag; the
    /// `config show` test in tests/cli.rs sets one by env.)
    #[test]
    fn example_config_parses_and_layers_override_in_order() {
        let example = include_str!("../../docs/proviso.example.toml");
        let file: Opt = toml::from_str(example).expect("example config parses");
        assert!(!file.tokens.is_empty());
        let (_dir, path) = write_config("listen = \"127.0.0.1:9000\"\ndefault_region = \"IN\"\n");
        let from_file = Config::resolve(&parse(&["--config", &path])).expect("resolves");
        assert_eq!(from_file.listen, "127.0.0.1:9000".parse().expect("addr"));
        assert_eq!(from_file.default_region, Region(*b"IN"));
        assert_eq!(from_file.max_request_bytes, default_max_request_bytes());
        let from_flag =
            Config::resolve(&parse(&["--config", &path, "--default-region", "br", "--listen", "127.0.0.1:9001"]))
                .expect("resolves");
        assert_eq!(from_flag.listen, "127.0.0.1:9001".parse().expect("addr"));
        assert_eq!(from_flag.default_region, Region(*b"BR"));
        // A flag given with the default's own value still wins over the file.
        let same_as_default =
            Config::resolve(&parse(&["--config", &path, "--default-region", "US"])).expect("resolves");
        assert_eq!(same_as_default.default_region, Region(*b"US"));
    }

    /// Options that once lived in the file alone take a flag too, and the
    /// tables take a one-line form.
    #[test]
    fn tables_and_former_file_only_options_take_flags() {
        let args = parse(&[
            "--segment-bytes",
            "1048576",
            "--snapshot-every-records",
            "5",
            "--audience-epsilon",
            "0.25",
            "--audience-daily-epsilon",
            "1.5",
            "--tokens",
            "ads-team:advertiser:advertiser-token-0123456789",
            "--tokens",
            "ops:admin:admin:token:with:colons",
            "--partners",
            "friendnet:security,product:friendnet-token-0123456789,friendnet-token-9876543210 othernet:security:othernet-token-0123456789",
        ]);
        let config = Config::resolve(&args).expect("resolves");
        assert_eq!((config.segment_bytes, config.snapshot_every_records), (1 << 20, 5));
        assert_eq!(config.audience, AudienceConfig { k: 100, epsilon: 0.25, daily_epsilon: 1.5, noise_required: true });
        let tokens: Vec<(&str, &str, &str)> =
            config.tokens.iter().map(|t| (t.name.as_str(), t.role.as_str(), t.token.expose())).collect();
        assert_eq!(
            tokens,
            [("ads-team", "advertiser", "advertiser-token-0123456789"), ("ops", "admin", "admin:token:with:colons")]
        );
        let partners: Vec<(&str, usize, usize)> =
            config.partners.iter().map(|p| (p.name.as_str(), p.purposes.len(), p.tokens.len())).collect();
        assert_eq!(partners, [("friendnet", 2, 2), ("othernet", 1, 1)]);
    }

    #[test]
    fn bad_config_lists_every_problem() {
        let (_dir, path) =
            write_config("max_request_bytes = 10\n[[tokens]]\nname = \"x\"\nrole = \"root\"\ntoken = \"short\"\n");
        let error = Config::resolve(&parse(&["--config", &path, "--default-region", "XX1"])).expect_err("invalid");
        let text = error.to_string();
        assert!(text.contains("default_region"), "{text}");
        assert!(text.contains("max_request_bytes"), "{text}");
        assert!(text.contains("role `root`"), "{text}");
        assert!(text.contains("at least 16 characters"), "{text}");
    }

    /// A malformed token or partner entry is refused without echoing it: it
    /// may be nothing but a secret.
    #[test]
    fn malformed_entries_are_refused_without_showing_them() {
        let secret = "only-a-secret-0123456789";
        let partner_secret = "partner:only-a-secret-0123456789";
        for args in [["--tokens", secret], ["--partners", partner_secret]] {
            let error = Config::resolve(&parse(&args)).expect_err("malformed");
            let text = error.to_string();
            assert!(text.contains("an entry has no name"), "{text}");
            assert!(!text.contains("only-a-secret"), "{text}");
        }
        let empty = Config::resolve(&parse(&["--tokens", "", "--partners", ""])).expect("empty entries are none");
        assert!(empty.tokens.is_empty() && empty.partners.is_empty());
    }

    /// Connection limits: default < file < flag, and zero is refused.
    #[test]
    fn connection_limits_layer_and_refuse_zero() {
        let (_dir, path) = write_config("max_connections = 7\nheader_timeout_seconds = 3\n");
        let config = Config::resolve(&parse(&["--config", &path, "--header-timeout-seconds", "5"])).expect("resolves");
        assert_eq!(
            config.limits,
            ConnectionLimits {
                header_timeout_seconds: 5,
                body_idle_timeout_seconds: default_body_idle_timeout_seconds(),
                max_connections: 7,
                max_live_streams_per_token: default_max_live_streams_per_token(),
            }
        );
        let args = ["--config", &path, "--max-live-streams-per-token", "0", "--body-idle-timeout-seconds", "0"];
        let text = Config::resolve(&parse(&args)).expect_err("zero is refused").to_string();
        assert!(text.contains("max_live_streams_per_token must be at least 1"), "{text}");
        assert!(text.contains("body_idle_timeout_seconds must be at least 1"), "{text}");
    }

    /// The built-in defaults are one set: clap's with no flag, serde's for an
    /// empty file, and `Opt::default()`.
    #[test]
    fn defaults_agree_between_clap_serde_and_default() {
        let from_clap = parse(&[]).opt;
        let from_file: Opt = toml::from_str("").expect("empty file");
        assert_eq!(from_clap, Opt::default());
        assert_eq!(from_file, Opt::default());
    }

    /// No option is file-only or env-only: each has a flag and an env
    /// variable from env.rs, and each but `config` is a file key of the same
    /// name (the clap id is the serde key).
    #[test]
    fn every_option_is_a_flag_an_env_variable_and_a_file_key() {
        let command = GlobalOpt::augment_args(OptArgs::augment_args(clap::Command::new("proviso")));
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            assert_eq!(arg.get_long(), Some(id.replace('_', "-").as_str()), "{id}: flag is the key in kebab case");
            let env = arg.get_env().and_then(|e| e.to_str()).unwrap_or_else(|| panic!("{id} has no env variable"));
            assert!(env::ALL.contains(&env), "{env} is missing from env::ALL");
            let in_file = Opt::file_keys().contains(&id);
            assert_eq!(in_file, !["config", "log"].contains(&id), "{id}: file key");
        }
        let mut keys: Vec<&str> = Opt::NAMES.iter().copied().filter(|name| *name != "config").collect();
        keys.sort_unstable();
        let mut file_keys = Opt::file_keys().to_vec();
        file_keys.sort_unstable();
        assert_eq!(keys, file_keys);
    }

    #[test]
    fn secrets_never_print() {
        let token =
            TokenConfig { name: "n".into(), role: "admin".into(), token: Secret::new("supersecretvalue123".into()) };
        assert!(!format!("{token:?}").contains("supersecret"));
        assert_eq!(serde_json::to_string(&token.token).expect("json"), "\"***\"");
        let args = parse(&[
            "--admin-token",
            "supersecretvalue123",
            "--pseudonym-key",
            "supersecretkey",
            "--tokens",
            "t:ingest:supersecretvalue456",
            "--partners",
            "p:security:supersecretvalue789:supersecretkey2",
        ]);
        let shown = args.opt.to_toml();
        assert!(!shown.contains("supersecret"), "{shown}");
        assert!(shown.contains("admin_token = \"***\""), "{shown}");
        assert!(shown.contains("[[partners]]\nname = \"p\""), "{shown}");
        let reread: Opt = toml::from_str(&shown).expect("config show prints a valid config file");
        assert_eq!(reread.partners[0].purposes, ["security"]);
    }
}

/// Cluster mode's settings.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// The NATS server, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// This node's name.
    pub node: String,
    /// How it proves itself to NATS, and whether over TLS.
    pub auth: crate::cluster::NatsAuth,
    /// A partition lease's time, for a new cluster.
    pub lease: std::time::Duration,
    /// Partitions, for a new cluster.
    pub partitions: u16,
}

/// This machine's host name (for a node's default name), or `node`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "node".to_string())
}
