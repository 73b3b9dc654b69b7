//! Partner feeds: what one partner network may read, for one purpose, as a
//! resumable stream. Role partner (its own feeds only) or admin.
//!
//! Never: returns a record about a subject not linked to the reading partner,
//! another partner's ids, or anything the gate refuses at read time.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::Role;
use super::error::{ApiError, Code};
use super::{now_ms, rfc3339, SharedState};
use crate::contract::Purpose;
use crate::gate::{release_to_partner, PartnerGrant};

const MAX_LIMIT: usize = 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    /// Cursor: records after this one (the `next` of the last page).
    pub after: Option<u64>,
    /// Page size, 1..=1000 (default 100).
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SecurityRecordView {
    /// Position in this partner's feed.
    pub cursor: u64,
    /// The account id at this partner (the partner's own id).
    pub partner_id: String,
    /// This partner's handle for the subject (`h_` + 32 hex): stable across
    /// this partner's feeds, different for every partner.
    pub handle: String,
    /// ban, review or clear.
    pub action: String,
    /// spam, scam, phishing, fake_account or abuse.
    pub reason: String,
    /// Event time of the action (RFC 3339).
    pub at: String,
}

/// One record of a product or ads feed.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PurposeRecordView {
    pub cursor: u64,
    /// add or retract.
    pub op: String,
    /// suggestion or audience_member.
    pub about: String,
    /// The account the record is about (suggestions: who it is for); absent
    /// from a withdrawn add and from every retract.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner_id: Option<String>,
    /// Suggestions: the suggested account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggested: Option<String>,
    /// Audience memberships: the business.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business: Option<String>,
    /// Retractions: the cursor of the add withdrawn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retracts: Option<u64>,
    /// Retractions: refused, banned, unlinked, deleted or no_longer_allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// An add that was withdrawn since: it names nobody any more.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub withdrawn: bool,
    pub at: String,
}

/// A page of a product or ads feed.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PurposeFeedPage {
    pub records: Vec<PurposeRecordView>,
    /// Pass as `after` for the next page.
    pub next: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SecurityFeedPage {
    pub records: Vec<SecurityRecordView>,
    /// Pass as `after` for the next page; equals the request's `after` when
    /// nothing new is available yet.
    pub next: Option<u64>,
}

