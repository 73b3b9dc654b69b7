//! Why the edge refused a line. Messages name the field and never its value.

use crate::contract::Purpose;

/// Closed set of rejection reasons; also the `reason` label of
/// `proviso_events_rejected_total`, so it must stay small and fixed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    InvalidJson,
    UnknownType,
    UnknownField,
    MissingField,
    WrongType,
    InvalidValue,
    InvalidTimestamp,
    InvalidPhone,
    Content,
    EssentialRefusal,
    TooLarge,
    /// A partner sent an event type or partner name it may not send.
    NotAllowed,
    /// A partner flag or friendship about an account id the messaging
    /// service has not attested as linked to that partner.
    NotLinked,
}

impl RejectReason {
    pub const ALL: &'static [RejectReason] = &[
        RejectReason::InvalidJson,
        RejectReason::UnknownType,
        RejectReason::UnknownField,
        RejectReason::MissingField,
        RejectReason::WrongType,
        RejectReason::InvalidValue,
        RejectReason::InvalidTimestamp,
        RejectReason::InvalidPhone,
        RejectReason::Content,
        RejectReason::EssentialRefusal,
        RejectReason::TooLarge,
        RejectReason::NotAllowed,
        RejectReason::NotLinked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::UnknownType => "unknown_type",
            RejectReason::UnknownField => "unknown_field",
            RejectReason::MissingField => "missing_field",
            RejectReason::WrongType => "wrong_type",
            RejectReason::InvalidValue => "invalid_value",
            RejectReason::InvalidTimestamp => "invalid_timestamp",
            RejectReason::InvalidPhone => "invalid_phone",
            RejectReason::Content => "content",
            RejectReason::EssentialRefusal => "essential_refusal",
            RejectReason::NotAllowed => "not_allowed",
            RejectReason::NotLinked => "not_linked",
            RejectReason::TooLarge => "too_large",
        }
    }
}

/// A refused line: the reason, the field at fault and a message safe to show
/// anyone (it never contains a value from the line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EdgeError {
    pub reason: RejectReason,
    pub field: Option<&'static str>,
    pub message: String,
}

impl EdgeError {
    pub fn new(reason: RejectReason, field: Option<&'static str>, message: String) -> EdgeError {
        EdgeError { reason, field, message }
    }

    pub fn missing(field: &'static str) -> EdgeError {
        EdgeError::new(RejectReason::MissingField, Some(field), format!("missing field `{field}`"))
    }

    pub fn wrong_type(field: &'static str, expected: &str) -> EdgeError {
        EdgeError::new(RejectReason::WrongType, Some(field), format!("field `{field}` must be {expected}"))
    }

    pub fn content(field: &'static str) -> EdgeError {
        EdgeError::new(
            RejectReason::Content,
            Some(field),
            format!("field `{field}`: message content is never accepted"),
        )
    }

    pub fn essential_refusal(purpose: Purpose) -> EdgeError {
        EdgeError::new(
            RejectReason::EssentialRefusal,
            Some("purpose"),
            format!("purpose `{purpose}` is essential and cannot be refused; only `product` and `ads` can be refused"),
        )
    }
}
