//! Usage series for proviso's own staff (purpose `analytics`): distinct
//! active people and messages per day.
//!
//! Owns: the query shapes and their checks, the series bodies, and the
//! day format every body uses.
//! Never: names a person: every figure is a count over everyone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::DiscloseError;
use crate::consent::Policy;
use crate::contract::{MessageKind, Pseudonym, Purpose};
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
    Ok(release_for_staff(staff, Purpose::Analytics, active_series(state, query)?)?)
}

/// The active series over the people whose usage `state` holds (all of
/// them, but for a cluster node: those of the partitions it covers).
fn active_series(state: &State, query: &ActiveQuery) -> Result<ActiveResponse, DiscloseError> {
    let ActiveSpan { from, to, window, grouping } = query.check()?;
    let series = state
        .usage
        .active_series(from, to, window, grouping)
        .into_iter()
        .map(|point| ActivePoint { day: format_day(point.day), active: point.active, groups: point.groups })
        .collect();
    Ok(ActiveResponse { window, series })
}

/// Builds the messages series from state.
pub fn messages(state: &State, staff: Staff, query: &MessagesQuery) -> Result<Gated<MessagesResponse>, DiscloseError> {
    Ok(release_for_staff(staff, Purpose::Analytics, messages_series(state, query)?)?)
}

/// The messages series of the people whose usage `state` holds.
fn messages_series(state: &State, query: &MessagesQuery) -> Result<MessagesResponse, DiscloseError> {
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
    Ok(MessagesResponse { series })
}

/// A usage question a cluster node asks every node (`cluster::gather`):
/// each answers over the people of the partitions it covers, and the
/// asker adds up the parts of nodes that cover every partition once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageQuestion {
    Active(ActiveQuery),
    Messages(MessagesQuery),
    /// One person's active days and platform (for their report): only the
    /// node covering their partition holds them.
    Person(PersonKey),
    /// The last day with activity (the dashboard's day: the latest of the parts).
    LastDay,
    /// The dashboard's usage figures of one day ([`Pulse`]).
    Pulse(i32),
    /// A business's audience over the `days` days ending on `at_ms`'s day,
    /// over the covered people: how many allow ads at `at_ms` (each node
    /// asks the gate about its own people; the asker sums the counts and
    /// applies k, rounding and noise once), and, when a `partner` asks for
    /// the members, which of those are linked to it ([`AudiencePart`]).
    Audience {
        business: String,
        days: u32,
        at_ms: i64,
        partner: Option<String>,
    },
}

/// A node's part of an audience: its people in it who allow ads, counted,
/// and those of them linked to the asking partner, by subject id (a
/// registry's indexes are each node's own: a compaction renumbers them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AudiencePart {
    pub consenting: u64,
    pub linked: Vec<String>,
}

/// The audience's parts as the asker uses them: the counts to sum, and the
/// people linked to the asking partner.
#[derive(Debug, Clone, Default)]
pub struct GatheredAudience {
    pub counts: Vec<u64>,
    pub linked: Vec<Pseudonym>,
}

/// Usage figures of one day for the dashboard: distinct people active on
/// it and in the 7 and 30 days ending on it, and its messages by kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pulse {
    pub dau: u64,
    pub wau: u64,
    pub mau: u64,
    /// By [`MessageKind::code`].
    pub messages: Vec<u64>,
}

impl Pulse {
    /// The figures of `day` over the people whose usage `state` holds.
    pub fn of(state: &State, day: i32) -> Pulse {
        let active =
            |window: u32| state.usage.active_series(day, day, window, None).first().map_or(0, |point| point.active);
        let messages = state.usage.message_series(day, day).first().map(|(_, counts)| counts.to_vec());
        Pulse { dau: active(1), wau: active(7), mau: active(30), messages: messages.unwrap_or_default() }
    }