/// The partner's feed for one purpose, resumable with `after`.
/// `security`: abuse actions about subjects linked to this partner
/// (SecurityFeedPage). `product` / `ads`: every suggestion / audience
/// membership disclosed to this partner (`add`) and its withdrawal
/// (`retract`) once a person involved refuses, is banned, unlinks or
/// deletes their account (PurposeFeedPage). Role: partner (own name only).
#[utoipa::path(
    get,
    path = "/v1/partners/{partner}/feeds/{purpose}",
    params(
        ("partner" = String, Path, description = "Partner name from the config"),
        ("purpose" = String, Path, description = "security"),
        FeedQuery,
    ),
    responses((status = 200, body = SecurityFeedPage, description = "security; product and ads return PurposeFeedPage"), (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_feed(
    State(app): State<SharedState>,
    headers: HeaderMap,
    Path((partner, purpose)): Path<(String, String)>,
    query: Result<Query<FeedQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let (config, handle_key) = partner_for(&app, &headers, &partner)?;
    let purpose = Purpose::parse(&purpose).ok_or_else(|| {
        ApiError::new(
            Code::FeedNotFound,
            format!("unknown purpose; expected one of: {}", Purpose::expected().trim_end()),
        )
    })?;
    if !config.purposes.contains(&purpose) {
        return Err(ApiError::new(Code::Forbidden, "this partner is not configured to receive that purpose"));
    }
    let Query(query) = query.map_err(|_| ApiError::new(Code::InvalidQuery, "query parameters are after and limit"))?;
    let limit = super::page_limit(query.limit, 100, MAX_LIMIT)?;
    if matches!(purpose, Purpose::Product | Purpose::Ads) {
        return Ok(Json(purpose_feed(&app, &partner, purpose, query.after, limit)?).into_response());
    }
    if purpose != Purpose::Security {
        return Err(ApiError::new(Code::FeedNotFound, "feeds exist for security, product and ads"));
    }
    let start = query.after.map_or(0, |after| after.saturating_add(1));
    let grant = PartnerGrant { name: &config.name, purposes: &config.purposes };
    let state = app.pipeline.state();
    let policy = app.pipeline.policy();
    let at_ms = now_ms();
    let mut records = Vec::new();
    let mut disclosed: Vec<u32> = Vec::new();
    let mut next = query.after;
    if let Some(index) = state.links.partner_index(&partner) {
        let feed = state.abuse.security_feed(index);
        for (cursor, record) in feed.iter().enumerate().skip(usize::try_from(start).unwrap_or(usize::MAX)) {
            if records.len() == limit {
                break;
            }
            next = Some(cursor as u64);
            let view = SecurityRecordView {
                cursor: cursor as u64,
                partner_id: record.partner_account.clone(),
                // Filled below from the person's secret, once the page is known.
                handle: String::new(),
                action: match record.status {
                    crate::processors::abuse::Status::Banned => "ban".to_string(),
                    other => other.as_str().to_string(),
                },
                reason: record.reason.clone(),
                at: rfc3339(record.ts_ms),
            };
            // Linked now, to this partner, and allowed: else the record is
            // withheld (an unlinked pair gets nothing more).
            if let Ok(gated) = release_to_partner(&state, policy, &grant, record.subject, purpose, at_ms, view) {
                let view = gated.into_inner();
                let still_same_account =
                    state.links.account_of(index, record.subject) == Some(view.partner_id.as_str());
                if still_same_account {
                    records.push(view);
                    disclosed.push(record.subject);
                }
            }
        }
    }
    let secrets = super::audit_disclosure(&app, &state, &partner, purpose, "security_feed", disclosed.clone(), at_ms)?;
    for (view, subject) in records.iter_mut().zip(&disclosed) {
        view.handle = secrets.get(subject).map(|secret| secret.partner_handle(handle_key)).unwrap_or_default();
    }
    Ok(Json(SecurityFeedPage { records, next }).into_response())
}

fn purpose_feed(
    app: &super::AppState,
    partner: &str,
    purpose: Purpose,
    after: Option<u64>,
    limit: usize,
) -> Result<PurposeFeedPage, ApiError> {
    let at_ms = now_ms();
    let stored = app.feeds.read(partner, purpose, after, limit);
    let next = stored.last().map(|record| record.cursor).or(after);
    let state = app.pipeline.state();
    let handles: Vec<String> = stored.iter().flat_map(|record| record.subjects.iter().cloned()).collect();
    let kind = if purpose == Purpose::Product { "product_feed" } else { "ads_feed" };
    if !handles.is_empty() {
        app.audit
            .append(at_ms, &format!("partner:{partner}"), purpose.as_str(), kind, handles)
            .map_err(ApiError::internal)?;
    }
    drop(state);
    let records = stored
        .into_iter()
        .map(|record| PurposeRecordView {
            withdrawn: record.op == "add" && record.is_redacted(),
            cursor: record.cursor,
            op: record.op,
            about: record.about,
            partner_id: (!record.partner_id.is_empty()).then_some(record.partner_id),
            suggested: record.suggested,
            business: record.business,
            retracts: record.retracts,
            reason: record.reason,
            at: rfc3339(record.at_ms),
        })
        .collect();
    Ok(PurposeFeedPage { records, next })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SuggestionsQuery {
    /// Most suggestions to return, 1..=100 (default 20).
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SuggestionView {
    /// The suggested account's id at this partner.
    pub partner_id: String,
    /// Adamic-Adar weight of the mutual contacts (ranking's third key).
    pub score: f64,
    /// Why, in plain words: "in your contacts", "has you in their
    /// contacts", "12 mutual contacts".
    pub reasons: Vec<String>,
}

/// Friend suggestions for one of this partner's accounts (purpose
/// `product`): its linked person's contacts who are on this partner, not
/// yet friends there, not blocked either way, not banned, and both people
/// allowing product sharing now. Ranked: reciprocal contacts, then mutual
/// contacts, then Adamic-Adar, then id. Role: partner (its own name only).
#[utoipa::path(
    get,
    path = "/v1/partners/{partner}/suggestions/{partner_id}",
    params(
        ("partner" = String, Path, description = "Partner name from the config"),
        ("partner_id" = String, Path, description = "The partner's own account id"),
        SuggestionsQuery,
    ),
    responses((status = 200, body = [SuggestionView]), (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_suggestions(
    State(app): State<SharedState>,
    headers: HeaderMap,
    Path((partner, partner_id)): Path<(String, String)>,
    query: Result<Query<SuggestionsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<SuggestionView>>, ApiError> {
    let (config, _) = partner_for(&app, &headers, &partner)?;
    if !config.purposes.contains(&Purpose::Product) {
        return Err(ApiError::new(Code::Forbidden, "this partner is not configured to receive product data"));
    }
    let Query(query) = query.map_err(|_| ApiError::new(Code::InvalidQuery, "the query parameter is limit"))?;
    let limit = super::page_limit(query.limit, 20, 100)?;
    let grant = PartnerGrant { name: &config.name, purposes: &config.purposes };
    let state = app.pipeline.state();
    let policy = app.pipeline.policy();
    let at_ms = now_ms();
    let not_linked = || ApiError::new(Code::SubjectNotFound, "no account with that id is linked at this partner");
    let index = state.links.partner_index(&partner).ok_or_else(not_linked)?;
    let owner = state.links.subject_of(index, &partner_id).ok_or_else(not_linked)?;
    // The asker's own consent counts too: no suggestions for someone who
    // refused product sharing (an empty list, not an error, so the answer
    // does not reveal the refusal).
    if release_to_partner(&state, policy, &grant, owner, Purpose::Product, at_ms, ()).is_err() {
        return Ok(Json(Vec::new()));
    }
    let mut eligible =
        |candidate: u32| release_to_partner(&state, policy, &grant, candidate, Purpose::Product, at_ms, ()).is_ok();
    let found = crate::processors::graph::suggest::suggest(
        &state.graph,
        &state.links,
        index,
        owner,
        &partner_id,
        &mut eligible,
        limit,
    );
    let involved = found.iter().map(|s| s.subject).chain((!found.is_empty()).then_some(owner));
    let secrets = super::audit_disclosure(&app, &state, &partner, Purpose::Product, "suggestions", involved, at_ms)?;
    let id_of = |subject: u32| secrets.get(&subject).map(|secret| secret.record_handle()).unwrap_or_default();
    let items = found
        .iter()
        .map(|s| (partner_id.clone(), Some(s.account.clone()), None, vec![id_of(owner), id_of(s.subject)]))
        .collect();
    app.feeds.disclose(&partner, Purpose::Product, "suggestion", items, at_ms).map_err(ApiError::internal)?;
    let views = found
        .into_iter()
        .map(|suggestion| {
            let mut reasons = vec!["in your contacts".to_string()];
            if suggestion.reciprocal {
                reasons.push("has you in their contacts".to_string());
            }
            match suggestion.mutual {
                0 => {}
                1 => reasons.push("1 mutual contact".to_string()),
                n => reasons.push(format!("{n} mutual contacts")),
            }
            SuggestionView {
                partner_id: suggestion.account,
                score: (suggestion.adamic_adar * 10_000.0).round() / 10_000.0,
                reasons,
            }
        })
        .collect();
    Ok(Json(views))
}

/// The configured partner `name` and its handle key, if the caller may act
/// for it (its own token, or admin).
pub(super) fn partner_for<'a>(
    app: &'a super::AppState,
    headers: &HeaderMap,
    name: &str,
) -> Result<(&'a crate::config::Partner, &'a crate::edge::PseudonymKey), ApiError> {
    let caller = app.tokens.caller(headers, &[Role::Partner])?;
    if caller.role == Role::Partner && caller.partner.as_deref() != Some(name) {
        return Err(ApiError::new(Code::Forbidden, "a partner may read only its own data"));
    }
    app.partners
        .iter()
        .find(|(partner, _)| partner.name == name)
        .map(|(partner, key)| (partner, key))
        .ok_or_else(|| ApiError::new(Code::PartnerNotFound, "no partner of that name is configured"))
}
