//! Ad audiences (purpose `ads`): sizes for advertisers, member ids for a
//! partner. k-anonymity, noise and the budget live in
//! `disclose::audiences`; this file authenticates and reads the query.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;

use super::auth::Role;
use super::error::{ApiError, Code};
use super::SharedState;
use crate::contract::Purpose;
use crate::disclose::audiences::{parse_days, AudienceSize, PartnerAudience};
use crate::gate::Gated;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AudienceQuery {
    /// Span in days ending today (UTC), 1..=365 (default 30).
    #[param(minimum = 1, maximum = 365)]
    pub days: Option<u32>,
    /// Add Laplace noise, charged to the caller's daily privacy budget for
    /// the business. Always on when the server configures `audience_epsilon`
    /// (then `false` is refused).
    pub noise: Option<bool>,
}

/// The size of a business's audience: people with a business message with
/// it in the span who allow ads now and are not banned. Suppressed below k,
/// rounded to 10. A noised answer (every answer when `audience_epsilon` is
/// configured, else one asked with `noise=true`) adds Laplace noise of scale
/// 1/epsilon and charges epsilon, suppressed or not, to this advertiser's
/// budget for this business today (429 `budget_spent` once spent); each
/// advertiser (a token's configured name) has its own budget. Role:
/// advertiser.
#[utoipa::path(
    get,
    path = "/v1/audiences/{business}",
    params(("business" = String, Path, description = "Business id", min_length = 1), AudienceQuery),
    responses(
        (status = 200, body = crate::disclose::audiences::AudienceSize),
        (status = 400, description = "`invalid_query` (also `noise=false` when the server configures `audience_epsilon`)", body = super::error::ErrorBody),
        (status = 429, description = "`budget_spent`", body = super::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_size(
    State(app): State<SharedState>,
    headers: HeaderMap,
    Path(business): Path<String>,
    query: Result<Query<AudienceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Gated<AudienceSize>, ApiError> {
    let caller = app.tokens.caller(&headers, &[Role::Advertiser])?;
    let advertiser = caller.budget_holder().to_string();
    let (days, asked_noise) = size_params(query)?;
    let noise = app.disclosure.noised(asked_noise)?;
    if noise && app.gather.is_some() {
        // A spent budget is refused before every node is asked.
        app.disclosure.check_budget(&advertiser, &business)?;
    }
    let counted = gathered(&app, &business, days, None).await?.map(|(at_ms, audience)| (at_ms, audience.counts));
    let disclosure = app.disclosure.clone();
    // Blocking: a noised answer commits its budget charge first.
    let size =
        tokio::task::spawn_blocking(move || disclosure.audience_size(&advertiser, &business, days, noise, counted))
            .await
            .map_err(ApiError::internal)??;
    Ok(size)
}

/// This partner's account ids of a business's audience (purpose `ads`):
/// only when at least k people in it allow ads now; only members linked to
/// this partner, allowed ads and not banned. Role: partner (own name only).
#[utoipa::path(
    get,
    path = "/v1/partners/{partner}/audiences/{business}",
    params(
        ("partner" = String, Path, description = "Partner name", min_length = 1),
        ("business" = String, Path, description = "Business id", min_length = 1),
        ("days" = Option<u32>, Query, description = "Span in days ending today (UTC), 1..=365 (default 30). No `noise`: member lists are never noised", minimum = 1, maximum = 365),
    ),
    responses(
        (status = 200, body = crate::disclose::audiences::PartnerAudience),
        (status = 400, description = "`invalid_query`", body = super::error::ErrorBody),
        (status = 403, description = "`forbidden`: another partner's name, or a partner not configured for ads", body = super::error::ErrorBody),
        (status = 404, description = "`partner_not_found`", body = super::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_partner_audience(
    State(app): State<SharedState>,
    headers: HeaderMap,
    Path((partner, business)): Path<(String, String)>,
    query: Result<Query<AudienceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Gated<PartnerAudience>, ApiError> {
    super::partners::acting_for(&app, &headers, &partner)?;
    app.disclosure.check_partner(&partner, Purpose::Ads, "ads data")?;
    let days = partner_audience_params(query)?;
    let gathered = gathered(&app, &business, days, Some(&partner)).await?.map(|(_, audience)| audience);
    // Blocking: a member list is audited and fed (two fsyncs) first.
    let disclosure = app.disclosure.clone();
    let members = tokio::task::spawn_blocking(move || disclosure.partner_audience(&partner, &business, days, gathered))
        .await
        .map_err(ApiError::internal)??;
    Ok(members)
}

/// Cluster mode: a business's audience over `days` days ending now, from
/// the nodes covering every partition (each holds its own people's
/// memberships): their counts of members who allow ads and, for
/// `partner`, the members linked to it; and that now. `None` on an
/// embedded node, whose state holds everyone.
async fn gathered(
    app: &SharedState,
    business: &str,
    days: u32,
    partner: Option<&str>,
) -> Result<Option<(i64, crate::disclose::metrics::GatheredAudience)>, ApiError> {
    let Some(gather) = &app.gather else { return Ok(None) };
    let (at_ms, question) = app.disclosure.audience_question(business, days, partner);
    let parts = gather.ask(&app.pipeline, &question).await?;
    Ok(Some((at_ms, crate::disclose::metrics::audience_gathered(&parts)?)))
}

type AudienceQueryResult = Result<Query<AudienceQuery>, axum::extract::rejection::QueryRejection>;

/// Reads the query of `GET /v1/audiences/{business}`: the span in days and
/// whether noise was asked for (pure: the fuzz targets call it too).
pub(crate) fn size_params(query: AudienceQueryResult) -> Result<(u32, Option<bool>), ApiError> {
    let Query(query) = query.map_err(|_| ApiError::new(Code::InvalidQuery, "query parameters are days and noise"))?;
    Ok((parse_days(query.days)?, query.noise))
}

/// Reads the query of `GET /v1/partners/{partner}/audiences/{business}`:
/// the span in days (pure: the fuzz targets call it too).
pub(crate) fn partner_audience_params(query: AudienceQueryResult) -> Result<u32, ApiError> {
    let Query(query) = query.map_err(|_| ApiError::new(Code::InvalidQuery, "the query parameter is days"))?;
    if query.noise.is_some() {
        return Err(ApiError::new(Code::InvalidQuery, "`noise` applies to sizes, not member lists"));
    }
    Ok(parse_days(query.days)?)
}
