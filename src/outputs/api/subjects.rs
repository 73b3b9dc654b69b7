//! Subject endpoints for the messaging app's privacy center (role
//! subject-service): resolve a number to an opaque subject id, read and change
//! consent. Phone numbers travel only in request bodies, never in URLs.

use std::collections::BTreeMap;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::Role;
use super::error::{ApiError, Code};
use super::{now_ms, rfc3339, SharedState};
use crate::consent::status_at;
use crate::contract::{Event, EventBody, Pseudonym, Purpose};
use crate::gate::{release_to_subject, Gated};
use crate::pipeline::Prepared;
use crate::state::State as DerivedState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// The number, in any written form.
    pub phone: String,
    /// Region to read a national-format number in (ISO 3166 alpha-2).
    pub country: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResolveResponse {
    /// Opaque subject id (`s_` + 32 hex digits).
    pub subject: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentRequest {
    pub granted: bool,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PurposeView {
    /// granted, denied or pending.
    pub state: String,
    /// essential, consent_granted, consent_refused, opt_in_required or opt_out_notice.
    pub basis: String,
    /// RFC 3339 start of this state, when known.
    pub since: Option<String>,
    /// RFC 3339 end of a pending notice period.
    pub until: Option<String>,
    /// Whether the person may refuse this purpose.
    pub refusable: bool,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsentChangeView {
    pub purpose: String,
    pub granted: bool,
    pub at: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsentView {
    pub subject: String,
    /// Region of the number (the jurisdiction the policy uses).
    pub region: String,
    /// State per purpose, now.
    pub purposes: BTreeMap<String, PurposeView>,
    /// Every explicit choice, oldest first.
    pub history: Vec<ConsentChangeView>,
}

/// Resolves a number to its opaque subject id. 404 unless the number's owner
/// has used the service (a number only in other people's address books
/// answers as unknown). Role: subject-service.
#[utoipa::path(
    post,
    path = "/v1/subjects/resolve",
    request_body = ResolveRequest,
    responses((status = 200, body = ResolveResponse), (status = 400, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)),
    security(("bearer" = []))
)]
pub async fn resolve(
    State(app): State<SharedState>,
    headers: HeaderMap,
    body: Result<Json<ResolveRequest>, JsonRejection>,
) -> Result<Json<ResolveResponse>, ApiError> {
    app.tokens.require(&headers, &[Role::SubjectService])?;
    let Json(request) = body.map_err(bad_body)?;
    let (pseudonym, _) = app
        .pipeline
        .edge()
        .resolve_phone(&request.phone, request.country.as_deref())
        .map_err(|error| ApiError::new(Code::InvalidPhone, error.message))?;
    if app.pipeline.state().subjects.lookup_person(&pseudonym).is_none() {
        return Err(not_found());
    }
    Ok(Json(ResolveResponse { subject: pseudonym.subject_id() }))
}

/// Consent state per purpose and the history of choices. Role: subject-service.
#[utoipa::path(
    get,
    path = "/v1/subjects/{subject}/consent",
    params(("subject" = String, Path, description = "Subject id from /v1/subjects/resolve")),
    responses((status = 200, body = ConsentView), (status = 404, body = super::error::ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_consent(
    State(app): State<SharedState>,
    headers: HeaderMap,
    Path(subject): Path<String>,
) -> Result<Json<ConsentView>, ApiError> {
    app.tokens.require(&headers, &[Role::SubjectService])?;
    let pseudonym = parse_subject(&subject)?;
    let state = app.pipeline.state();
    Ok(Json(consent_view(&state, app.pipeline.policy(), &pseudonym, now_ms())?.into_inner()))
}

/// Grants or refuses a refusable purpose (product, ads) from now on. The
/// change is logged like any consent event. Role: subject-service.
#[utoipa::path(
    put,
    path = "/v1/subjects/{subject}/consent/{purpose}",
    params(
        ("subject" = String, Path, description = "Subject id"),
        ("purpose" = String, Path, description = "product or ads"),
    ),
    request_body = ConsentRequest,
    responses((status = 200, body = ConsentView), (status = 400, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)),
    security(("bearer" = []))
)]
pub async fn put_consent(
    State(app): State<SharedState>,
    headers: HeaderMap,
    Path((subject, purpose)): Path<(String, String)>,
    body: Result<Json<ConsentRequest>, JsonRejection>,
) -> Result<Json<ConsentView>, ApiError> {
    app.tokens.require(&headers, &[Role::SubjectService])?;
    let pseudonym = parse_subject(&subject)?;
    let purpose = Purpose::parse(&purpose).ok_or_else(|| {
        ApiError::new(
            Code::UnknownPurpose,
            format!("unknown purpose; expected one of: {}", Purpose::expected().trim_end()),
        )
    })?;
    let Json(request) = body.map_err(bad_body)?;
    if purpose.is_essential() && !request.granted {
        return Err(ApiError::new(Code::EssentialPurpose, crate::edge::EdgeError::essential_refusal(purpose).message));
    }
    let region = {
        let state = app.pipeline.state();
        let index = state.subjects.lookup_person(&pseudonym).ok_or_else(not_found)?;
        state.subjects.get(index).map(|r| r.region).ok_or_else(not_found)?
    };
    let at_ms = now_ms();
    let event = Event {
        ts_ms: at_ms,
        subject: pseudonym,
        region,
        body: EventBody::Consent { purpose, granted: request.granted },
    };
    let pipeline = app.pipeline.clone();
    let (sender, receiver) = tokio::sync::oneshot::channel();
    tokio::task::spawn_blocking(move || {
        pipeline.submit(Prepared::from_events(vec![event]), move |result| {
            let _ = sender.send(result);
        })
    })
    .await
    .map_err(ApiError::internal)?;
    receiver.await.map_err(|_| ApiError::new(Code::Unavailable, "proviso is shutting down"))??;
    let state = app.pipeline.state();
    Ok(Json(consent_view(&state, app.pipeline.policy(), &pseudonym, at_ms)?.into_inner()))
}

/// The consent view of one subject at `at_ms`, released to the subject-facing
/// service.
pub fn consent_view(
    state: &DerivedState,
    policy: &crate::consent::Policy,
    pseudonym: &Pseudonym,
    at_ms: i64,
) -> Result<Gated<ConsentView>, ApiError> {
    let index = state.subjects.lookup_person(pseudonym).ok_or_else(not_found)?;
    let record = state.subjects.get(index).ok_or_else(not_found)?;
    let history = state.consent.history(index);
    let purposes = Purpose::ALL
        .iter()
        .map(|purpose| {
            let status = status_at(history, *purpose, record.region.as_str(), record.first_seen_ms, policy, at_ms);
            let view = PurposeView {
                state: status.state.as_str().to_string(),
                basis: status.basis.as_str().to_string(),
                since: status.since_ms.map(rfc3339),
                until: status.until_ms.map(rfc3339),
                refusable: !purpose.is_essential(),
            };
            (purpose.as_str().to_string(), view)
        })
        .collect();
    let history = history
        .iter()
        .map(|change| ConsentChangeView {
            purpose: change.purpose.as_str().to_string(),
            granted: change.granted,
            at: rfc3339(change.ts_ms),
        })
        .collect();
    Ok(release_to_subject(ConsentView {
        subject: pseudonym.subject_id(),
        region: record.region.as_str().to_string(),
        purposes,
        history,
    }))
}

pub(super) fn parse_subject(subject: &str) -> Result<Pseudonym, ApiError> {
    Pseudonym::from_subject_id(subject)
        .ok_or_else(|| ApiError::new(Code::InvalidSubject, "subject ids look like `s_` followed by 32 hex digits"))
}

pub(super) fn not_found() -> ApiError {
    ApiError::new(Code::SubjectNotFound, "proviso holds nothing about this subject")
}

pub(super) fn bad_body(rejection: JsonRejection) -> ApiError {
    // Serde's messages may quote the submitted value (a phone number): keep
    // only the position.
    let message = match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "send the body as JSON with `Content-Type: application/json`".to_string()
        }
        _ => "the body must be a JSON object with the documented fields; see /openapi.json".to_string(),
    };
    ApiError::new(Code::InvalidBody, message)
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EraseResponse {
    pub subject: String,
    pub erased: bool,
    /// Whether the log no longer holds the subject's events (true when the
    /// erasure bound is zero; otherwise compaction follows within the bound).
    pub compacted: bool,
}

/// Erases a person: logged like a `delete_account` event. From the
/// acknowledgement they are gone from every state and output, partners get
/// retractions, and once the log is compacted (within the configured bound,
/// or `proviso compact`) no byte of their pseudonym or events remains in the
/// data dir. Role: subject-service.
#[utoipa::path(
    post,
    path = "/v1/subjects/{subject}/erase",
    params(("subject" = String, Path, description = "Subject id")),
    responses((status = 200, body = EraseResponse), (status = 404, body = super::error::ErrorBody)),
    security(("bearer" = []))
)]
pub async fn erase(
    State(app): State<SharedState>,
    headers: HeaderMap,
    Path(subject): Path<String>,
) -> Result<Json<EraseResponse>, ApiError> {
    app.tokens.require(&headers, &[Role::SubjectService])?;
    let pseudonym = parse_subject(&subject)?;
    let region = {
        let state = app.pipeline.state();
        let index = state.subjects.lookup_person(&pseudonym).ok_or_else(not_found)?;
        state.subjects.get(index).map(|r| r.region).ok_or_else(not_found)?
    };
    let event = Event { ts_ms: now_ms(), subject: pseudonym, region, body: EventBody::DeleteAccount };
    let pipeline = app.pipeline.clone();
    tokio::task::spawn_blocking(move || pipeline.commit_blocking(Prepared::from_events(vec![event])))
        .await
        .map_err(ApiError::internal)??;
    let compacted = app.pipeline.state().housekeeping.erasures_pending == 0;
    Ok(Json(EraseResponse { subject: pseudonym.subject_id(), erased: true, compacted }))
}
