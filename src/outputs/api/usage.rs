//! `GET /v1/metrics/active` and `GET /v1/metrics/messages`: exact usage
//! series, released to the essential `analytics` purpose through the gate.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;

use super::auth::Role;
use super::error::{ApiError, Code};
use super::SharedState;
use std::sync::Arc;

use crate::disclose::metrics::{self, ActiveQuery, ActiveResponse, MessagesQuery, MessagesResponse, UsageQuestion};
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
    if let Some(gather) = &app.gather {
        query.check()?;
        let parts = gather.ask(&app.pipeline, &UsageQuestion::Active(query)).await?;
        return Ok(metrics::active_gathered(&parts, staff)?);
    }
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
    if let Some(gather) = &app.gather {
        query.check()?;
        let parts = gather.ask(&app.pipeline, &UsageQuestion::Messages(query)).await?;
        return Ok(metrics::messages_gathered(&parts, staff)?);
    }
    let state = app.pipeline.state();
    Ok(metrics::messages(&state, staff, &query)?)
}

/// Cluster mode: usage questions to every node ([`crate::cluster::gather`]).
/// Each node holds the usage of the partitions it covers; a question is
/// answered by nodes covering every partition once, each at this node's
/// position in the cluster's log or later.
#[derive(Clone)]
pub struct Gatherer {
    pub client: async_nats::Client,
    pub partitions: u16,
    /// This process's id in its parts (random, per start).
    pub node: String,
}

/// How long a gathered question waits for the covers of the nodes to fit
/// (a partition taken over is covered once its new holder rebuilt it).
const GATHER_LIMIT: std::time::Duration = std::time::Duration::from_secs(20);

impl Gatherer {
    /// The parts of `question` from nodes covering every partition once.
    pub async fn ask(
        &self,
        pipeline: &crate::pipeline::Pipeline,
        question: &UsageQuestion,
    ) -> Result<Vec<serde_json::Value>, ApiError> {
        // This node caught up before the handler ran (`catch_up_first`):
        // every node answers at this position or later.
        let at = pipeline.cluster_status().map(|(position, _)| position).unwrap_or_default();
        let query =
            serde_json::to_value(question).map_err(|error| ApiError::new(Code::Unavailable, error.to_string()))?;
        let ask = crate::cluster::gather::Ask { at, query };
        let parts = crate::cluster::gather::gather(&self.client, self.partitions, &ask, GATHER_LIMIT)
            .await
            .map_err(|error| ApiError::new(Code::Unavailable, error.to_string()))?;
        parts.into_iter().map(|part| part.answer.map_err(|why| ApiError::new(Code::Unavailable, why))).collect()
    }

    /// Answers every node's questions from `pipeline`'s state, each once
    /// this node has applied the cluster's log up to the question's
    /// position.
    pub async fn answer(&self, pipeline: Arc<crate::pipeline::Pipeline>) -> Result<(), crate::cluster::ClusterError> {
        let (partitions, node) = (self.partitions, self.node.clone());
        crate::cluster::gather::serve(self.client.clone(), move |ask: crate::cluster::gather::Ask| {
            let (pipeline, node) = (Arc::clone(&pipeline), node.clone());
            async move {
                // A node that stopped applying the cluster's log gives up
                // its partitions and answers for none (no reply).
                if let Err(error) = pipeline.applied_through(ask.at).await {
                    tracing::warn!(%error, "Not answering a gathered query: this node is behind the cluster's log.");
                    return None;
                }
                let answered = async {
                    let question: UsageQuestion =
                        serde_json::from_value(ask.query).map_err(|error| error.to_string())?;
                    // The series can take a while: off the runtime's workers.
                    tokio::task::spawn_blocking(move || {
                        let state = pipeline.state();
                        let covered = state.cover.held_of(partitions);
                        let value = metrics::part_of(&state, pipeline.policy(), &question)
                            .map_err(|error| error.to_string())?;
                        Ok::<_, String>((covered, value))
                    })
                    .await
                    .map_err(|error| error.to_string())?
                }
                .await;
                let (covered, answer) = match answered {
                    Ok((covered, value)) => (covered, Ok(value)),
                    Err(why) => (Vec::new(), Err(why)),
                };
                Some(crate::cluster::gather::Part { node, partitions, covered, answer })
            }
        })
        .await
    }
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
