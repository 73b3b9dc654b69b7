//! Abuse endpoints: the review queue, a subject's evidence, reviewer
//! decisions (role reviewer) and rules reloads (role admin).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::Role;
use super::error::{ApiError, Code};
use super::subjects::{bad_body, not_found, ForReviewer, SubjectIdInPath, SubjectInPath};
use super::{rfc3339, SharedState};
use crate::contract::{Control, ControlBody, DecisionAction, Pseudonym};
use crate::gate::{release_for_staff, Gated, Staff};
use crate::pipeline::Prepared;
use crate::processors::abuse::{Action, Origin, Status};
use crate::state::State as DerivedState;

/// Largest page of actions.
const MAX_LIMIT: usize = 1000;
/// Longest reviewer note, in characters (what the document's `maxLength` counts).
const MAX_NOTE_CHARS: usize = 2000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ActionsQuery {
    /// Only actions that set this status: banned, review or clear.
    #[param(inline, value_type = Option<StatusParam>)]
    pub status: Option<String>,
    /// Cursor: return actions after this id (the `next` of the last page).
    #[param(maximum = 18446744073709551615_u64)]
    pub after: Option<u64>,
    /// Page size, 1..=1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Only actions still in force: each subject's latest action, when the
    /// subject's status is still the one it set. With `status=review`, the
    /// open review queue, one item per subject.
    pub open: Option<bool>,
}

// The values of `status=` (documentation only: the handler parses them).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum StatusParam {
    Banned,
    Review,
    Clear,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActionView {
    pub id: u64,
    pub subject: String,
    /// Status the action set: banned, review or clear.
    pub status: String,
    /// The subject's status now.
    pub current_status: String,
    pub reason: String,
    /// rule, partner_flag or reviewer.
    pub origin: String,
    /// The rule's name, the flagging partner's name, or empty for reviewers.
    pub by: String,
    /// Reviewer note, or the partner's flag reason.
    pub note: Option<String>,
    /// Feature values that fired the rule.
    pub evidence: BTreeMap<String, f64>,
    /// For rules reading domain reputation: each suspicious link domain the
    /// subject sent, with why proviso judged it suspicious.
    #[serde(default)]
    pub domains: Vec<DomainEvidenceView>,
    /// Whether linked partners were sent a security record.
    pub shared: bool,
    /// Event time that fired it (RFC 3339).
    pub at: String,
}

