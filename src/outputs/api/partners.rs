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

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SecurityFeedPage {
    pub records: Vec<SecurityRecordView>,
    /// Pass as `after` for the next page; equals the request's `after` when
    /// nothing new is available yet.
    pub next: Option<u64>,
}

/// The partner's feed for one purpose. `security`: abuse actions about
/// subjects linked to this partner. Role: partner (its own name only).
#[utoipa::path(
    get,
    path = "/v1/partners/{partner}/feeds/{purpose}",
    params(
        ("partner" = String, Path, description = "Partner name from the config"),
        ("purpose" = String, Path, description = "security"),
        FeedQuery,
    ),
    responses((status = 200, body = SecurityFeedPage), (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_feed(
    State(app): State<SharedState>,
    headers: HeaderMap,
    Path((partner, purpose)): Path<(String, String)>,
    query: Result<Query<FeedQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SecurityFeedPage>, ApiError> {
    let caller = app.tokens.caller(&headers, &[Role::Partner])?;
    if caller.role == Role::Partner && caller.partner.as_deref() != Some(partner.as_str()) {
        return Err(ApiError::new(Code::Forbidden, "a partner may read only its own feeds"));
    }
    let (config, handle_key) = app
        .partners
        .iter()
        .find(|(p, _)| p.name == partner)
        .map(|(p, key)| (p, key))
        .ok_or_else(|| ApiError::new(Code::PartnerNotFound, "no partner of that name is configured"))?;
    let purpose = Purpose::parse(&purpose).ok_or_else(|| {
        ApiError::new(
            Code::FeedNotFound,
            format!("unknown purpose; expected one of: {}", Purpose::expected().trim_end()),
        )
    })?;
    if !config.purposes.contains(&purpose) {
        return Err(ApiError::new(Code::Forbidden, "this partner is not configured to receive that purpose"));
    }
    if purpose != Purpose::Security {
        return Err(ApiError::new(Code::FeedNotFound, "only the security feed exists so far"));
    }
    let Query(query) = query.map_err(|_| ApiError::new(Code::InvalidQuery, "query parameters are after and limit"))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::new(Code::InvalidQuery, format!("`limit` must be 1..={MAX_LIMIT}")));
    }
    let start = query.after.map_or(0, |after| after.saturating_add(1));
    let grant = PartnerGrant { name: &config.name, purposes: &config.purposes };
    let state = app.pipeline.state();
    let policy = app.pipeline.policy();
    let at_ms = now_ms();
    let mut records = Vec::new();
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
                handle: state.subjects.get(record.subject).map(|r| handle_key.handle(&r.pseudonym)).unwrap_or_default(),
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
                }
            }
        }
    }
    Ok(Json(SecurityFeedPage { records, next }))
}
