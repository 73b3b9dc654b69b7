//! Ad audiences (purpose `ads`): sizes for advertisers, never identifiers;
//! member ids for a partner, only for audiences of at least k people.
//!
//! Never: releases a size below k, an identifier to an advertiser, a member
//! who does not allow ads now or is banned, a noisy size beyond the asking
//! advertiser's daily privacy budget for the business, or an exact size when
//! noise is configured.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::Role;
use super::error::{ApiError, Code};
use super::{now_ms, SharedState};
use crate::contract::{day_of, Control, ControlBody, Purpose};
use crate::gate::{release_count, release_to_partner, PartnerGrant};
use crate::pipeline::Prepared;
use crate::processors::audiences::laplace;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AudienceQuery {
    /// Span in days ending today (UTC), 1..=365 (default 30).
    pub days: Option<u32>,
    /// Add Laplace noise, charged to the caller's daily privacy budget for
    /// the business. Always on when the server configures `audience_epsilon`
    /// (then `false` is refused).
    pub noise: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AudienceSize {
    pub business: String,
    pub days: u32,
    /// Rounded to a multiple of 10; null when suppressed.
    pub size: Option<u64>,
    /// True when fewer than k people (who allow ads) are in the audience.
    pub suppressed: bool,
    /// The k in force.
    pub k: u64,
    /// Epsilon charged for this answer (0 without noise).
    pub epsilon: f64,
    /// The caller's budget left today for this business after this answer.
    pub budget_left: f64,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PartnerAudience {
    pub business: String,
    pub days: u32,
    /// True when the consenting audience is smaller than k: no ids then.
    pub suppressed: bool,
    /// This partner's account ids of the members linked to it, sorted.
    pub members: Vec<String>,
}

fn parse_days(days: Option<u32>) -> Result<u32, ApiError> {
    let days = days.unwrap_or(30);
    if (1..=365).contains(&days) {
        Ok(days)
    } else {
        Err(ApiError::new(Code::InvalidQuery, "`days` must be 1..=365"))
    }
}

/// Rounds to the nearest multiple of 10 (halves up).
fn round_to_ten(value: f64) -> u64 {
    ((value.max(0.0) / 10.0 + 0.5).floor() * 10.0) as u64
}

/// Serializes checking and charging budgets, so two concurrent requests
/// cannot both spend the last of one.
static CHARGING: std::sync::LazyLock<tokio::sync::Mutex<()>> = std::sync::LazyLock::new(Default::default);

/// Whether an answer is noised: always when noise is configured
/// (`audience_epsilon` set; asking `noise=false` then is an error), else
/// only when asked with `noise=true`.
fn noised(config: &crate::config::AudienceConfig, asked: Option<bool>) -> Result<bool, ApiError> {
    match (config.noise_required, asked) {
        (true, Some(false)) => Err(ApiError::new(
            Code::InvalidQuery,
            "this server adds noise to every audience size (audience_epsilon is configured): leave out `noise` or set it to true",
        )),
        (true, _) => Ok(true),
        (false, asked) => Ok(asked == Some(true)),
    }
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
    params(("business" = String, Path, description = "Business id"), AudienceQuery),
    responses((status = 200, body = AudienceSize), (status = 429, body = super::error::ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_size(
    State(app): State<SharedState>,
    headers: HeaderMap,
    Path(business): Path<String>,
    query: Result<Query<AudienceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AudienceSize>, ApiError> {
    let caller = app.tokens.caller(&headers, &[Role::Advertiser])?;
    let advertiser = caller.budget_holder().to_string();
    let Query(query) = query.map_err(|_| ApiError::new(Code::InvalidQuery, "query parameters are days and noise"))?;
    let days = parse_days(query.days)?;
    let config = app.audience;
    let noise = noised(&config, query.noise)?;
    // Held from reading the budget until the charge is committed.
    let _charging = if noise { Some(CHARGING.lock().await) } else { None };
    let at_ms = now_ms();
    let today = day_of(at_ms);
    let (count, spent) = {
        let state = app.pipeline.state();
        let members = state.audiences.members(&business, today, days);
        let allowed = release_count(&state, app.pipeline.policy(), members.iter(), Purpose::Ads, at_ms);
        (allowed.get().len() as u64, state.audiences.spent(&advertiser, &business, today))
    };
    let mut answer = AudienceSize {
        business: business.clone(),
        days,
        size: None,
        suppressed: count < config.k,
        k: config.k,
        epsilon: 0.0,
        budget_left: (config.daily_epsilon - spent).max(0.0),
    };
    if !noise {
        if !answer.suppressed {
            answer.size = Some(round_to_ten(count as f64));
        }
        return Ok(Json(answer));
    }
    if spent + config.epsilon > config.daily_epsilon + 1e-9 {
        return Err(ApiError::new(
            Code::BudgetSpent,
            "your privacy budget for this business's sizes is spent for today (UTC); ask again tomorrow",
        ));
    }
    // Charge the budget durably before answering: a restart never refills it.
    let control = Control {
        ts_ms: at_ms,
        body: ControlBody::BudgetSpent {
            advertiser: Some(advertiser),
            business,
            day: today,
            epsilon_micros: (config.epsilon * 1e6).round() as u64,
        },
    };
    let pipeline = app.pipeline.clone();
    tokio::task::spawn_blocking(move || pipeline.commit_blocking(Prepared::from_control(control)))
        .await
        .map_err(ApiError::internal)??;
    answer.epsilon = config.epsilon;
    answer.budget_left = (config.daily_epsilon - spent - config.epsilon).max(0.0);
    if answer.suppressed {
        return Ok(Json(answer));
    }
    let noisy = count as f64 + laplace(1.0 / config.epsilon, fastrand::f64());
    if noisy < config.k as f64 {
        answer.suppressed = true;
    } else {
        answer.size = Some(round_to_ten(noisy));
    }
    Ok(Json(answer))
}

/// This partner's account ids of a business's audience (purpose `ads`):
/// only when at least k people in it allow ads now; only members linked to
/// this partner, allowed ads and not banned. Role: partner (own name only).
#[utoipa::path(
    get,
    path = "/v1/partners/{partner}/audiences/{business}",
    params(
        ("partner" = String, Path, description = "Partner name"),
        ("business" = String, Path, description = "Business id"),
        AudienceQuery,
    ),
    responses((status = 200, body = PartnerAudience), (status = 403, body = super::error::ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_partner_audience(
    State(app): State<SharedState>,
    headers: HeaderMap,
    Path((partner, business)): Path<(String, String)>,
    query: Result<Query<AudienceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<PartnerAudience>, ApiError> {
    let (config, _) = super::partners::partner_for(&app, &headers, &partner)?;
    if !config.purposes.contains(&Purpose::Ads) {
        return Err(ApiError::new(Code::Forbidden, "this partner is not configured to receive ads data"));
    }
    let Query(query) = query.map_err(|_| ApiError::new(Code::InvalidQuery, "the query parameter is days"))?;
    if query.noise.is_some() {
        return Err(ApiError::new(Code::InvalidQuery, "`noise` applies to sizes, not member lists"));
    }
    let days = parse_days(query.days)?;
    let at_ms = now_ms();
    let state = app.pipeline.state();
    let policy = app.pipeline.policy();
    let members = state.audiences.members(&business, day_of(at_ms), days);
    let consenting = release_count(&state, policy, members.iter(), Purpose::Ads, at_ms).into_inner();
    let mut answer =
        PartnerAudience { business, days, suppressed: (consenting.len() as u64) < app.audience.k, members: Vec::new() };
    if answer.suppressed {
        return Ok(Json(answer));
    }
    let grant = PartnerGrant { name: &config.name, purposes: &config.purposes };
    let index = state.links.partner_index(&partner);
    let mut disclosed = Vec::new();
    for subject in consenting {
        let Some(account) = index.and_then(|index| state.links.account_of(index, subject)) else { continue };
        if let Ok(gated) = release_to_partner(&state, policy, &grant, subject, Purpose::Ads, at_ms, account) {
            answer.members.push(gated.into_inner().to_string());
            disclosed.push(subject);
        }
    }
    let secrets = super::audit_disclosure(
        &app,
        &state,
        &partner,
        Purpose::Ads,
        "audience_members",
        disclosed.iter().copied(),
        at_ms,
    )?;
    let items = disclosed
        .iter()
        .zip(&answer.members)
        .map(|(subject, account)| {
            let id = secrets.get(subject).map(|secret| secret.record_handle()).unwrap_or_default();
            (account.clone(), None, Some(answer.business.clone()), vec![id])
        })
        .collect();
    app.feeds.disclose(&partner, Purpose::Ads, "audience_member", items, at_ms).map_err(ApiError::internal)?;
    answer.members.sort();
    Ok(Json(answer))
}
