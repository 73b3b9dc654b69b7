//! The one error shape of the HTTP API and its closed table of codes.
//!
//! Every error body is `{"message": "...", "code": "...", "type": "..."}`.
//! Codes are stable: add new ones, never rename or reuse one. Messages never
//! echo a submitted value (it may be a phone number or content).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// Every API error code, with its type and HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    MissingToken,
    InvalidToken,
    Forbidden,
    PayloadTooLarge,
    InvalidQuery,
    InvalidBody,
    InvalidPhone,
    InvalidSubject,
    SubjectNotFound,
    UnknownPurpose,
    EssentialPurpose,
    RouteNotFound,
    InvalidRules,
    PartnerNotFound,
    FeedNotFound,
    BudgetSpent,
    Unavailable,
    Internal,
    /// A request body stopped arriving for longer than the idle-body timeout.
    RequestTimeout,
    /// The server holds its most connections; sent before closing one more.
    TooManyConnections,
    /// The token holds its most `/v1/live` streams.
    TooManyStreams,
    MethodNotAllowed,
    /// The framework could not read the request (e.g. a path segment that is
    /// not UTF-8).
    MalformedRequest,
    /// An `Idempotency-Key` header that is not 1 to 255 visible ASCII characters.
    InvalidIdempotencyKey,
    /// An `Idempotency-Key` already used for a different request body.
    IdempotencyKeyReused,
    /// What the request would create exists (a backup's name).
    AlreadyExists,
    /// A write to the disk failed (full or broken): the log (every write
    /// after is refused until restart), the audit log or a partner feed.
    StorageFailed,
}

impl Code {
    /// Every code (the OpenAPI document lists their names; a unit test
    /// checks none is missing).
    pub const ALL: &'static [Code] = &[
        Code::MissingToken,
        Code::InvalidToken,
        Code::Forbidden,
        Code::PayloadTooLarge,
        Code::InvalidQuery,
        Code::InvalidBody,
        Code::InvalidPhone,
        Code::InvalidSubject,
        Code::SubjectNotFound,
        Code::UnknownPurpose,
        Code::EssentialPurpose,
        Code::RouteNotFound,
        Code::InvalidRules,
        Code::PartnerNotFound,
        Code::FeedNotFound,
        Code::BudgetSpent,
        Code::Unavailable,
        Code::Internal,
        Code::RequestTimeout,
        Code::TooManyConnections,
        Code::TooManyStreams,
        Code::MethodNotAllowed,
        Code::MalformedRequest,
        Code::InvalidIdempotencyKey,
        Code::IdempotencyKeyReused,
        Code::AlreadyExists,
        Code::StorageFailed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Code::MissingToken => "missing_token",
            Code::InvalidToken => "invalid_token",
            Code::Forbidden => "forbidden",
            Code::PayloadTooLarge => "payload_too_large",
            Code::InvalidQuery => "invalid_query",
            Code::InvalidBody => "invalid_body",
            Code::InvalidPhone => "invalid_phone",
            Code::InvalidSubject => "invalid_subject",
            Code::SubjectNotFound => "subject_not_found",
            Code::UnknownPurpose => "unknown_purpose",
            Code::EssentialPurpose => "essential_purpose",
            Code::RouteNotFound => "route_not_found",
            Code::InvalidRules => "invalid_rules",
            Code::PartnerNotFound => "partner_not_found",
            Code::FeedNotFound => "feed_not_found",
            Code::BudgetSpent => "budget_spent",
            Code::Unavailable => "unavailable",
            Code::Internal => "internal",
            Code::RequestTimeout => "request_timeout",
            Code::TooManyConnections => "too_many_connections",
            Code::TooManyStreams => "too_many_streams",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::MalformedRequest => "malformed_request",
            Code::InvalidIdempotencyKey => "invalid_idempotency_key",
            Code::IdempotencyKeyReused => "idempotency_key_reused",
            Code::AlreadyExists => "already_exists",
            Code::StorageFailed => "storage_failed",
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Code::MissingToken | Code::InvalidToken | Code::Forbidden => "auth",
            Code::Unavailable | Code::Internal | Code::TooManyConnections | Code::StorageFailed => "internal",
            _ => "invalid_request",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Code::MissingToken | Code::InvalidToken => StatusCode::UNAUTHORIZED,
            Code::Forbidden => StatusCode::FORBIDDEN,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::SubjectNotFound | Code::RouteNotFound | Code::PartnerNotFound | Code::FeedNotFound => {
                StatusCode::NOT_FOUND
            }
            Code::Unavailable | Code::TooManyConnections | Code::StorageFailed => StatusCode::SERVICE_UNAVAILABLE,
            Code::BudgetSpent | Code::TooManyStreams => StatusCode::TOO_MANY_REQUESTS,
            Code::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Code::AlreadyExists => StatusCode::CONFLICT,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong and how to fix it.
    pub message: String,
    /// Stable machine-readable code, e.g. `forbidden`.
    pub code: &'static str,
    /// `invalid_request`, `auth` or `internal`.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into() }
    }

    /// A 5xx: the detail goes to the log, the body stays generic.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "Request failed inside proviso.");
        ApiError::new(Code::Internal, "internal error; see the server log")
    }
}

