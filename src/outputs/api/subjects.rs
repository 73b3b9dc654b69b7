//! Subject endpoints for the messaging app's privacy center (role
//! subject-service): resolve a number to an opaque subject id, read and change
//! consent. Phone numbers travel only in request bodies, never in URLs.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::Role;
use super::error::{ApiError, Code};
use super::SharedState;
use crate::contract::{Event, EventBody, Pseudonym, Purpose, Region};
use crate::disclose::subjects::{consent_view, ConsentView};
use crate::gate::Gated;
use crate::pipeline::Prepared;

/// Who asks about a subject named in the path, and which people they may
/// ask about.
pub trait Asker: Send + Sync + 'static {
    /// The role the token must hold (admin always may).
    const ROLE: Role;
    /// Whether a known pseudonym is someone this asker may see: the
    /// subject-facing service sees people who used the service, reviewers
    /// anyone proviso holds anything about.
    fn finds(state: &crate::state::State, pseudonym: &Pseudonym) -> Option<u32>;
}

/// The messaging app's privacy center (role subject-service).
pub struct ForSubjectService;

impl Asker for ForSubjectService {
    const ROLE: Role = Role::SubjectService;
    fn finds(state: &crate::state::State, pseudonym: &Pseudonym) -> Option<u32> {
        state.subjects.lookup_person(pseudonym)
    }
}

/// Abuse reviewers (role reviewer).
pub struct ForReviewer;

impl Asker for ForReviewer {
    const ROLE: Role = Role::Reviewer;
    fn finds(state: &crate::state::State, pseudonym: &Pseudonym) -> Option<u32> {
        state.subjects.lookup(pseudonym)
    }
}

/// The `{subject}` of a route, checked in the one order every subject
/// route uses: the caller's token and role (401/403), the id's shape (400
/// `invalid_subject`), then whether proviso holds the person (404
/// `subject_not_found`).
pub struct SubjectInPath<A: Asker> {
    pub pseudonym: Pseudonym,
    /// Region of the person's number (the jurisdiction the policy uses).
    pub region: Region,
    /// The role the caller's token holds (`A::ROLE` or admin).
    pub role: Role,
    asker: std::marker::PhantomData<A>,
}

/// The first two checks of [`SubjectInPath`] (token, id shape), for routes
/// that check their body before looking the person up
/// ([`SubjectIdInPath::find`]), so a bad body is a 400 whoever it names.
pub struct SubjectIdInPath<A: Asker> {
    pub pseudonym: Pseudonym,
    pub role: Role,
    asker: std::marker::PhantomData<A>,
}

impl<A: Asker> SubjectIdInPath<A> {
    /// Looks the person up: 404 `subject_not_found` unless `A` may see them.
    pub fn find(self, app: &super::AppState) -> Result<SubjectInPath<A>, ApiError> {
        let state = app.pipeline.state();
        let index = A::finds(&state, &self.pseudonym).ok_or_else(not_found)?;
        let region = state.subjects.get(index).map(|record| record.region).ok_or_else(not_found)?;
        Ok(SubjectInPath { pseudonym: self.pseudonym, region, role: self.role, asker: std::marker::PhantomData })
    }
}

impl<A: Asker> axum::extract::FromRequestParts<SharedState> for SubjectIdInPath<A> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let role = app.tokens.require(&parts.headers, &[A::ROLE])?;
        let no_subject = || ApiError::new(Code::InvalidSubject, "the path names no subject");
        let params = axum::extract::RawPathParams::from_request_parts(parts, app).await.map_err(|_| no_subject())?;
        let subject =
            params.iter().find(|(name, _)| *name == "subject").map(|(_, value)| value).ok_or_else(no_subject)?;
        Ok(SubjectIdInPath { pseudonym: parse_subject(subject)?, role, asker: std::marker::PhantomData })
    }
}

impl<A: Asker> axum::extract::FromRequestParts<SharedState> for SubjectInPath<A> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        SubjectIdInPath::<A>::from_request_parts(parts, app).await?.find(app)
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// The number, in any written form.
    pub phone: String,
    /// Region to read a national-format number in (ISO 3166 alpha-2, either
    /// case).
    #[schema(pattern = "^[A-Za-z]{2}$")]
    pub country: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResolveResponse {
    /// Opaque subject id (`s_` + 32 hex digits).
    pub subject: String,
}