    /// The messages by kind's name.
    pub fn messages_by_kind(&self) -> BTreeMap<String, u64> {
        MessageKind::ALL
            .iter()
            .map(|kind| (kind.as_str().to_string(), self.messages.get(kind.code() as usize).copied().unwrap_or(0)))
            .collect()
    }
}

/// A person named inside the cluster, by their subject id (its nodes
/// already share every pseudonym through the log).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PersonKey(String);

impl PersonKey {
    pub fn of(person: &Pseudonym) -> PersonKey {
        PersonKey(person.subject_id())
    }

    fn pseudonym(&self) -> Option<Pseudonym> {
        Pseudonym::from_subject_id(&self.0)
    }
}

/// What a node holds of one person's usage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PersonUsage {
    /// Days with activity, oldest first.
    pub days: Vec<i32>,
    /// The platform of their earliest register, if any.
    pub platform: Option<String>,
    /// The businesses they exchanged messages with, and on how many days.
    #[serde(default)]
    pub businesses: BTreeMap<String, usize>,
}

impl PersonUsage {
    /// What `state` holds of `index`'s usage and audiences.
    pub fn of(state: &State, index: u32) -> PersonUsage {
        PersonUsage {
            days: state.usage.active_days_of(index),
            platform: state.usage.platform_of(index).map(|p| p.as_str().to_string()),
            businesses: state.audiences.businesses_of(index).into_iter().map(|(b, d)| (b.to_string(), d)).collect(),
        }
    }
}

/// This node's part of `question`: the answer over the people whose usage
/// `state` holds, ungated (the asking node gates the sum).
pub fn part_of(state: &State, policy: &Policy, question: &UsageQuestion) -> Result<serde_json::Value, DiscloseError> {
    let value = match question {
        UsageQuestion::Active(query) => serde_json::to_value(active_series(state, query)?),
        UsageQuestion::Messages(query) => serde_json::to_value(messages_series(state, query)?),
        UsageQuestion::Person(key) => {
            let person = key.pseudonym().ok_or_else(|| DiscloseError::InvalidQuery("not a person".into()))?;
            let held = state
                .subjects
                .lookup(&person)
                .filter(|_| state.cover.covers(&person))
                .map(|index| PersonUsage::of(state, index));
            serde_json::to_value(held)
        }
        UsageQuestion::LastDay => serde_json::to_value(state.usage.last_day()),
        UsageQuestion::Pulse(day) => serde_json::to_value(Pulse::of(state, *day)),
        UsageQuestion::Audience { business, days, at_ms, partner } => {
            let days = super::audiences::parse_days(Some(*days))?;
            let members = state.audiences.members(business, crate::contract::day_of(*at_ms), days);
            let counted = crate::gate::release_count(state, policy, members.iter(), Purpose::Ads, *at_ms);
            let index = partner.as_deref().and_then(|partner| state.links.partner_index(partner));
            let linked = index.map_or_else(Vec::new, |index| {
                (counted.get().iter())
                    .filter(|&&subject| state.links.account_of(index, subject).is_some())
                    .filter_map(|&subject| state.subjects.get(subject).map(|record| record.pseudonym.subject_id()))
                    .collect()
            });
            serde_json::to_value(AudiencePart { consenting: counted.get().len() as u64, linked })
        }
    };
    value.map_err(|error| unavailable(error.to_string()))
}

/// A gathered query that could not be answered (503: try again).
fn unavailable(detail: String) -> DiscloseError {
    DiscloseError::Pipeline(crate::pipeline::PipelineError::Cluster(detail))
}

/// The active series of the whole cluster from its nodes' parts, for staff.
pub fn active_gathered(parts: &[serde_json::Value], staff: Staff) -> Result<Gated<ActiveResponse>, DiscloseError> {
    let sum = sum_parts(parts, |total: &mut ActiveResponse, part: ActiveResponse| {
        for (point, add) in total.series.iter_mut().zip(part.series) {
            point.active += add.active;
            add_groups(&mut point.groups, add.groups);
        }
    })?;
    Ok(release_for_staff(staff, Purpose::Analytics, sum)?)
}

