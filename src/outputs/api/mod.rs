//! The HTTP API: one file per area, all mounted in [`router`].
//!
//! Owns: routing, auth, request limits, the error shape, and the OpenAPI
//! document generated from the handlers' annotations.
//! Never: reaches into processors for subject data without the gate, or
//! echoes a submitted value in a response.

mod abuse;
mod admin;
mod audiences;
pub mod auth;
pub mod document;
pub mod error;
mod events;
pub mod limits;
pub mod live;
mod ops;
mod partners;
pub mod report;
mod subjects;
pub mod usage;

/// The handlers' query-string readers as pure functions, for
/// `crate::fuzzing` (fuzz targets and the corpus replay test).
pub(crate) mod params {
    pub(crate) use super::abuse::{actions_params, ActionsQuery};
    pub(crate) use super::audiences::{partner_audience_params, size_params, AudienceQuery};
    pub(crate) use super::live::{live_params, LiveQuery};
    pub(crate) use super::partners::{feed_params, suggestions_params, FeedQuery, SuggestionsQuery};
    pub(crate) use super::subjects::parse_subject;
    pub(crate) use super::usage::{active_params, messages_params};
}

use std::sync::Arc;

use axum::routing::{get, post, put};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::pipeline::Pipeline;
use auth::{Role, Tokens};

/// Everything a handler needs.
pub struct AppState {
    pub pipeline: Arc<Pipeline>,
    pub tokens: Tokens,
    pub max_request_bytes: u64,
    pub prometheus: Option<PrometheusHandle>,
    /// Folder that list files named in posted rules resolve against.
    pub rules_base_dir: std::path::PathBuf,
    /// The one directory backups may be written into (`backup_dir`).
    pub backup_dir: std::path::PathBuf,
    /// The disclosure layer: every partner, advertiser and subject body
    /// comes from here, gated, audited and recorded.
    pub disclosure: Arc<crate::disclose::Disclosure>,
    /// Lines rejected by the edge since start, by reason (for the dashboard).
    pub rejected: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// The dashboard's live figures, shared by every open stream.
    pub live: live::LiveCache,
    /// Set when the server begins to shut down: open streams end.
    pub closing: Arc<std::sync::atomic::AtomicBool>,
    /// Open `/v1/live` streams per token.
    pub live_streams: Arc<limits::LiveStreams>,
    /// Timeouts and caps on connections and streams.
    pub limits: crate::config::ConnectionLimits,
    /// Cluster mode: the partitions whose lease this node holds.
    pub leases: Option<crate::cluster::leases::Keeper>,
    /// Cluster mode: how usage queries reach the other nodes.
    pub gather: Option<usage::Gatherer>,
}

pub type SharedState = Arc<AppState>;

impl AppState {
    /// Now, on the process's one clock (the pipeline's).
    pub fn now_ms(&self) -> i64 {
        self.pipeline.clock().now_ms()
    }
}

/// Every route: method, path, and the roles admitted besides admin (empty
/// = public, except the admin-only routes listed in [`ADMIN_ONLY`]).
/// The OpenAPI test and the auth matrix test both walk this table.
pub const ROUTES: &[(&str, &str, &[Role])] = &[
    ("POST", "/v1/events", &[Role::Ingest, Role::Partner]),
    ("GET", "/v1/metrics/active", &[Role::Analyst]),
    ("GET", "/v1/metrics/messages", &[Role::Analyst]),
    ("GET", "/v1/live", &[Role::Analyst]),
    ("POST", "/v1/subjects/resolve", &[Role::SubjectService]),
    ("GET", "/v1/subjects/{subject}/consent", &[Role::SubjectService]),
    ("PUT", "/v1/subjects/{subject}/consent/{purpose}", &[Role::SubjectService]),
    ("GET", "/v1/subjects/{subject}/report", &[Role::SubjectService]),
    ("POST", "/v1/subjects/{subject}/erase", &[Role::SubjectService]),
    ("GET", "/v1/abuse/actions", &[Role::Reviewer]),
    ("GET", "/v1/abuse/subjects/{subject}", &[Role::Reviewer]),
    ("POST", "/v1/abuse/subjects/{subject}/decision", &[Role::Reviewer]),
    ("POST", "/v1/abuse/rules", &[]),
    ("POST", "/v1/admin/backup", &[]),
    ("GET", "/v1/partners/{partner}/feeds/{purpose}", &[Role::Partner]),
    ("GET", "/v1/partners/{partner}/suggestions/{partner_id}", &[Role::Partner]),
    ("GET", "/v1/partners/{partner}/audiences/{business}", &[Role::Partner]),
    ("GET", "/v1/audiences/{business}", &[Role::Advertiser]),
    ("GET", "/healthz", &[]),
    ("GET", "/metrics", &[]),
    ("GET", "/openapi.json", &[]),
];

