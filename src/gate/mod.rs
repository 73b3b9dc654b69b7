//! The purpose gate: the only door through which a subject's data leaves.
//!
//! Owns: `allow(subject, purpose, at)` and `Gated<T>`, the only type an output
//! accepts. A `Gated<T>` can be built only here, after a decision.
//! Never: offers a bypass flag, caches a decision past the instant it was
//! asked for, or lets an output read state around it.

use crate::consent::{status_at, ConsentState, Policy, PurposeStatus};
use crate::contract::Purpose;
use crate::state::State;

/// The gate's answer for one subject, purpose and instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub status: PurposeStatus,
}

/// A value cleared by the gate for one purpose. Outputs take nothing else.
#[derive(Debug)]
pub struct Gated<T> {
    value: T,
    purpose: Purpose,
}

impl<T> Gated<T> {
    pub fn purpose(&self) -> Purpose {
        self.purpose
    }

    pub fn into_inner(self) -> T {
        self.value
    }

    pub fn get(&self) -> &T {
        &self.value
    }
}

/// Why the gate refused to release something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    #[error("purpose `{0}` may not receive aggregates; only essential purposes may")]
    AggregateNotEssential(Purpose),
    #[error("subject is not allowed purpose `{0}` at this time")]
    Refused(Purpose),
    #[error("unknown subject")]
    UnknownSubject,
    #[error("the partner is not configured for purpose `{0}`")]
    PartnerPurpose(Purpose),
    #[error("the subject is not linked to the partner")]
    NotLinked,
}

/// Decides whether `subject` (dense index) may be used for `purpose` at `at_ms`.
///
/// Essential purposes are always allowed; a refusal always wins over policy;
/// `pending` is never allowed; opt-in is never allowed without a grant; a
/// banned subject is never allowed a refusable purpose (no product or ads
/// output about an account banned for abuse).
pub fn allow(state: &State, policy: &Policy, subject: u32, purpose: Purpose, at_ms: i64) -> Decision {
    let decision = decide(state, policy, subject, purpose, at_ms);
    crate::telemetry::GateDecided { purpose, allowed: decision.allowed }.emit();
    decision
}

/// [`allow`] without telemetry, for callers that count a whole batch once.
fn decide(state: &State, policy: &Policy, subject: u32, purpose: Purpose, at_ms: i64) -> Decision {
    let status = match state.subjects.get(subject) {
        Some(record) => status_at(
            state.consent.history(subject),
            purpose,
            record.region.as_str(),
            record.first_seen_ms,
            policy,
            at_ms,
        ),
        None => status_at(&[], purpose, "ZZ", at_ms, policy, at_ms),
    };
    let banned = !purpose.is_essential() && state.abuse.is_banned(subject);
    let allowed = status.state == ConsentState::Granted && !banned;
    Decision { allowed, status }
}

/// Releases a value about one subject for `purpose`, if the gate allows it now.
pub fn release<T>(
    state: &State,
    policy: &Policy,
    subject: u32,
    purpose: Purpose,
    at_ms: i64,
    value: T,
) -> Result<Gated<T>, GateError> {
    if state.subjects.get(subject).is_none() {
        return Err(GateError::UnknownSubject);
    }
    if allow(state, policy, subject, purpose, at_ms).allowed {
        Ok(Gated { value, purpose })
    } else {
        Err(GateError::Refused(purpose))
    }
}

/// What one partner may receive, from its configuration.
#[derive(Clone, Debug)]
pub struct PartnerGrant<'a> {
    pub name: &'a str,
    pub purposes: &'a [Purpose],
}

/// Releases a value about one subject to a partner network for `purpose`:
/// the partner must be configured for the purpose, the subject must be
/// linked to that partner now, and [`allow`] must say yes now.
pub fn release_to_partner<T>(
    state: &State,
    policy: &Policy,
    partner: &PartnerGrant<'_>,
    subject: u32,
    purpose: Purpose,
    at_ms: i64,
    value: T,
) -> Result<Gated<T>, GateError> {
    if !partner.purposes.contains(&purpose) {
        crate::telemetry::GateDecided { purpose, allowed: false }.emit();
        return Err(GateError::PartnerPurpose(purpose));
    }
    let linked =
        state.links.partner_index(partner.name).is_some_and(|index| state.links.account_of(index, subject).is_some());
    if !linked {
        crate::telemetry::GateDecided { purpose, allowed: false }.emit();
        return Err(GateError::NotLinked);
    }
    release(state, policy, subject, purpose, at_ms, value)
}

/// Counts the subjects in `subjects` allowed `purpose` now (refusable
/// purposes too: each subject is asked, so the count covers only people who
/// allow it). The only way a refusable purpose receives a number.
pub fn release_count(
    state: &State,
    policy: &Policy,
    subjects: impl IntoIterator<Item = u32>,
    purpose: Purpose,
    at_ms: i64,
) -> Gated<Vec<u32>> {
    let mut denied = 0u64;
    let allowed: Vec<u32> = subjects
        .into_iter()
        .filter(|&subject| {
            let allowed = decide(state, policy, subject, purpose, at_ms).allowed;
            denied += u64::from(!allowed);
            allowed
        })
        .collect();
    crate::telemetry::GateDecisionsCounted { purpose, allowed: allowed.len() as u64, denied }.emit();
    Gated { value: allowed, purpose }
}

/// Releases an aggregate (counts over many subjects, no identifiers). Only
/// essential purposes may receive aggregates computed over every subject;
/// refusable purposes need per-subject checks through [`release`].
pub fn release_aggregate<T>(purpose: Purpose, value: T) -> Result<Gated<T>, GateError> {
    if purpose.is_essential() {
        crate::telemetry::GateDecided { purpose, allowed: true }.emit();
        Ok(Gated { value, purpose })
    } else {
        crate::telemetry::GateDecided { purpose, allowed: false }.emit();
        Err(GateError::AggregateNotEssential(purpose))
    }
}

/// Releases per-subject records to proviso's own staff for an essential
/// purpose (abuse reviewers work under `security`). Refusable purposes never
/// pass: nobody reviews ads data about a person.
pub fn release_for_staff<T>(purpose: Purpose, value: T) -> Result<Gated<T>, GateError> {
    release_aggregate(purpose, value)
}

/// Releases a subject's own record to the subject-facing service (the person
/// seeing what is held about them is the `service` purpose, always allowed).
pub fn release_to_subject<T>(value: T) -> Gated<T> {
    crate::telemetry::GateDecided { purpose: Purpose::Service, allowed: true }.emit();
    Gated { value, purpose: Purpose::Service }
}

#[cfg(test)]
mod tests;
