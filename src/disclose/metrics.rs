//! Usage series for proviso's own staff (purpose `analytics`): distinct
//! active people and messages per day.
//!
//! Owns: the query shapes and their checks, the series bodies, and the
//! day format every body uses.
//! Never: names a person: every figure is a count over everyone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::DiscloseError;
use crate::contract::{MessageKind, Purpose};
use crate::gate::{release_for_staff, Gated, Staff};
use crate::processors::usage::Grouping;
use crate::state::State;

/// Longest span one query may cover.
pub const MAX_QUERY_DAYS: i32 = 3_660;
/// Largest trailing window.
pub const MAX_WINDOW_DAYS: u32 = 366;

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ActiveQuery {
    /// First day, YYYY-MM-DD (UTC).
    #[param(format = Date)]
    pub from: String,
    /// Last day, YYYY-MM-DD (UTC), inclusive: not before `from`, and fewer
    /// than 3660 days after it (else 400 `invalid_query`).
    #[param(format = Date)]
    pub to: String,
    /// Trailing window in days (1 = DAU, 7 = WAU, 30 = MAU), 1..=366; default 1.
    #[param(minimum = 1, maximum = 366)]
    pub window: Option<u32>,
    /// Split each day by `country` (region of the number) or `platform`.
    #[param(inline, value_type = Option<ActiveGrouping>)]
    pub by: Option<String>,
}

// The values of the active series' `by=` (documentation only).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum ActiveGrouping {
    Country,
    Platform,
}

// The values of the messages series' `by=` (documentation only).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum MessagesGrouping {
    Kind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActivePoint {
    pub day: String,
    pub active: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub groups: Option<BTreeMap<String, u64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActiveResponse {
    pub window: u32,
    pub series: Vec<ActivePoint>,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MessagesQuery {
    /// First day, YYYY-MM-DD (UTC).
    #[param(format = Date)]
    pub from: String,
    /// Last day, YYYY-MM-DD (UTC), inclusive: not before `from`, and fewer
    /// than 3660 days after it (else 400 `invalid_query`).
    #[param(format = Date)]
    pub to: String,
    /// `kind` adds a per-kind split to each day.
    #[param(inline, value_type = Option<MessagesGrouping>)]
    pub by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessagesPoint {
    pub day: String,
    pub messages: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub kinds: Option<BTreeMap<String, u64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessagesResponse {
    pub series: Vec<MessagesPoint>,
}

/// An [`ActiveQuery`] once checked: days since 1970-01-01, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveSpan {
    pub from: i32,
    pub to: i32,
    pub window: u32,
    pub grouping: Option<Grouping>,
}

impl ActiveQuery {
    /// Checks the days, the window and the split (no state needed).
    pub fn check(&self) -> Result<ActiveSpan, DiscloseError> {
        let (from, to) = day_range(&self.from, &self.to)?;
        let window = self.window.unwrap_or(1);
        if window == 0 || window > MAX_WINDOW_DAYS {
            return Err(DiscloseError::InvalidQuery(format!("`window` must be between 1 and {MAX_WINDOW_DAYS} days")));
        }
        let grouping = match self.by.as_deref() {
            None => None,
            Some("country") => Some(Grouping::Country),
            Some("platform") => Some(Grouping::Platform),
            Some(_) => return Err(DiscloseError::InvalidQuery("`by` must be `country` or `platform`".to_string())),
        };
        Ok(ActiveSpan { from, to, window, grouping })
    }
}

impl MessagesQuery {
    /// Checks the days and the split: (from, to, split by kind).
    pub fn check(&self) -> Result<(i32, i32, bool), DiscloseError> {
        let (from, to) = day_range(&self.from, &self.to)?;
        let by_kind = match self.by.as_deref() {
            None => false,
            Some("kind") => true,
            Some(_) => return Err(DiscloseError::InvalidQuery("`by` must be `kind`".to_string())),
        };
        Ok((from, to, by_kind))
    }
}

/// The active series, for staff who asked (the API's analysts, `proviso query`).
pub fn active(state: &State, staff: Staff, query: &ActiveQuery) -> Result<Gated<ActiveResponse>, DiscloseError> {
    let ActiveSpan { from, to, window, grouping } = query.check()?;
    let series = state
        .usage
        .active_series(from, to, window, grouping)
        .into_iter()
        .map(|point| ActivePoint { day: format_day(point.day), active: point.active, groups: point.groups })
        .collect();
    Ok(release_for_staff(staff, Purpose::Analytics, ActiveResponse { window, series })?)
}

/// Builds the messages series from state.
pub fn messages(state: &State, staff: Staff, query: &MessagesQuery) -> Result<Gated<MessagesResponse>, DiscloseError> {
    let (from, to, by_kind) = query.check()?;
    let series = state
        .usage
        .message_series(from, to)
        .into_iter()
        .map(|(day, counts)| MessagesPoint {
            day: format_day(day),
            messages: counts.iter().sum(),
            kinds: by_kind.then(|| {
                MessageKind::ALL.iter().map(|kind| (kind.as_str().to_string(), counts[kind.code() as usize])).collect()
            }),
        })
        .collect();
    Ok(release_for_staff(staff, Purpose::Analytics, MessagesResponse { series })?)
}

fn day_range(from: &str, to: &str) -> Result<(i32, i32), DiscloseError> {
    let from_day = parse_day(from, "from")?;
    let to_day = parse_day(to, "to")?;
    if to_day < from_day {
        return Err(DiscloseError::InvalidQuery("`to` is before `from`".to_string()));
    }
    if to_day - from_day >= MAX_QUERY_DAYS {
        return Err(DiscloseError::InvalidQuery(format!("a query covers at most {MAX_QUERY_DAYS} days")));
    }
    Ok((from_day, to_day))
}

/// Parses YYYY-MM-DD into a day number since 1970-01-01.
pub fn parse_day(text: &str, field: &str) -> Result<i32, DiscloseError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(text, &format)
        .map_err(|_| DiscloseError::InvalidQuery(format!("`{field}` must be a date like 2026-01-31")))?;
    Ok(date.to_julian_day() - time::macros::date!(1970 - 01 - 01).to_julian_day())
}

/// Formats a day number as YYYY-MM-DD.
pub fn format_day(day: i32) -> String {
    let epoch = time::macros::date!(1970 - 01 - 01).to_julian_day();
    match time::Date::from_julian_day(epoch + day) {
        Ok(date) => format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day()),
        Err(_) => day.to_string(),
    }
}
