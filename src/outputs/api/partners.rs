//! Partner feeds and suggestions: what one partner network may read, for
//! one purpose. Role partner (its own name only) or admin. The bodies come
//! from `disclose::partners`; this file authenticates and reads the query.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::Role;
use super::error::{ApiError, Code};
use super::SharedState;
use crate::contract::Purpose;
use crate::disclose::partners::{FeedPage, Suggestions};
use crate::gate::Gated;

const MAX_LIMIT: usize = 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    /// Cursor: records after this one (the `next` of the last page).
    #[param(maximum = 18446744073709551615_u64)]
    pub after: Option<u64>,
    /// Page size, 1..=1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

// The purposes a partner feed exists for (documentation only).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum FeedPurpose {
    Security,
    Product,
    Ads,
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
        ("partner" = String, Path, description = "Partner name from the config", min_length = 1),
        ("purpose" = inline(FeedPurpose), Path, description = "security, product or ads; 403 unless the partner is configured for it"),
        FeedQuery,
    ),
    responses(
        (status = 200, body = crate::disclose::partners::SecurityFeedPage, description = "SecurityFeedPage for security, PurposeFeedPage for product and ads"),
        (status = 400, description = "`invalid_query`", body = super::error::ErrorBody),
        (status = 403, description = "`forbidden`: another partner's name, or a purpose the partner is not configured for", body = super::error::ErrorBody),
        (status = 404, description = "`partner_not_found` or `feed_not_found`", body = super::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_feed(
    State(app): State<SharedState>,
    headers: HeaderMap,
    Path((partner, purpose)): Path<(String, String)>,
    query: Result<Query<FeedQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    acting_for(&app, &headers, &partner)?;
    let purpose = app.disclosure.feed_purpose(&partner, &purpose)?;
    let (after, limit) = feed_params(query)?;
    // Blocking: a page that names people is audited (an fsync) first.
    let disclosure = app.disclosure.clone();
    let page = tokio::task::spawn_blocking(move || disclosure.feed(&partner, purpose, after, limit))
        .await
        .map_err(ApiError::internal)??;
    Ok(match page {
        FeedPage::Security(page) => page.into_response(),
        FeedPage::Purpose(page) => page.into_response(),
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SuggestionsQuery {
    /// Most suggestions to return, 1..=100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
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
        ("partner" = String, Path, description = "Partner name from the config", min_length = 1),
        ("partner_id" = String, Path, description = "The partner's own account id", min_length = 1),
        SuggestionsQuery,
    ),
    responses(
        (status = 200, body = [crate::disclose::partners::SuggestionView]),
        (status = 400, description = "`invalid_query`", body = super::error::ErrorBody),
        (status = 403, description = "`forbidden`: another partner's name, or a partner not configured for product", body = super::error::ErrorBody),
        (status = 404, description = "`partner_not_found`, or `subject_not_found` for an account not linked", body = super::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_suggestions(
    State(app): State<SharedState>,
    headers: HeaderMap,
    Path((partner, partner_id)): Path<(String, String)>,
    query: Result<Query<SuggestionsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Gated<Suggestions>, ApiError> {
    acting_for(&app, &headers, &partner)?;
    app.disclosure.check_partner(&partner, Purpose::Product, "product data")?;
    let limit = suggestions_params(query)?;
    // Blocking: a list that names people is audited and fed (two fsyncs)
    // before it is answered; the runtime's threads keep serving meanwhile.
    let disclosure = app.disclosure.clone();
    let suggestions = tokio::task::spawn_blocking(move || disclosure.suggestions(&partner, &partner_id, limit))
        .await
        .map_err(ApiError::internal)??;
    Ok(suggestions)
}

/// Reads the query of a partner feed: the cursor and the page size (pure:
/// the fuzz targets call it too).
pub(crate) fn feed_params(
    query: Result<Query<FeedQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(Option<u64>, usize), ApiError> {
    let Query(query) = query.map_err(|_| ApiError::new(Code::InvalidQuery, "query parameters are after and limit"))?;
    Ok((query.after, super::page_limit(query.limit, 100, MAX_LIMIT)?))
}

/// Reads the query of friend suggestions: the page size (pure: the fuzz
/// targets call it too).
pub(crate) fn suggestions_params(
    query: Result<Query<SuggestionsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<usize, ApiError> {
    let Query(query) = query.map_err(|_| ApiError::new(Code::InvalidQuery, "the query parameter is limit"))?;
    super::page_limit(query.limit, 20, 100)
}

/// Checks the caller may act for partner `name`: its own token, or admin.
pub(super) fn acting_for(app: &super::AppState, headers: &HeaderMap, name: &str) -> Result<(), ApiError> {
    let caller = app.tokens.caller(headers, &[Role::Partner])?;
    if caller.role == Role::Partner && caller.partner.as_deref() != Some(name) {
        return Err(ApiError::new(Code::Forbidden, "a partner may read only its own data"));
    }
    Ok(())
}
