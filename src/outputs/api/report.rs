//! `GET /v1/subjects/{s}/report`: what proviso holds about one person, for
//! the messaging app's privacy center (role subject-service).
//!
//! Never: includes anyone else's number or id: other people appear only as
//! counts.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::Role;
use super::error::ApiError;
use super::subjects::{consent_view, not_found, parse_subject, ConsentView};
use super::usage::format_day;
use super::{now_ms, rfc3339, SharedState};
use crate::gate::release_to_subject;

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Span {
    pub count: usize,
    pub first: Option<String>,
    pub last: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Held {
    /// First event proviso saw from the person (starts opt-out notices).
    pub first_seen: Option<String>,
    /// Days with activity (register, session, message, outgoing business message).
    pub active_days: Span,
    /// Platform of the earliest register event, or `unknown`.
    pub platform: String,
    /// People in the person's latest address book (a count; never their numbers).
    pub address_book_contacts: usize,
    /// Address books the person is in (a count).
    pub in_address_books: u32,
    /// Businesses the person exchanged messages with: business id -> days.
    pub businesses: BTreeMap<String, usize>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PartnerLink {
    pub partner: String,
    /// The person's own account id there.
    pub account: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Disclosure {
    pub recipient: String,
    pub purpose: String,
    /// security_feed, suggestions or audience_members.
    pub kind: String,
    pub at: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AbuseEntry {
    /// The status the action set: banned, review or clear.
    pub status: String,
    pub reason: String,
    /// rule, partner_flag or reviewer.
    pub origin: String,
    pub at: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AbuseSummary {
    pub status: String,
    pub actions: Vec<AbuseEntry>,
}

/// The report. Field names are stable; new fields may be added.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubjectReport {
    pub subject: String,
    pub region: String,
    pub generated_at: String,
    pub held: Held,
    pub consent: ConsentView,
    pub partners: Vec<PartnerLink>,
    /// Accounts a partner claims are the person's, not attested by the
    /// messaging service: held, shared with nobody.
    pub partner_claims: Vec<PartnerLink>,
    /// Every disclosure to a partner that involved the person, oldest first.
    pub disclosures: Vec<Disclosure>,
    pub abuse: AbuseSummary,
}

/// Everything proviso holds about the person, by category. Role: subject-service.
#[utoipa::path(
    get,
    path = "/v1/subjects/{subject}/report",
    params(("subject" = String, Path, description = "Subject id")),
    responses((status = 200, body = SubjectReport), (status = 404, body = super::error::ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_report(
    State(app): State<SharedState>,
    headers: HeaderMap,
    Path(subject): Path<String>,
) -> Result<Json<SubjectReport>, ApiError> {
    app.tokens.require(&headers, &[Role::SubjectService])?;
    let pseudonym = parse_subject(&subject)?;
    let state = app.pipeline.state();
    let report = build_report(&state, app.pipeline.policy(), &app.audit, app.pipeline.vault(), &pseudonym, now_ms())?;
    Ok(Json(report.into_inner()))
}

/// The report of one person at `at_ms` (also used by `proviso report`).
pub fn build_report(
    state: &crate::state::State,
    policy: &crate::consent::Policy,
    audit: &crate::outputs::audit::AuditLog,
    vault: &crate::vault::Vault,
    pseudonym: &crate::contract::Pseudonym,
    at_ms: i64,
) -> Result<crate::gate::Gated<SubjectReport>, ApiError> {
    // Nothing was disclosed about a person without a secret; a person erased
    // before has a new one, so the old life's records are not theirs.
    let disclosures = match vault.existing(pseudonym) {
        Some(secret) => audit.records_about(&secret.record_handle()).map_err(ApiError::internal)?,
        None => Vec::new(),
    };
    let disclosures = disclosures
        .into_iter()
        .map(|record| Disclosure {
            recipient: record.recipient,
            purpose: record.purpose,
            kind: record.kind,
            at: rfc3339(record.at_ms),
        })
        .collect();
    let index = state.subjects.lookup_person(pseudonym).ok_or_else(not_found)?;
    let record = state.subjects.get(index).ok_or_else(not_found)?;
    if !record.has_acted() {
        return Err(not_found());
    }
    let days = state.usage.active_days_of(index);
    let held = Held {
        first_seen: Some(rfc3339(record.first_seen_ms)),
        active_days: Span {
            count: days.len(),
            first: days.first().map(|d| format_day(*d)),
            last: days.last().map(|d| format_day(*d)),
        },
        platform: state.usage.platform_of(index).map_or("unknown", |p| p.as_str()).to_string(),
        address_book_contacts: state.graph.book(index).len(),
        in_address_books: state.graph.in_degree(index),
        businesses: state.audiences.businesses_of(index).into_iter().map(|(b, d)| (b.to_string(), d)).collect(),
    };
    let named = |(partner, account): (crate::processors::links::PartnerIndex, &str)| {
        Some(PartnerLink { partner: state.links.partner_name(partner)?.to_string(), account: account.to_string() })
    };
    let partners = state.links.links_of(index).filter_map(named).collect();
    let partner_claims = state.links.claims_of(index).filter_map(named).collect();
    let abuse = AbuseSummary {
        status: state.abuse.status(index).as_str().to_string(),
        actions: state
            .abuse
            .subject(index)
            .map(|r| r.actions.iter().filter_map(|id| state.abuse.action(*id)).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .map(|action| AbuseEntry {
                status: action.status.as_str().to_string(),
                reason: action.reason.clone(),
                origin: match action.origin {
                    crate::processors::abuse::Origin::Rule { .. } => "rule",
                    crate::processors::abuse::Origin::PartnerFlag { .. } => "partner_flag",
                    crate::processors::abuse::Origin::Reviewer { .. } => "reviewer",
                }
                .to_string(),
                at: rfc3339(action.ts_ms),
            })
            .collect(),
    };
    let consent = consent_view(state, policy, pseudonym, at_ms)?.into_inner();
    Ok(release_to_subject(SubjectReport {
        subject: pseudonym.subject_id(),
        region: record.region.as_str().to_string(),
        generated_at: rfc3339(at_ms),
        held,
        consent,
        partners,
        partner_claims,
        disclosures,
        abuse,
    }))
}
