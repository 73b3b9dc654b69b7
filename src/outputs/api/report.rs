//! `GET /v1/subjects/{s}/report`: what proviso holds about one person, for
//! the messaging app's privacy center (role subject-service). The report
//! is built in `disclose::subjects`.

use axum::extract::State;

use super::error::ApiError;
use super::subjects::{ForSubjectService, SubjectInPath};
use super::SharedState;
use crate::disclose::metrics::{self, PersonKey, UsageQuestion};
use crate::disclose::subjects::SubjectReport;
use crate::gate::Gated;

/// Everything proviso holds about the person, by category. Role: subject-service.
#[utoipa::path(
    get,
    path = "/v1/subjects/{subject}/report",
    params(("subject" = String, Path, description = "Subject id (`s_` and 32 lowercase hex digits)", pattern = "^s_[0-9a-f]{32}$")),
    responses((status = 200, body = crate::disclose::subjects::SubjectReport), (status = 404, body = super::error::ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_report(
    State(app): State<SharedState>,
    subject: SubjectInPath<ForSubjectService>,
) -> Result<Gated<SubjectReport>, ApiError> {
    // Cluster mode: the person's usage is held by the node covering their
    // partition.
    let usage = match &app.gather {
        Some(gather) => {
            let question = UsageQuestion::Person(PersonKey::of(&subject.pseudonym));
            Some(metrics::person_gathered(&gather.ask(&app.pipeline, &question).await?)?.unwrap_or_default())
        }
        None => None,
    };
    let state = app.pipeline.state();
    let disclosure = &app.disclosure;
    let report = crate::disclose::subjects::report(
        &state,
        app.pipeline.policy(),
        disclosure.audit(),
        app.pipeline.vault(),
        &subject.pseudonym,
        app.now_ms(),
        usage,
    )?;
    Ok(report)
}
