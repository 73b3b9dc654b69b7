//! Operational endpoints: health, Prometheus metrics, the OpenAPI document.

use super::error::{ApiError, Code};
use super::SharedState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok` when the server answers.
    status: &'static str,
    /// Events in the log.
    events: u64,
    /// Subjects known.
    subjects: u64,
}

/// Liveness and a few counts. Public.
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health)))]
pub async fn healthz(State(app): State<SharedState>) -> Json<Health> {
    let state = app.pipeline.state();
    Json(Health { status: "ok", events: state.next_seq, subjects: state.subjects.acting() as u64 })
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
