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
    /// failed: writes are refused until proviso is restarted; or, in cluster
    /// mode, `cluster_stopped` (503) once the node stopped applying the
    /// cluster's log.
    status: &'static str,
    /// Events in the log.
    events: u64,
    /// Subjects known.
    subjects: u64,
    /// With `storage_failed` or `cluster_stopped`: what happened and what to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    /// Cluster mode: the position (`epoch:sequence`) of the last message of
    /// the cluster's log this node applied. Absent in embedded mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_position: Option<String>,
    /// Cluster mode: the partitions whose lease this node holds now (each
    /// partition is held by one node at a time; they move when a node
    /// dies, joins or stops). Absent in embedded mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    partitions_held: Option<Vec<u16>>,
    /// Cluster mode: the partitions whose people's usage this node's state
    /// holds (it follows `partitions_held` once the writer has rebuilt
    /// usage for them; every one before the node's first lease round).
    /// Usage queries gather the other partitions from the nodes covering
    /// them. Absent in embedded mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    partitions_covered: Option<Vec<u16>>,
}

/// Liveness and a few counts. Public. 503 once a write to the log failed
/// (full or broken disk): queries are still answered, writes are refused
/// until restart, so a probe or a balancer can see it. Cluster mode: also
/// 503 (`cluster_stopped`) once the node stopped applying the cluster's log
/// (it answers nothing else until restarted).
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn healthz(State(app): State<SharedState>) -> impl IntoResponse {
    let state = app.pipeline.state();
    let (events, subjects) = (state.next_seq, state.subjects.acting() as u64);
    let partitions_covered = app.leases.as_ref().map(|leases| state.cover.held_of(leases.partitions));
    drop(state);
    let cluster = app.pipeline.cluster_status();
    let cluster_position = cluster.as_ref().map(|(position, _)| position.to_string());
    let partitions_held = app.leases.as_ref().map(|leases| leases.view.held());
    let health = |status, message| {
        Json(Health { status, events, subjects, message, cluster_position, partitions_held, partitions_covered })
    };
    if let Some(cause) = app.pipeline.write_failure() {
        let message = format!(
            "proviso could not write its log ({cause}); writes are refused until it is restarted: free space or \
             repair the disk, then restart proviso"
        );
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, health("storage_failed", Some(message)));
    }
    if let Some((_, Some(why))) = cluster {
        let message = format!("this node stopped applying the cluster's log ({why}); restart it");
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, health("cluster_stopped", Some(message)));
    }
    (axum::http::StatusCode::OK, health("ok", None))
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
