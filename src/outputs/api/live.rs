//! `GET /v1/live`: a server-sent-event stream of the service's pulse for the
//! dashboard (role analyst): events/s, DAU/WAU/MAU, messages by kind, abuse
//! actions by status and per day, refusals and refusal rates by purpose and
//! jurisdiction. Aggregates only.
//!
//! Never: sends an identifier; every figure is a count over everyone, which
//! only essential purposes (analytics, security) may receive.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::{Deserialize, Serialize};

use super::auth::{token_hash, Role};
use super::error::{ApiError, Code};
use super::{rfc3339, SharedState};
use crate::consent::{status_at, ConsentState};
use crate::contract::Purpose;
use crate::disclose::metrics::{self, format_day, Pulse, UsageQuestion};
use crate::gate::release_for_staff;
use crate::processors::abuse::Status;
use crate::state::State as DerivedState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LiveQuery {
    /// Milliseconds between updates, 200..=60000 (default 1000).
    #[param(minimum = 200, maximum = 60000)]
    pub interval_ms: Option<u64>,
}

/// Reads the query of `GET /v1/live`: milliseconds between updates (pure:
/// the fuzz targets call it too).
pub(crate) fn live_params(
    query: Result<Query<LiveQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<u64, ApiError> {
    let Query(query) = query.map_err(|_| ApiError::new(Code::InvalidQuery, "the query parameter is interval_ms"))?;
    let interval = query.interval_ms.unwrap_or(1000);
    if !(200..=60_000).contains(&interval) {
        return Err(ApiError::new(Code::InvalidQuery, "`interval_ms` must be 200..=60000"));
    }
    Ok(interval)
}

/// One update of the stream (event name `figures`).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LiveFigures {
    pub at: String,
    /// Log records applied.
    pub events: u64,
    /// Records applied per second since the previous update.
    pub events_per_second: f64,
    pub subjects: u64,
    /// Latest UTC day with activity (the figures below are for it).
    pub day: Option<String>,
    pub dau: u64,
    pub wau: u64,
    pub mau: u64,
    /// Messages on `day` by kind.
    pub messages: BTreeMap<String, u64>,
    /// Subjects by current abuse status (banned, review).
    pub abuse: BTreeMap<String, u64>,
    /// Abuse actions per event-time day, by the status they set, for the
    /// [`ABUSE_DAYS`] days ending on `day` (oldest first).
    pub abuse_actions: Vec<AbuseDay>,
    /// Subjects whose latest choice refuses a refusable purpose, by purpose
    /// and jurisdiction (region of the number).
    pub refusals: BTreeMap<String, BTreeMap<String, u64>>,
    /// Acting subjects by jurisdiction: the denominators of `refusal_rates`.
    pub subjects_by_region: BTreeMap<String, u64>,
    /// `refusals` divided by `subjects_by_region`, by purpose and jurisdiction.
    pub refusal_rates: BTreeMap<String, BTreeMap<String, f64>>,
    /// Lines rejected by the edge since the server started, by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Disclosures to partners recorded in the audit log, by purpose.
    pub disclosures: BTreeMap<String, u64>,
}

/// Days of abuse actions in each update.
pub const ABUSE_DAYS: i32 = 14;

/// Abuse actions fired on one day, by the status they set.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AbuseDay {
    pub day: String,
    pub banned: u64,
    pub review: u64,
    pub clear: u64,
}

/// Actions per day for the [`ABUSE_DAYS`] days ending on `last_day`.
fn abuse_days(state: &DerivedState, last_day: i32) -> Vec<AbuseDay> {
    let first_day = last_day - ABUSE_DAYS + 1;
    let mut days: Vec<AbuseDay> =
        (first_day..=last_day).map(|day| AbuseDay { day: format_day(day), ..AbuseDay::default() }).collect();
    for action in state.abuse.actions() {
        let day = crate::contract::day_of(action.ts_ms);
        let Some(slot) = usize::try_from(day - first_day).ok().and_then(|i| days.get_mut(i)) else { continue };
        match action.status {
            Status::Banned => slot.banned += 1,
            Status::Review => slot.review += 1,
            Status::Clear => slot.clear += 1,
        }
    }
    days
}

/// The figures of `state` now, except `events_per_second`, which each
/// stream derives from the snapshots it sends.
fn figures(state: &DerivedState, policy: &crate::consent::Policy, at_ms: i64) -> LiveFigures {
    let last_day = state.usage.last_day();
    figures_of_day(state, policy, at_ms, last_day, last_day.map(|day| Pulse::of(state, day)))
}