/// Why a link domain is on the derived `suspicious_domains` list.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DomainEvidenceView {
    /// The link domain (a bare domain as the edge normalised it).
    pub domain: String,
    /// When it became suspicious (event time, RFC 3339).
    pub suspicious_since: String,
    /// When proviso first saw it (event time, RFC 3339): its age.
    pub first_seen: String,
    /// Distinct young accounts that sent it to strangers when judged.
    pub young_senders: u32,
    /// Some of those accounts, as subject ids (at most 8; erased people
    /// are left out).
    pub young_sender_subjects: Vec<String>,
    /// Distinct strangers it was sent to when judged.
    pub stranger_recipients: u32,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActionsPage {
    pub actions: Vec<ActionView>,
    /// Pass as `after` for the next page; null when there are no more now.
    pub next: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AbuseSubjectView {
    pub subject: String,
    pub status: String,
    pub since: Option<String>,
    /// Events logged from the subject while it was banned (kept, flagged).
    pub events_while_banned: u64,
    /// Partners the subject is linked to, by name.
    pub partners: Vec<String>,
    pub history: Vec<ActionView>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// ban or clear.
    #[schema(inline, value_type = DecisionParam)]
    pub action: String,
    /// Why, at most 2000 characters (kept in the subject's history; do not
    /// paste message content).
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub note: String,
}

// The values of a decision's `action` (documentation only).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum DecisionParam {
    Ban,
    Clear,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RulesResponse {
    pub rules: usize,
    /// False when the same rules were already in force.
    pub changed: bool,
}

fn action_view(state: &DerivedState, action: &Action) -> ActionView {
    let (origin, by, note) = match &action.origin {
        Origin::Rule { rule } => ("rule", rule.clone(), None),
        Origin::PartnerFlag { partner, reason } => ("partner_flag", partner.clone(), Some(reason.clone())),
        Origin::Reviewer { note } => ("reviewer", String::new(), Some(note.clone())),
    };
    ActionView {
        id: action.id,
        subject: state.subjects.get(action.subject).map(|r| r.pseudonym.subject_id()).unwrap_or_default(),
        status: action.status.as_str().to_string(),
        current_status: state.abuse.status(action.subject).as_str().to_string(),
        reason: action.reason.clone(),
        origin: origin.to_string(),
        by,
        note,
        evidence: action.evidence.iter().cloned().collect(),
        domains: state
            .abuse
            .action_domains(action.id)
            .iter()
            .map(|verdict| DomainEvidenceView {
                domain: verdict.domain.clone(),
                suspicious_since: rfc3339(verdict.since_ms),
                first_seen: rfc3339(verdict.first_seen_ms),
                young_senders: verdict.young_sender_count,
                young_sender_subjects: verdict
                    .young_senders
                    .iter()
                    .filter_map(|sender| state.subjects.get(*sender).map(|r| r.pseudonym.subject_id()))
                    .collect(),
                stranger_recipients: verdict.stranger_recipients,
            })
            .collect(),
        shared: action.shared,
        at: rfc3339(action.ts_ms),
    }
}

fn parse_status(text: &str) -> Result<Status, ApiError> {
    match text {
        "banned" => Ok(Status::Banned),
        "review" => Ok(Status::Review),
        "clear" => Ok(Status::Clear),
        _ => Err(ApiError::new(Code::InvalidQuery, "`status` must be one of: banned review clear")),
    }
}

/// The checked query of `GET /v1/abuse/actions`.
#[derive(Debug)]
pub(crate) struct ActionsParams {
    status: Option<Status>,
    limit: usize,
    /// Index of the first action to look at.
    start: u64,
    open: bool,
}

/// Reads the query of `GET /v1/abuse/actions` (a pure function: the fuzz
/// targets call it too).
pub(crate) fn actions_params(
    query: Result<Query<ActionsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<ActionsParams, ApiError> {
    let Query(query) = query.map_err(|_| {
        ApiError::new(
            Code::InvalidQuery,
            "query parameters are status (banned|review|clear), after, limit, open (bool)",
        )
    })?;
    Ok(ActionsParams {
        status: query.status.as_deref().map(parse_status).transpose()?,
        limit: super::page_limit(query.limit, 100, MAX_LIMIT)?,
        start: query.after.map_or(0, |after| after.saturating_add(1)),
        open: query.open == Some(true),
    })
}

/// Whether `action` is its subject's latest and the subject still has the
/// status it set.
fn in_force(state: &DerivedState, action: &Action) -> bool {
    state.abuse.status(action.subject) == action.status
        && state.abuse.subject(action.subject).and_then(|s| s.actions.last()) == Some(&action.id)
}

/// Abuse actions in order, filtered by the status they set; resumable with
/// `after`. Security is an essential purpose: reviewers see every subject.
/// Role: reviewer.
#[utoipa::path(
    get,
    path = "/v1/abuse/actions",
    params(ActionsQuery),
    responses((status = 200, body = ActionsPage), (status = 400, body = super::error::ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_actions(
    State(app): State<SharedState>,
    headers: HeaderMap,
    query: Result<Query<ActionsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Gated<ActionsPage>, ApiError> {
    let staff = super::auth::staff(app.tokens.require(&headers, &[Role::Reviewer])?)?;
    let ActionsParams { status, limit, start, open } = actions_params(query)?;
    let state = app.pipeline.state();
    let page: Gated<ActionsPage> = release_for_staff(staff, crate::contract::Purpose::Security, {
        let mut actions = Vec::new();
        let mut next = None;
        for action in state.abuse.actions().iter().skip(usize::try_from(start).unwrap_or(usize::MAX)) {
            if status.is_some_and(|wanted| wanted != action.status) {
                continue;
            }
            if open && !in_force(&state, action) {
                continue;
            }
            if actions.len() == limit {
                break;
            }
            next = Some(action.id);
            actions.push(action_view(&state, action));
        }
        ActionsPage { actions, next }
    })
    .map_err(ApiError::internal)?;
    Ok(page)
}

/// A subject's abuse status, evidence and history. Role: reviewer.
#[utoipa::path(
    get,
    path = "/v1/abuse/subjects/{subject}",
    params(("subject" = String, Path, description = "Subject id (`s_` and 32 lowercase hex digits)", pattern = "^s_[0-9a-f]{32}$")),
    responses((status = 200, body = AbuseSubjectView), (status = 404, body = super::error::ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_subject(
    State(app): State<SharedState>,
    subject: SubjectInPath<ForReviewer>,
) -> Result<Gated<AbuseSubjectView>, ApiError> {
    reviewed(&app, super::auth::staff(subject.role)?, &subject.pseudonym)
}

/// A subject's abuse record, released to the staff member who asked
/// (purpose `security`).
fn reviewed(app: &super::AppState, staff: Staff, pseudonym: &Pseudonym) -> Result<Gated<AbuseSubjectView>, ApiError> {
    let state = app.pipeline.state();
    let index = state.subjects.lookup(pseudonym).ok_or_else(not_found)?;
    release_for_staff(staff, crate::contract::Purpose::Security, subject_view(&state, index))
        .map_err(ApiError::internal)
}

fn subject_view(state: &DerivedState, index: u32) -> AbuseSubjectView {
    let record = state.abuse.subject(index);
    let history = record
        .map(|r| r.actions.iter().filter_map(|id| state.abuse.action(*id)).map(|a| action_view(state, a)).collect())
        .unwrap_or_default();
    AbuseSubjectView {
        subject: state.subjects.get(index).map(|r| r.pseudonym.subject_id()).unwrap_or_default(),
        status: state.abuse.status(index).as_str().to_string(),
        since: record.filter(|r| !r.actions.is_empty()).map(|r| rfc3339(r.since_ms)),
        events_while_banned: record.map_or(0, |r| r.events_while_banned),
        partners: state
            .links
            .links_of(index)
            .filter_map(|(partner, _)| state.links.partner_name(partner).map(str::to_string))
            .collect(),
        history,
    }
}

/// A reviewer bans or clears a subject. The decision is logged, so replay
/// reproduces it; a ban is shared with the subject's linked partners.
/// Role: reviewer.
#[utoipa::path(
    post,
    path = "/v1/abuse/subjects/{subject}/decision",
    params(("subject" = String, Path, description = "Subject id (`s_` and 32 lowercase hex digits)", pattern = "^s_[0-9a-f]{32}$")),
    request_body = DecisionRequest,
    responses((status = 200, body = AbuseSubjectView), (status = 400, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)),
    security(("bearer" = []))
)]
pub async fn post_decision(
    State(app): State<SharedState>,
    subject: SubjectIdInPath<ForReviewer>,
    body: Result<Json<DecisionRequest>, JsonRejection>,
) -> Result<Gated<AbuseSubjectView>, ApiError> {
    let staff = super::auth::staff(subject.role)?;
    let Json(request) = body.map_err(bad_body)?;
    let action = DecisionAction::parse(&request.action)
        .ok_or_else(|| ApiError::new(Code::InvalidBody, "`action` must be one of: ban clear"))?;
    if request.note.chars().count() > MAX_NOTE_CHARS {
        return Err(ApiError::new(Code::InvalidBody, "`note` must be at most 2000 characters"));
    }
    let pseudonym = subject.find(&app)?.pseudonym;
    // A note explains a decision; phone numbers and e-mail addresses in it
    // are masked before it is logged (reviewers' free text is not trusted).
    let note = crate::edge::mask_contact_details(&request.note);
    let control = Control { ts_ms: app.now_ms(), body: ControlBody::Decision { subject: pseudonym, action, note } };
    let pipeline = app.pipeline.clone();
    tokio::task::spawn_blocking(move || pipeline.commit_blocking(Prepared::from_control(control)))
        .await
        .map_err(ApiError::internal)??;
    reviewed(&app, staff, &pseudonym)
}

/// Replaces the abuse rules with the TOML in the body (list files resolve
/// against the configured rules file's folder). A broken file is refused
/// with every problem listed, and the rules in force keep running; so is
/// an empty body. Role: admin.
#[utoipa::path(
    post,
    path = "/v1/abuse/rules",
    request_body(
        content = String,
        description = "A rules file (TOML), see docs/rules.md",
        content_type = "application/toml",
        example = json!("[[rule]]\nname = \"chatty\"\nwhen = \"messages_sent[1h] >= 300\"\neffects = [\"review\"]\nreason = \"spam\"\n")
    ),
    responses((status = 200, body = RulesResponse), (status = 400, body = super::error::ErrorBody)),
    security(("bearer" = []))
)]
pub async fn post_rules(
    State(app): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<RulesResponse>, ApiError> {
    app.tokens.require(&headers, &[Role::Admin])?;
    if body.is_empty() {
        // A request that lost its body must not remove every rule.
        return Err(ApiError::new(
            Code::InvalidRules,
            "the body is empty; send a rules file (TOML), or to run no rules a file without `[[rule]]` tables",
        ));
    }
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::new(Code::InvalidRules, "the rules file must be UTF-8 TOML"))?;
    let pipeline = app.pipeline.clone();
    let base_dir = app.rules_base_dir.clone();
    let outcome = tokio::task::spawn_blocking(move || pipeline.install_rules(&text, &base_dir))
        .await
        .map_err(ApiError::internal)?;
    match outcome {
        Ok(loaded) => {
            if loaded.changed {
                crate::telemetry::RulesReloaded { source: "POST /v1/abuse/rules", error: None }.emit();
            }
            Ok(Json(RulesResponse { rules: loaded.rules, changed: loaded.changed }))
        }
        Err(crate::pipeline::RulesLoadError::Pipeline(error)) => Err(error.into()),
        Err(error) => {
            let message = error.to_string();
            crate::telemetry::RulesReloaded { source: "POST /v1/abuse/rules", error: Some(&message) }.emit();
            Err(ApiError::new(Code::InvalidRules, message))
        }
    }
}
