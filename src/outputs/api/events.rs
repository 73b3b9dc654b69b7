//! `POST /v1/events`: the ingest endpoint.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::Serialize;

use super::auth::Role;
use super::error::{ApiError, Code};
use super::SharedState;
use crate::pipeline::Rejection;

/// Outcome of one ingest request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IngestResponse {
    /// Events accepted, durable and visible to every query.
    pub accepted: u64,
    /// Lines refused by the privacy edge, in order.
    pub rejected: Vec<Rejection>,
}

/// Ingests NDJSON (one event per line) or a JSON array of events. Valid
/// lines are kept even when others are rejected. Returns once the accepted
/// events are on disk and applied. Roles: ingest, or partner (partner
/// events only, attributed to the token's partner).
#[utoipa::path(
    post,
    path = "/v1/events",
    request_body(content = String, description = "NDJSON lines or a JSON array of events (contract v1)", content_type = "application/x-ndjson"),
    responses(
        (status = 200, body = IngestResponse),
        (status = 401, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody),
        (status = 413, body = super::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn post_events(
    State(app): State<SharedState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestResponse>, ApiError> {
    let caller = app.tokens.caller(&headers, &[Role::Ingest, Role::Partner])?;
    let started = Instant::now();
    let limit = app.max_request_bytes;
    let too_large = || {
        ApiError::new(
            Code::PayloadTooLarge,
            format!("request body is larger than {limit} bytes; split it into smaller batches"),
        )
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit as usize).await.map_err(|_| too_large())?;
    let pipeline = app.pipeline.clone();
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let rejected = tokio::task::spawn_blocking(move || {
        let source = match &caller.partner {
            Some(partner) => crate::edge::Source::Partner(partner),
            None => crate::edge::Source::Service,
        };
        let mut prepared = pipeline.prepare(&bytes, source);
        let counts = prepared.rejected_by_reason();
        let rejected = std::mem::take(&mut prepared.rejected);
        crate::telemetry::EventsRejected { counts: &counts }.emit();
        if !counts.is_empty() {
            let mut totals = app.rejected.lock().unwrap_or_else(|p| p.into_inner());
            for (reason, count) in &counts {
                *totals.entry(reason.as_str()).or_default() += count;
            }
        }
        let accepted = prepared.accepted() as u64;
        pipeline.submit(prepared, move |result| {
            let _ = sender.send(result.map(|_| accepted));
        });
        rejected
    })
    .await
    .map_err(ApiError::internal)?;
    let accepted = receiver.await.map_err(|_| ApiError::new(Code::Unavailable, "proviso is shutting down"))??;
    crate::telemetry::EventsAccepted { count: accepted, duration: started.elapsed() }.emit();
    Ok(Json(IngestResponse { accepted, rejected }))
}