/// [`figures`] for `last_day`, with its usage figures `pulse` (cluster
/// mode: gathered from the nodes covering every partition).
fn figures_of_day(
    state: &DerivedState,
    policy: &crate::consent::Policy,
    at_ms: i64,
    last_day: Option<i32>,
    pulse: Option<Pulse>,
) -> LiveFigures {
    let events = state.next_seq;
    let pulse = pulse.unwrap_or_default();
    let messages = if last_day.is_some() { pulse.messages_by_kind() } else { BTreeMap::new() };
    let mut abuse = BTreeMap::from([("banned".to_string(), 0u64), ("review".to_string(), 0u64)]);
    for (status, count) in state.abuse.status_counts() {
        abuse.insert(status.as_str().to_string(), count);
    }
    let mut by_region: BTreeMap<crate::contract::Region, u64> = BTreeMap::new();
    for record in state.subjects.iter().filter(|r| r.has_acted()) {
        *by_region.entry(record.region).or_default() += 1;
    }
    let subjects_by_region: BTreeMap<String, u64> =
        by_region.into_iter().map(|(region, count)| (region.as_str().to_string(), count)).collect();
    let mut refusals: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (subject, history) in state.consent.iter() {
        let Some(record) = state.subjects.get(subject) else { continue };
        for purpose in [Purpose::Product, Purpose::Ads] {
            let status = status_at(history, purpose, record.region.as_str(), record.first_seen_ms, policy, at_ms);
            if status.state == ConsentState::Denied && status.since_ms.is_some() {
                let by_region = refusals.entry(purpose.as_str().to_string()).or_default();
                *by_region.entry(record.region.as_str().to_string()).or_default() += 1;
            }
        }
    }
    let refusal_rates = refusals
        .iter()
        .map(|(purpose, by_region)| {
            let rates = by_region
                .iter()
                .map(|(region, refused)| {
                    let subjects = subjects_by_region.get(region).copied().unwrap_or(0).max(1);
                    (region.clone(), *refused as f64 / subjects as f64)
                })
                .collect();
            (purpose.clone(), rates)
        })
        .collect();
    LiveFigures {
        at: rfc3339(at_ms),
        events,
        events_per_second: 0.0,
        subjects: state.subjects.acting() as u64,
        day: last_day.map(format_day),
        dau: pulse.dau,
        wau: pulse.wau,
        mau: pulse.mau,
        messages,
        abuse,
        abuse_actions: last_day.map(|day| abuse_days(state, day)).unwrap_or_default(),
        refusals,
        subjects_by_region,
        refusal_rates,
        rejected: BTreeMap::new(),
        disclosures: BTreeMap::new(),
    }
}

/// How long one computation of the figures serves every open stream.
const SHARED_FOR: Duration = Duration::from_millis(200);

/// The latest figures and when they were computed, shared by every open
/// stream: however many dashboards are open, the figures (a pass over every
/// person under the state read lock) are computed at most once per
/// `SHARED_FOR` (200 ms).
#[derive(Default)]
pub struct LiveCache(tokio::sync::Mutex<Option<(Instant, Shared)>>);

/// The figures last computed, or why they could not be (cluster mode: the
/// nodes' parts could not be gathered). An error is shared as long as
/// figures are, from the moment it came: streams waiting on a gather that
/// failed after seconds fail at once, instead of each asking again in turn.
type Shared = Result<Arc<LiveFigures>, (Code, String)>;

