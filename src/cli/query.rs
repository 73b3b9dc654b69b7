//! `proviso query`: usage metrics as a table or JSON.

use anyhow::Context;
use proviso::config::OptArgs;
use proviso::disclose::metrics::{self as usage, ActiveQuery, ActiveResponse, MessagesQuery, MessagesResponse};
use proviso::gate::Staff;
use proviso::pipeline::rebuild_state;

/// Query usage metrics.
///
/// Reads the data dir directly (state as of the last durable event; works
/// while a server runs on it), or asks a running server with --server.
///
/// Examples:
///   proviso query active --window 30
///   proviso query active --from 2026-01-01 --to 2026-01-31 --by country --json
///   proviso query messages --by kind --server http://127.0.0.1:7420 --token $TOKEN
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct QueryCommand {
    #[command(subcommand)]
    pub what: What,
}

#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// Distinct active subjects per day over a trailing window (DAU/WAU/MAU)
    Active {
        #[command(flatten)]
        common: Common,
        /// Trailing window in days: 1 = DAU, 7 = WAU, 30 = MAU
        #[arg(long, default_value_t = 1)]
        window: u32,
        /// Split by `country` or `platform`
        #[arg(long)]
        by: Option<String>,
    },
    /// Messages per day
    Messages {
        #[command(flatten)]
        common: Common,
        /// `kind` splits each day by message kind
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct Common {
    /// First day (YYYY-MM-DD) [default: 29 days before --to]
    #[arg(long)]
    from: Option<String>,
    /// Last day (YYYY-MM-DD) [default: the last day with data]
    #[arg(long)]
    to: Option<String>,
    /// Print JSON (the API's response shape) instead of a table
    #[arg(long)]
    json: bool,
    /// Ask a running server at this URL instead of reading the data dir
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// Bearer token for --server (analyst or admin)
    #[arg(long, env = proviso::config::env::PROVISO_TOKEN, hide_env_values = true)]
    token: Option<String>,
    #[command(flatten)]
    options: OptArgs,
}

pub fn run(command: QueryCommand) -> anyhow::Result<()> {
    match command.what {
        What::Active { common, window, by } => {
            let (source, from, to) = open(&common)?;
            let query = ActiveQuery { from, to, window: Some(window), by };
            let path = format!("/v1/metrics/active?from={}&to={}&window={window}", query.from, query.to);
            let response: ActiveResponse =
                answer(source, path, query.by.as_deref(), |state| usage::active(state, Staff::Admin, &query))?;
            if common.json {
                println!("{}", serde_json::to_string_pretty(&response)?);
                return Ok(());
            }
            println!("{:<12} {:>12}  groups (window {} days)", "day", "active", response.window);
            for point in &response.series {
                println!("{:<12} {:>12}  {}", point.day, point.active, groups_text(point.groups.as_ref()));
            }
        }
        What::Messages { common, by } => {
            let (source, from, to) = open(&common)?;
            let query = MessagesQuery { from, to, by };
            let path = format!("/v1/metrics/messages?from={}&to={}", query.from, query.to);
            let response: MessagesResponse =
                answer(source, path, query.by.as_deref(), |state| usage::messages(state, Staff::Admin, &query))?;
            if common.json {
                println!("{}", serde_json::to_string_pretty(&response)?);
                return Ok(());
            }
            println!("{:<12} {:>12}  kinds", "day", "messages");
            for point in &response.series {
                println!("{:<12} {:>12}  {}", point.day, point.messages, groups_text(point.kinds.as_ref()));
            }
        }
    }
    Ok(())
}

fn groups_text(groups: Option<&std::collections::BTreeMap<String, u64>>) -> String {
    groups.map(|g| g.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

fn api_error(error: proviso::disclose::DiscloseError) -> anyhow::Error {
    anyhow::anyhow!(error.to_string())
}

/// One answer: computed by the disclosure layer from local state (as the
/// admin), or asked of a server at `path` (plus `&by=`).
fn answer<T: serde::de::DeserializeOwned>(
    source: Source,
    mut path: String,
    by: Option<&str>,
    local: impl FnOnce(&proviso::state::State) -> Result<proviso::gate::Gated<T>, proviso::disclose::DiscloseError>,
) -> anyhow::Result<T> {
    match source {
        Source::Local(state) => Ok(local(&state).map_err(api_error)?.into_inner()),
        Source::Remote(client) => {
            if let Some(by) = by {
                path.push_str(&format!("&by={by}"));
            }
            Ok(serde_json::from_value(client.get_json(&path)?)?)
        }
    }
}

/// Where answers come from: state read from the data dir, or a server.
enum Source {
    Local(Box<proviso::state::State>),
    Remote(super::http::Client),
}

/// Opens the source and resolves the day range (defaults: the 30 days
/// ending on the last day with data).
fn open(common: &Common) -> anyhow::Result<(Source, String, String)> {
    if let Some(server) = &common.server {
        let token = common.token.as_deref().context("--server needs --token (or PROVISO_TOKEN)")?;
        let to = common.to.clone().context("--server needs --to")?;
        let to_day = usage::parse_day(&to, "to").map_err(api_error)?;
        let from = common.from.clone().unwrap_or_else(|| usage::format_day(to_day - 29));
        return Ok((Source::Remote(super::http::Client::new(server, token)), from, to));
    }
    let config = super::resolve_config(&common.options)?;
    let (state, _) = rebuild_state(&config.data_dir, true)
        .with_context(|| format!("reading data dir {}", config.data_dir.display()))?;
    if !state.cover.is_whole() {
        anyhow::bail!(
            "{} is a cluster node's data dir: it holds the usage of its partitions only. Ask a running node \
             instead (--server URL --token TOKEN): it gathers every partition",
            config.data_dir.display()
        );
    }
    let to = match &common.to {
        Some(to) => to.clone(),
        None => usage::format_day(state.usage.last_day().context("the data dir holds no activity yet")?),
    };
    let to_day = usage::parse_day(&to, "to").map_err(api_error)?;
    let from = common.from.clone().unwrap_or_else(|| usage::format_day(to_day - 29));
    Ok((Source::Local(Box::new(state)), from, to))
}
