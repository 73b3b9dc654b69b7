//! Operational endpoints: health, Prometheus metrics, the OpenAPI document.

use super::error::{ApiError, Code};
use super::SharedState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`; or `storage_failed` (with status 503) once a write to the log
    /// failed: writes are refused until proviso is restarted.
    status: &'static str,
    /// Events in the log.
    events: u64,
    /// Subjects known.
    subjects: u64,
    /// With `storage_failed`: what the disk did and what to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

/// Liveness and a few counts. Public. 503 once a write to the log failed
/// (full or broken disk): queries are still answered, writes are refused
/// until restart, so a probe or a balancer can see it.
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn healthz(State(app): State<SharedState>) -> impl IntoResponse {
    let state = app.pipeline.state();
    let (events, subjects) = (state.next_seq, state.subjects.acting() as u64);
    drop(state);
    match app.pipeline.write_failure() {
        None => (axum::http::StatusCode::OK, Json(Health { status: "ok", events, subjects, message: None })),
        Some(cause) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "storage_failed",
                events,
                subjects,
                message: Some(format!(
                    "proviso could not write its log ({cause}); writes are refused until it is restarted: free space \
                     or repair the disk, then restart proviso"
                )),
            }),
        ),
    }
}

/// proviso's own metrics in Prometheus text format. Public: it carries no
/// identifiers by construction (labels come from closed enums).
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub async fn prometheus(State(app): State<SharedState>) -> impl IntoResponse {
    let body = app.prometheus.as_ref().map(|handle| handle.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// This document. Public.
#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn openapi() -> Json<&'static serde_json::Value> {
    Json(super::document::document())
}

pub async fn not_found() -> ApiError {
    ApiError::new(Code::RouteNotFound, "no such route; see /openapi.json")
}