/// The messages series of the whole cluster from its nodes' parts, for staff.
pub fn messages_gathered(parts: &[serde_json::Value], staff: Staff) -> Result<Gated<MessagesResponse>, DiscloseError> {
    let sum = sum_parts(parts, |total: &mut MessagesResponse, part: MessagesResponse| {
        for (point, add) in total.series.iter_mut().zip(part.series) {
            point.messages += add.messages;
            add_groups(&mut point.kinds, add.kinds);
        }
    })?;
    Ok(release_for_staff(staff, Purpose::Analytics, sum)?)
}

/// The first part, with every other added to it by `add`.
fn sum_parts<T: serde::de::DeserializeOwned>(
    parts: &[serde_json::Value],
    add: impl Fn(&mut T, T),
) -> Result<T, DiscloseError> {
    let mut sum: Option<T> = None;
    for part in parts {
        let part: T = from_part(part)?;
        match sum.as_mut() {
            Some(total) => add(total, part),
            None => sum = Some(part),
        }
    }
    sum.ok_or_else(|| unavailable("no part was gathered".into()))
}

/// Adds a part's counts by group to the total's.
fn add_groups(total: &mut Option<BTreeMap<String, u64>>, part: Option<BTreeMap<String, u64>>) {
    if let (Some(groups), Some(more)) = (total.as_mut(), part) {
        for (group, count) in more {
            *groups.entry(group).or_default() += count;
        }
    }
}

/// One person's usage from the nodes' parts: the covering node's (the
/// others hold none of it).
pub fn person_gathered(parts: &[serde_json::Value]) -> Result<Option<PersonUsage>, DiscloseError> {
    let mut found = None;
    for part in parts {
        if let Some(usage) = from_part::<Option<PersonUsage>>(part)? {
            found = Some(usage);
        }
    }
    Ok(found)
}

/// The latest day with activity of any part.
pub fn last_day_gathered(parts: &[serde_json::Value]) -> Result<Option<i32>, DiscloseError> {
    let mut last = None;
    for part in parts {
        last = last.max(from_part::<Option<i32>>(part)?);
    }
    Ok(last)
}

/// An audience from the nodes' parts: their counts, and the people linked
/// to the asking partner (each part's are its covered people).
pub fn audience_gathered(parts: &[serde_json::Value]) -> Result<GatheredAudience, DiscloseError> {
    let mut gathered = GatheredAudience::default();
    for part in parts {
        let part: AudiencePart = from_part(part)?;
        // Those linked are among those counted: a part naming more is not
        // one a node of this cluster made.
        if part.linked.len() as u64 > part.consenting {
            return Err(unavailable("a node's part names more people than it counted".into()));
        }
        gathered.counts.push(part.consenting);
        for id in &part.linked {
            let person =
                Pseudonym::from_subject_id(id).ok_or_else(|| unavailable("a node's part names no person".into()))?;
            gathered.linked.push(person);
        }
    }
    Ok(gathered)
}

/// The dashboard's figures of the whole cluster from the nodes' parts.
pub fn pulse_gathered(parts: &[serde_json::Value]) -> Result<Pulse, DiscloseError> {
    let mut sum = Pulse { messages: vec![0; MessageKind::ALL.len()], ..Pulse::default() };
    for part in parts {
        let part: Pulse = from_part(part)?;
        (sum.dau, sum.wau, sum.mau) = (sum.dau + part.dau, sum.wau + part.wau, sum.mau + part.mau);
        for (total, add) in sum.messages.iter_mut().zip(part.messages) {
            *total += add;
        }
    }
    Ok(sum)
}

fn from_part<T: serde::de::DeserializeOwned>(part: &serde_json::Value) -> Result<T, DiscloseError> {
    serde_json::from_value(part.clone()).map_err(|error| unavailable(format!("a node's part does not read: {error}")))
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