impl ApiError {
    /// The standard body of this error as JSON text (for answers written
    /// outside axum, such as the one sent to a connection over the cap).
    pub fn body_json(&self) -> String {
        let body = ErrorBody { message: self.message.clone(), code: self.code.name(), kind: self.code.kind() };
        serde_json::to_string(&body).unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { message: self.message, code: self.code.name(), kind: self.code.kind() };
        (self.code.status(), Json(body)).into_response()
    }
}

impl From<crate::pipeline::PipelineError> for ApiError {
    fn from(error: crate::pipeline::PipelineError) -> ApiError {
        match error {
            crate::pipeline::PipelineError::ShuttingDown | crate::pipeline::PipelineError::Cluster(_) => {
                ApiError::new(Code::Unavailable, error.to_string())
            }
            crate::pipeline::PipelineError::Failed(_) => {
                tracing::warn!(%error, "Refused a write: the log failed earlier.");
                ApiError::new(Code::StorageFailed, error.to_string())
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<crate::disclose::DiscloseError> for ApiError {
    fn from(error: crate::disclose::DiscloseError) -> ApiError {
        use crate::disclose::DiscloseError as E;
        let message = error.to_string();
        match error {
            E::PartnerNotFound => ApiError::new(Code::PartnerNotFound, message),
            E::NotConfigured(_) => ApiError::new(Code::Forbidden, message),
            E::UnknownPurpose(_) | E::NoSuchFeed => ApiError::new(Code::FeedNotFound, message),
            E::AccountNotLinked | E::SubjectNotFound | E::Gate(crate::gate::GateError::UnknownSubject) => {
                ApiError::new(Code::SubjectNotFound, message_for_not_found(&error))
            }
            E::InvalidQuery(message) => ApiError::new(Code::InvalidQuery, message),
            E::BudgetSpent => ApiError::new(Code::BudgetSpent, message),
            E::Pipeline(error) => error.into(),
            E::Audit(crate::disclose::audit::AuditError::Io { ref source, .. }) => {
                tracing::error!(%error, "A disclosure could not be audited; nothing was disclosed.");
                ApiError::new(
                    Code::StorageFailed,
                    format!(
                        "proviso could not write its disclosure audit log ({}); nothing was disclosed. Try again \
                         once space returns or the disk is repaired",
                        crate::log::describe_disk_error(source)
                    ),
                )
            }
            E::Vault(crate::vault::VaultError::Io { ref source, .. }) => {
                tracing::error!(%error, "A person's secret could not be stored; nothing was disclosed.");
                ApiError::new(
                    Code::StorageFailed,
                    format!(
                        "proviso could not write its vault of secrets ({}); nothing was disclosed. Try again once \
                         space returns or the disk is repaired",
                        crate::log::describe_disk_error(source)
                    ),
                )
            }
            E::Vault(crate::vault::VaultError::NotMinted) => {
                ApiError::new(Code::Unavailable, format!("{message}; try again"))
            }
            E::Feed(ref feed) => {
                tracing::error!(%error, "A partner feed could not be written; nothing was disclosed.");
                ApiError::new(
                    Code::StorageFailed,
                    format!(
                        "proviso could not write the partner feed ({}); nothing was disclosed. Try again once \
                         space returns or the disk is repaired",
                        crate::log::describe_disk_error(feed.io_error())
                    ),
                )
            }
            other => ApiError::internal(other),
        }
    }
}

/// A subject-facing 404 says only that nothing is held.
fn message_for_not_found(error: &crate::disclose::DiscloseError) -> String {
    match error {
        crate::disclose::DiscloseError::AccountNotLinked => error.to_string(),
        _ => "proviso holds nothing about this subject".to_string(),
    }
}

/// The one way a body about people becomes a response: only a value the
/// gate released has this `IntoResponse` (partner, advertiser, subject and
/// staff bodies are built only in `disclose/`, and only as `Gated<T>`).
impl<T: Serialize> IntoResponse for crate::gate::Gated<T> {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Code::ALL` holds every variant once (the match makes a new variant
    /// a compile error here until it is listed).
    #[test]
    fn all_lists_every_code() {
        let listed = |code: Code| Code::ALL.iter().filter(|c| **c == code).count();
        for code in Code::ALL {
            let variant_listed = match code {
                Code::MissingToken
                | Code::InvalidToken
                | Code::Forbidden
                | Code::PayloadTooLarge
                | Code::InvalidQuery
                | Code::InvalidBody
                | Code::InvalidPhone
                | Code::InvalidSubject
                | Code::SubjectNotFound
                | Code::UnknownPurpose
                | Code::EssentialPurpose
                | Code::RouteNotFound
                | Code::InvalidRules
                | Code::PartnerNotFound
                | Code::FeedNotFound
                | Code::BudgetSpent
                | Code::Unavailable
                | Code::Internal
                | Code::RequestTimeout
                | Code::TooManyConnections
                | Code::TooManyStreams
                | Code::MethodNotAllowed
                | Code::MalformedRequest
                | Code::InvalidIdempotencyKey
                | Code::IdempotencyKeyReused
                | Code::AlreadyExists
                | Code::StorageFailed => listed(*code),
            };
            assert_eq!(variant_listed, 1, "{code:?}");
        }
        assert_eq!(Code::ALL.len(), 27);
    }
}