/// Routes only the admin role may use.
pub const ADMIN_ONLY: &[&str] = &["/v1/abuse/rules", "/v1/admin/backup"];

/// Builds the whole application router.
pub fn router(state: SharedState) -> Router {
    Router::new()
        .route("/v1/events", post(events::post_events))
        .route("/v1/metrics/active", get(usage::get_active))
        .route("/v1/metrics/messages", get(usage::get_messages))
        .route("/v1/live", get(live::get_live))
        .route("/v1/subjects/resolve", post(subjects::resolve))
        .route("/v1/subjects/{subject}/consent", get(subjects::get_consent))
        .route("/v1/subjects/{subject}/consent/{purpose}", put(subjects::put_consent))
        .route("/v1/subjects/{subject}/report", get(report::get_report))
        .route("/v1/subjects/{subject}/erase", post(subjects::erase))
        .route("/v1/abuse/actions", get(abuse::get_actions))
        .route("/v1/abuse/subjects/{subject}", get(abuse::get_subject))
        .route("/v1/abuse/subjects/{subject}/decision", post(abuse::post_decision))
        .route("/v1/abuse/rules", post(abuse::post_rules))
        .route("/v1/admin/backup", post(admin::post_backup))
        .route("/v1/partners/{partner}/feeds/{purpose}", get(partners::get_feed))
        .route("/v1/partners/{partner}/suggestions/{partner_id}", get(partners::get_suggestions))
        .route("/v1/partners/{partner}/audiences/{business}", get(audiences::get_partner_audience))
        .route("/v1/audiences/{business}", get(audiences::get_size))
        .route("/", get(crate::outputs::dashboard::index))
        .route("/privacy", get(crate::outputs::dashboard::privacy))
        .route("/review", get(crate::outputs::dashboard::review))
        .route("/assets/{name}", get(crate::outputs::dashboard::asset))
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::prometheus))
        .route("/openapi.json", get(ops::openapi))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), limits::catch_up_first))
        // Runs after routing and before the handler's extractors: the
        // token is checked before any body is read.
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), limits::authenticate_first))
        .fallback(ops::not_found)
        .layer(axum::middleware::from_fn(limits::standard_errors))
        .with_state(state)
}

/// The OpenAPI document, generated from the handler annotations.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "proviso", description = "Consent-gated sharing of messaging usage data. Every error body is ErrorBody."),
    paths(
        events::post_events,
        usage::get_active,
        usage::get_messages,
        live::get_live,
        subjects::resolve,
        subjects::get_consent,
        subjects::put_consent,
        report::get_report,
        subjects::erase,
        abuse::get_actions,
        abuse::get_subject,
        abuse::post_decision,
        abuse::post_rules,
        admin::post_backup,
        partners::get_feed,
        partners::get_suggestions,
        audiences::get_partner_audience,
        audiences::get_size,
        ops::healthz,
        ops::prometheus,
        ops::openapi,
    ),
    components(schemas(error::ErrorBody, crate::disclose::partners::PurposeFeedPage)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// A page size from `?limit=`: `default` when absent, else 1..=`max`.
pub(crate) fn page_limit(limit: Option<usize>, default: usize, max: usize) -> Result<usize, error::ApiError> {
    let limit = limit.unwrap_or(default);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(error::ApiError::new(error::Code::InvalidQuery, format!("`limit` must be 1..={max}")))
    }
}

pub(crate) use crate::disclose::rfc3339;

#[cfg(test)]
mod tests {
    use super::*;

    /// The OpenAPI document lists exactly the routes the router serves.
    #[test]
    fn openapi_lists_every_route_and_nothing_else() {
        let doc = document::document();
        let paths = doc["paths"].as_object().expect("paths");
        let mut documented: Vec<(String, String)> = Vec::new();
        for (path, item) in paths {
            for method in item.as_object().expect("item").keys() {
                documented.push((method.to_ascii_uppercase(), path.clone()));
            }
        }
        documented.sort();
        let mut routed: Vec<(String, String)> = ROUTES.iter().map(|(m, p, _)| (m.to_string(), p.to_string())).collect();
        routed.sort();
        assert_eq!(documented, routed);
    }
}
