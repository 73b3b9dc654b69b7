//! Admin operations: hot backups.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::Role;
use super::error::{ApiError, Code};
use super::SharedState;
use crate::pipeline::BackupError;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// Name of the backup: the server creates the directory of that name
    /// inside its `backup_dir` (it must not exist yet). A request never
    /// names a path: the server writes nowhere else.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub name: String,
}

/// Whether `name` is a backup name (see [`BackupRequest::name`]).
fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.len() <= 64
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BackupResponse {
    /// The backup's directory on the server's host.
    pub dir: String,
    /// The log position: the backup holds every record before it (every
    /// batch acknowledged before the request was made).
    pub position: u64,
    /// Events applied to state at that position.
    pub events: u64,
    /// Audit log records copied.
    pub audit_records: u64,
    /// Feed records copied (every partner and purpose).
    pub feed_records: u64,
    /// Vault secrets made for people who had none (so a later erasure can
    /// be matched against this backup).
    pub secrets_minted: u64,
    /// When it was taken (RFC 3339).
    pub taken_at: String,
}

/// Takes a consistent backup of the data dir into a new directory while the
/// server runs: the log up to a position, a snapshot at that position, the
/// audit log, feeds and vault as of that point, the key. `proviso serve
/// --data DIR` opens it; `proviso restore` also re-applies the erasures made
/// since. Ingest waits while it is taken. Role: admin.
#[utoipa::path(
    post,
    path = "/v1/admin/backup",
    request_body = BackupRequest,
    responses(
        (status = 200, body = BackupResponse),
        (status = 400, body = super::error::ErrorBody),
        (status = 409, description = "already_exists: a backup of that name exists", body = super::error::ErrorBody),
        (status = 503, body = super::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn post_backup(
    State(app): State<SharedState>,
    headers: HeaderMap,
    body: Result<Json<BackupRequest>, JsonRejection>,
) -> Result<Json<BackupResponse>, ApiError> {
    app.tokens.require(&headers, &[Role::Admin])?;
    let Json(request) = body.map_err(super::subjects::bad_body)?;
    if !valid_name(&request.name) {
        return Err(ApiError::new(
            Code::InvalidBody,
            "`name` must be 1 to 64 letters, digits, `.`, `_` or `-`, starting with a letter or digit",
        ));
    }
    crate::log::fsmode::create_private_dir(&app.backup_dir).map_err(ApiError::internal)?;
    let dir = app.backup_dir.join(&request.name);
    let pipeline = app.pipeline.clone();
    let target = dir.clone();
    let outcome = tokio::task::spawn_blocking(move || pipeline.backup(&target)).await.map_err(ApiError::internal)?;
    match outcome {
        Ok(report) => Ok(Json(BackupResponse {
            dir: std::path::absolute(&dir).unwrap_or(dir).display().to_string(),
            position: report.position,
            events: report.events,
            audit_records: report.audit_records,
            feed_records: report.feed_records,
            secrets_minted: report.secrets_minted,
            taken_at: super::rfc3339(report.taken_ms),
        })),
        Err(BackupError::Exists(_)) => {
            Err(ApiError::new(Code::AlreadyExists, "a backup of that name exists; choose another name"))
        }
        Err(BackupError::Pipeline(error)) => Err(error.into()),
        Err(error) => Err(ApiError::internal(error)),
    }
}