impl LiveCache {
    /// The shared figures, computed anew when older than [`SHARED_FOR`]
    /// (streams asking meanwhile wait for that one computation). Cluster
    /// mode: the usage figures are gathered from the nodes covering every
    /// partition (an error when they cannot be).
    async fn current(&self, app: &super::AppState) -> Result<(Instant, Arc<LiveFigures>), ApiError> {
        let mut slot = self.0.lock().await;
        if let Some((computed, shared)) = slot.as_ref() {
            if computed.elapsed() < SHARED_FOR {
                return match shared {
                    Ok(figures) => Ok((*computed, figures.clone())),
                    Err((code, message)) => Err(ApiError::new(*code, message.clone())),
                };
            }
        }
        let started = Instant::now();
        let gathered = match &app.gather {
            Some(gather) => match gathered_pulse(gather, app).await {
                Ok(gathered) => Some(gathered),
                Err(error) => {
                    *slot = Some((Instant::now(), Err((error.code, error.message.clone()))));
                    return Err(error);
                }
            },
            None => None,
        };
        let mut figures = {
            let state = app.pipeline.state();
            match gathered {
                Some((day, pulse)) => figures_of_day(&state, app.pipeline.policy(), app.now_ms(), day, pulse),
                None => figures(&state, app.pipeline.policy(), app.now_ms()),
            }
        };
        crate::telemetry::LiveFiguresComputed { duration: started.elapsed() }.emit();
        figures.rejected = app
            .rejected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(reason, count)| (reason.to_string(), *count))
            .collect();
        figures.disclosures = app.disclosure.audit().counts_by_purpose();
        let fresh = Arc::new(figures);
        *slot = Some((started, Ok(fresh.clone())));
        Ok((started, fresh))
    }
}

/// Cluster mode: the last day with activity and its usage figures, from
/// the nodes covering every partition.
async fn gathered_pulse(
    gather: &super::usage::Gatherer,
    app: &super::AppState,
) -> Result<(Option<i32>, Option<metrics::Pulse>), ApiError> {
    let day = metrics::last_day_gathered(&gather.ask(&app.pipeline, &UsageQuestion::LastDay).await?)?;
    let pulse = match day {
        Some(day) => Some(metrics::pulse_gathered(&gather.ask(&app.pipeline, &UsageQuestion::Pulse(day)).await?)?),
        None => None,
    };
    Ok((day, pulse))
}

/// Records applied per second between two snapshots a stream sent; `None`
/// without an earlier snapshot or when both are the same one (the stream
/// then repeats the rate it last showed).
fn rate(previous: Option<(Instant, u64)>, now: (Instant, u64)) -> Option<f64> {
    let (when, count) = previous?;
    let seconds = now.0.checked_duration_since(when)?.as_secs_f64();
    (seconds > 0.0).then(|| now.1.saturating_sub(count) as f64 / seconds)
}

/// Live figures as server-sent events (`event: figures`, JSON data), one
/// update immediately and then every `interval_ms`. Role: analyst. Each
/// token may hold `max_live_streams_per_token` streams at once.
#[utoipa::path(
    get,
    path = "/v1/live",
    params(LiveQuery),
    responses(
        (status = 200, body = LiveFigures, content_type = "text/event-stream", description = "a stream of `figures` events"),
        (status = 429, body = super::error::ErrorBody, description = "`too_many_streams`: the token holds its most streams"),
    ),
    security(("bearer" = []))
)]
pub async fn get_live(
    State(app): State<SharedState>,
    headers: HeaderMap,
    query: Result<Query<LiveQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let staff = super::auth::staff(app.tokens.require(&headers, &[Role::Analyst])?)?;
    let interval = live_params(query)?;
    // Held by the stream: its place is freed when the stream is dropped.
    let place = app.live_streams.open(token_hash(&headers)?, app.limits.max_live_streams_per_token)?;
    // Per stream: the snapshot it last sent (when computed, records) and
    // the rate it last showed.
    let stream = futures_util::stream::unfold(
        (app, None, 0.0, true, place),
        move |(app, previous, shown, first, place)| async move {
            if !first {
                tokio::time::sleep(Duration::from_millis(interval)).await;
            }
            if app.closing.load(std::sync::atomic::Ordering::Relaxed) {
                return None;
            }
            let (computed, shared) = match app.live.current(&app).await {
                Ok(current) => current,
                Err(error) => {
                    let event = Event::default().event("error").data(error.message);
                    return Some((Ok(event), (app, previous, shown, false, place)));
                }
            };
            let snapshot = (computed, shared.events);
            let events_per_second = if first { 0.0 } else { rate(previous, snapshot).unwrap_or(shown) };
            let mut figures = LiveFigures::clone(&shared);
            figures.events_per_second = events_per_second;
            let update = release_for_staff(staff, Purpose::Analytics, figures).map(|g| g.into_inner());
            let event = match update.ok().and_then(|figures| Event::default().event("figures").json_data(figures).ok())
            {
                Some(event) => event,
                None => Event::default().event("error").data("figures unavailable"),
            };
            Some((Ok(event), (app, Some(snapshot), events_per_second, false, place)))
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
