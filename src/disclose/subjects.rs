//! What proviso holds about one person, for the person: the consent view
//! and the report the messaging app's privacy center shows.
//!
//! Owns: the subject-facing bodies (built only here, handed out only as
//! `Gated<T>` after the gate checked the person is known).
//! Never: includes anyone else's number or id (other people appear only as
//! counts), or answers about a number that only sits in address books.

use std::collections::BTreeMap;

use serde::Serialize;

use super::metrics::format_day;
use super::{rfc3339, DiscloseError, Sealed};
use crate::consent::{status_at, Policy};
use crate::contract::{Pseudonym, Purpose};
use crate::gate::{release_to_subject, Gated};
use crate::state::State;

#[derive(Debug, Serialize, utoipa::ToSchema)]
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

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConsentChangeView {
    pub purpose: String,
    pub granted: bool,
    pub at: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConsentView {
    pub subject: String,
    /// Region of the number (the jurisdiction the policy uses).
    pub region: String,
    /// State per purpose, now.
    pub purposes: BTreeMap<String, PurposeView>,
    /// Every explicit choice, oldest first.
    pub history: Vec<ConsentChangeView>,
    #[serde(skip)]
    #[schema(ignore)]
    _sealed: Sealed,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Span {
    pub count: usize,
    pub first: Option<String>,
    pub last: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
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

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PartnerLink {
    pub partner: String,
    /// The person's own account id there.
    pub account: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Disclosure {
    pub recipient: String,
    pub purpose: String,
    /// security_feed, suggestions or audience_members.
    pub kind: String,
    pub at: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AbuseEntry {
    /// The status the action set: banned, review or clear.
    pub status: String,
    pub reason: String,
    /// rule, partner_flag or reviewer.
    pub origin: String,
    pub at: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AbuseSummary {
    pub status: String,
    pub actions: Vec<AbuseEntry>,
}

/// The report. Field names are stable; new fields may be added.
#[derive(Debug, Serialize, utoipa::ToSchema)]
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
    #[serde(skip)]
    #[schema(ignore)]
    _sealed: Sealed,
}

/// The consent view of one person at `at_ms`, released to the
/// subject-facing service.
pub fn consent_view(
    state: &State,
    policy: &Policy,
    pseudonym: &Pseudonym,
    at_ms: i64,
) -> Result<Gated<ConsentView>, DiscloseError> {
    release_to_subject(state, pseudonym, |index| consent_of(state, policy, pseudonym, index, at_ms))?
        .transpose()
        .ok_or(DiscloseError::SubjectNotFound)
}

fn consent_of(state: &State, policy: &Policy, pseudonym: &Pseudonym, index: u32, at_ms: i64) -> Option<ConsentView> {
    let record = state.subjects.get(index)?;
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
    Some(ConsentView {
        subject: pseudonym.subject_id(),
        region: record.region.as_str().to_string(),
        purposes,
        history,
        _sealed: Sealed(()),
    })
}

/// Everything proviso holds about one person at `at_ms`, by category
/// (the API's report and `proviso report`).
pub fn report(
    state: &State,
    policy: &Policy,
    audit: &super::audit::AuditLog,
    vault: &crate::vault::Vault,
    pseudonym: &Pseudonym,
    at_ms: i64,
    usage: Option<super::metrics::PersonUsage>,
) -> Result<Gated<SubjectReport>, DiscloseError> {
    // Nothing was disclosed about a person without a secret; a person erased
    // before has a new one, so the old life's records are not theirs.
    let disclosures = match vault.existing(pseudonym) {
        Some(secret) => audit.records_about(&secret.record_handle())?,
        None => Vec::new(),
    };
    release_to_subject(state, pseudonym, |index| {
        let consent = consent_of(state, policy, pseudonym, index, at_ms)?;
        // Cluster mode: gathered from the node covering the person.
        let usage = usage.unwrap_or_else(|| super::metrics::PersonUsage::of(state, index));
        report_of(state, pseudonym, index, consent, disclosures, usage, at_ms)
    })?
    .transpose()
    .ok_or(DiscloseError::SubjectNotFound)
}

fn report_of(
    state: &State,
    pseudonym: &Pseudonym,
    index: u32,
    consent: ConsentView,
    disclosures: Vec<super::audit::AuditRecord>,
    usage: super::metrics::PersonUsage,
    at_ms: i64,
) -> Option<SubjectReport> {
    let record = state.subjects.get(index)?;
    if !record.has_acted() {
        return None;
    }
    let disclosures = disclosures
        .into_iter()
        .map(|record| Disclosure {
            recipient: record.recipient,
            purpose: record.purpose,
            kind: record.kind,
            at: rfc3339(record.at_ms),
        })
        .collect();
    let days = usage.days;
    let held = Held {
        first_seen: Some(rfc3339(record.first_seen_ms)),
        active_days: Span {
            count: days.len(),
            first: days.first().map(|d| format_day(*d)),
            last: days.last().map(|d| format_day(*d)),
        },
        platform: usage.platform.unwrap_or_else(|| "unknown".to_string()),
        address_book_contacts: state.graph.book(index).len(),
        in_address_books: state.graph.in_degree(index),
        businesses: usage.businesses,
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
    Some(SubjectReport {
        subject: pseudonym.subject_id(),
        region: record.region.as_str().to_string(),
        generated_at: rfc3339(at_ms),
        held,
        consent,
        partners,
        partner_claims,
        disclosures,
        abuse,
        _sealed: Sealed(()),
    })
}
