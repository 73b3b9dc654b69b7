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
use crate::pipeline::{Committed, Prepared, Rejection};

/// The request header naming a batch for safe resending (IETF httpapi
/// `Idempotency-Key` draft).
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Longest accepted idempotency key.
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// The `Idempotency-Key` header, if any: 1 to 255 visible ASCII characters
/// (a UUID is the usual choice). The error never quotes the value.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else { return Ok(None) };
    let invalid = |what: &str| {
        ApiError::new(
            Code::InvalidIdempotencyKey,
            format!(
                "the `Idempotency-Key` header {what}; send one key of 1 to {MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII \
                 characters (e.g. a UUID), the same on every resend of a batch"
            ),
        )
    };
    if values.next().is_some() {
        return Err(invalid("is sent more than once"));
    }
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        return Err(invalid("is empty"));
    }
    if bytes.len() > MAX_IDEMPOTENCY_KEY_CHARS {
        return Err(invalid(&format!("is longer than {MAX_IDEMPOTENCY_KEY_CHARS} characters")));
    }
    if !bytes.iter().all(u8::is_ascii_graphic) {
        return Err(invalid("holds a character that is not visible ASCII"));
    }
    // Visible ASCII is UTF-8.
    value.to_str().map(Some).map_err(|_| invalid("holds a character that is not visible ASCII"))
}

/// Whose keys a key belongs to: the token's configured name, or its role
/// for a token without one; a partner's name as well, so two callers using
/// the same key never share an answer.
fn key_scope(caller: &super::auth::Caller) -> String {
    format!(
        "{:?}\u{1f}{}\u{1f}{}",
        caller.role,
        caller.partner.as_deref().unwrap_or(""),
        caller.name.as_deref().unwrap_or("")
    )
}

/// The first answer to a key, for a resend of the same body (`request`,
/// its digest); a different body under the key is refused (422, as the
/// IETF `Idempotency-Key` draft asks). A key logged before bodies were
/// digested is answered as a resend.
fn replayed_response(
    answer: &crate::contract::KeyedAnswer,
    request: Option<[u8; 16]>,
) -> Result<IngestResponse, ApiError> {
    if answer.request.is_some_and(|first| Some(first) != request) {
        return Err(ApiError::new(
            Code::IdempotencyKeyReused,
            "this Idempotency-Key was already used for a different request body; nothing was applied. Send a new \
             batch under a new key, and resend a batch only with its own body",
        ));
    }
    Ok(IngestResponse { accepted: answer.accepted, rejected: Prepared::rejections_of(answer) })
}

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
/// events only, attributed to the token's partner). With an
/// `Idempotency-Key` header, a resend of a batch already applied (within
/// `idempotency_window_seconds`) is not applied again and gets the first
/// answer back, even if the server crashed before sending it.
#[utoipa::path(
    post,
    path = "/v1/events",
    request_body(content = String, description = "NDJSON lines or a JSON array of events (contract v1)", content_type = "application/x-ndjson"),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Client-chosen key of 1 to 255 visible ASCII characters, the same on every resend of one batch: a batch already applied under this key (by this token, within `idempotency_window_seconds`) is not applied again and the first answer is returned"),
    ),
    responses(
        (status = 200, body = IngestResponse),
        (status = 400, description = "invalid_idempotency_key", body = super::error::ErrorBody),
        (status = 401, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody),
        (status = 413, body = super::error::ErrorBody),
        (status = 422, description = "idempotency_key_reused: the key was used for a different body", body = super::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn post_events(
    State(app): State<SharedState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestResponse>, ApiError> {
    let caller = app.tokens.caller(&headers, &[Role::Ingest, Role::Partner])?;
    let key_digest =
        idempotency_key(&headers)?.map(|key| crate::pipeline::idempotency_digest(&key_scope(&caller), key));
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
    let request = key_digest.map(|_| crate::pipeline::request_digest(&bytes));
    if let Some(answer) = key_digest.as_ref().and_then(|digest| app.pipeline.recent_answer(digest)) {
        tracing::debug!("Answered a resent batch with its first answer; nothing applied again.");
        return replayed_response(&answer, request).map(Json);
    }
    let pipeline = app.pipeline.clone();
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let (accepted, rejected) = tokio::task::spawn_blocking(move || {
        let source = match &caller.partner {
            Some(partner) => crate::edge::Source::Partner(partner),
            None => crate::edge::Source::Service,
        };
        let mut prepared = pipeline.prepare(&bytes, source);
        let accepted = prepared.accepted() as u64;
        if let Some(digest) = key_digest {
            prepared.keyed(digest, request, pipeline.clock().now_ms());
        }
        let counts = prepared.rejected_by_reason();
        let rejected = std::mem::take(&mut prepared.rejected);
        crate::telemetry::EventsRejected { counts: &counts }.emit();
        if !counts.is_empty() {
            let mut totals = app.rejected.lock().unwrap_or_else(|p| p.into_inner());
            for (reason, count) in &counts {
                *totals.entry(reason.as_str()).or_default() += count;
            }
        }
        pipeline.submit_keyed(prepared, move |result| {
            let _ = sender.send(result);
        });
        (accepted, rejected)
    })
    .await
    .map_err(ApiError::internal)?;
    let committed = receiver.await.map_err(|_| ApiError::new(Code::Unavailable, "proviso is shutting down"))??;
    match committed {
        Committed::Applied { .. } => {
            crate::telemetry::EventsAccepted { count: accepted, duration: started.elapsed() }.emit();
            Ok(Json(IngestResponse { accepted, rejected }))
        }
        // A concurrent request with the same key was applied first.
        Committed::Replayed(answer) => {
            tracing::debug!("Answered a concurrent resend with the first answer; nothing applied again.");
            replayed_response(&answer, request).map(Json)
        }
    }
}