// The purposes a person may grant or refuse (documentation only: the
// handler parses the path).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum RefusablePurpose {
    Product,
    Ads,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentRequest {
    pub granted: bool,
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
    params(("subject" = String, Path, description = "Subject id from /v1/subjects/resolve (`s_` and 32 lowercase hex digits)", pattern = "^s_[0-9a-f]{32}$")),
    responses((status = 200, body = crate::disclose::subjects::ConsentView), (status = 404, body = super::error::ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_consent(
    State(app): State<SharedState>,
    subject: SubjectInPath<ForSubjectService>,
) -> Result<Gated<ConsentView>, ApiError> {
    let state = app.pipeline.state();
    Ok(consent_view(&state, app.pipeline.policy(), &subject.pseudonym, app.now_ms())?)
}

/// Grants or refuses a refusable purpose (product, ads) from now on. The
/// change is logged like any consent event. An essential purpose (service,
/// security, analytics) is always on: naming one is a 400
/// `essential_purpose`, whichever way. Role: subject-service.
#[utoipa::path(
    put,
    path = "/v1/subjects/{subject}/consent/{purpose}",
    params(
        ("subject" = String, Path, description = "Subject id (`s_` and 32 lowercase hex digits)", pattern = "^s_[0-9a-f]{32}$"),
        ("purpose" = inline(RefusablePurpose), Path, description = "product or ads (the essential purposes are always on)"),
    ),
    request_body = ConsentRequest,
    responses((status = 200, body = crate::disclose::subjects::ConsentView), (status = 400, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)),
    security(("bearer" = []))
)]
pub async fn put_consent(
    State(app): State<SharedState>,
    subject: SubjectIdInPath<ForSubjectService>,
    Path((_, purpose)): Path<(String, String)>,
    body: Result<Json<ConsentRequest>, JsonRejection>,
) -> Result<Gated<ConsentView>, ApiError> {
    let purpose = Purpose::parse(&purpose).ok_or_else(|| {
        ApiError::new(
            Code::UnknownPurpose,
            format!("unknown purpose; expected one of: {}", Purpose::expected().trim_end()),
        )
    })?;
    let Json(request) = body.map_err(bad_body)?;
    if purpose.is_essential() {
        let message = if request.granted {
            format!(
                "purpose `{purpose}` is essential and always on; only `product` and `ads` can be granted or refused"
            )
        } else {
            crate::edge::EdgeError::essential_refusal(purpose).message
        };
        return Err(ApiError::new(Code::EssentialPurpose, message));
    }
    let SubjectInPath { pseudonym, region, .. } = subject.find(&app)?;
    let at_ms = app.now_ms();
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
    Ok(consent_view(&state, app.pipeline.policy(), &pseudonym, at_ms)?)
}

pub(crate) fn parse_subject(subject: &str) -> Result<Pseudonym, ApiError> {
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
    params(("subject" = String, Path, description = "Subject id (`s_` and 32 lowercase hex digits)", pattern = "^s_[0-9a-f]{32}$")),
    responses((status = 200, body = EraseResponse), (status = 404, body = super::error::ErrorBody)),
    security(("bearer" = []))
)]
pub async fn erase(
    State(app): State<SharedState>,
    subject: SubjectInPath<ForSubjectService>,
) -> Result<Json<EraseResponse>, ApiError> {
    let SubjectInPath { pseudonym, region, .. } = subject;
    let event = Event { ts_ms: app.now_ms(), subject: pseudonym, region, body: EventBody::DeleteAccount };
    let pipeline = app.pipeline.clone();
    tokio::task::spawn_blocking(move || pipeline.commit_blocking(Prepared::from_events(vec![event])))
        .await
        .map_err(ApiError::internal)??;
    let compacted = app.pipeline.state().housekeeping.erasures_pending == 0;
    Ok(Json(EraseResponse { subject: pseudonym.subject_id(), erased: true, compacted }))
}
