//! `GET /v1/metrics/active` and `GET /v1/metrics/messages`: exact usage
//! series, released to the essential `analytics` purpose through the gate.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;

use super::auth::Role;
use super::error::{ApiError, Code};
use super::SharedState;
use crate::disclose::metrics::{self, ActiveQuery, ActiveResponse, MessagesQuery, MessagesResponse};
use crate::gate::Gated;

/// Distinct active subjects per day over a trailing window. A subject is
/// active on a day with a register, session, message or outgoing
/// business_message on it. Role: analyst.
#[utoipa::path(
    get,
    path = "/v1/metrics/active",
    params(ActiveQuery),
    responses((status = 200, body = ActiveResponse), (status = 400, body = super::error::ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_active(
    State(app): State<SharedState>,
    headers: HeaderMap,
    query: Result<Query<ActiveQuery>, QueryRejection>,
) -> Result<Gated<ActiveResponse>, ApiError> {
    let staff = super::auth::staff(app.tokens.require(&headers, &[Role::Analyst])?)?;
    let query = active_params(query)?;
    let state = app.pipeline.state();
    Ok(metrics::active(&state, staff, &query)?)
}

/// Messages per day, optionally by kind. Role: analyst.
#[utoipa::path(
    get,
    path = "/v1/metrics/messages",
    params(MessagesQuery),
    responses((status = 200, body = MessagesResponse), (status = 400, body = super::error::ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_messages(
    State(app): State<SharedState>,
    headers: HeaderMap,
    query: Result<Query<MessagesQuery>, QueryRejection>,
) -> Result<Gated<MessagesResponse>, ApiError> {
    let staff = super::auth::staff(app.tokens.require(&headers, &[Role::Analyst])?)?;
    let query = messages_params(query)?;
    let state = app.pipeline.state();
    Ok(metrics::messages(&state, staff, &query)?)
}

/// Reads and checks the query of `GET /v1/metrics/active` (pure: the fuzz
/// targets call it too).
pub(crate) fn active_params(query: Result<Query<ActiveQuery>, QueryRejection>) -> Result<ActiveQuery, ApiError> {
    let Query(query) = query.map_err(|_| {
        ApiError::new(
            Code::InvalidQuery,
            "query parameters are from and to (YYYY-MM-DD), window (days) and by (country or platform)",
        )
    })?;
    query.check()?;
    Ok(query)
}

/// Reads and checks the query of `GET /v1/metrics/messages` (pure: the
/// fuzz targets call it too).
pub(crate) fn messages_params(query: Result<Query<MessagesQuery>, QueryRejection>) -> Result<MessagesQuery, ApiError> {
    let Query(query) = query.map_err(|_| {
        ApiError::new(Code::InvalidQuery, "query parameters are from and to (YYYY-MM-DD) and by (kind)")
    })?;
    query.check()?;
    Ok(query)
}
