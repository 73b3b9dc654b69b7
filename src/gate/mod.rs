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
///
/// Its fields are private and every constructor is a release function of
/// this module that checks what its name promises, so outside the gate a
/// `Gated<T>` cannot be made (`tests/compile_fail/` proves it). Inside the
/// crate, `Gated::map` reshapes a released value into the body that
/// carries it; it keeps the purpose and never widens it.
#[derive(Debug)]
pub struct Gated<T> {
    value: T,
    purpose: Purpose,
}

impl<T> Gated<T> {
    pub fn purpose(&self) -> Purpose {
        self.purpose
    }

    pub fn get(&self) -> &T {
        &self.value
    }

    /// Reshapes the released value (a page of views into a response body,
    /// a count into a rounded size). Crate-only: the closure sees only what
    /// was released.
    pub(crate) fn map<U>(self, reshape: impl FnOnce(T) -> U) -> Gated<U> {
        Gated { value: reshape(self.value), purpose: self.purpose }
    }

    /// A second released value derived from this one (what a disclosure
    /// records beside what it sends). Crate-only, like [`Gated::map`].
    pub(crate) fn derive<U>(&self, derive: impl FnOnce(&T) -> U) -> Gated<U> {
        Gated { value: derive(&self.value), purpose: self.purpose }
    }

    /// A value as if released, for the crate's own unit tests of what
    /// records releases (never compiled into the library).
    #[cfg(test)]
    pub(crate) fn released_in_a_test(purpose: Purpose, value: T) -> Gated<T> {
        Gated { value, purpose }
    }

    /// Takes the released value out (a CLI printing it, a test reading it).
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> Gated<Option<T>> {
    /// A released value that may be absent, as an absent release.
    pub fn transpose(self) -> Option<Gated<T>> {
        let purpose = self.purpose;
        self.value.map(|value| Gated { value, purpose })
    }
}

impl<T> Gated<Vec<T>> {
    /// Gathers values released one by one for `purpose` into one: each must
    /// have been released for that same purpose.
    pub fn gather(purpose: Purpose, parts: Vec<Gated<T>>) -> Result<Gated<Vec<T>>, GateError> {
        if let Some(other) = parts.iter().find(|part| part.purpose != purpose) {
            return Err(GateError::PurposeMismatch { expected: purpose, found: other.purpose });
        }
        Ok(Gated { value: parts.into_iter().map(|part| part.value).collect(), purpose })
    }
}

/// A released value serializes as the value itself (an HTTP body, a CLI's
/// JSON output).
impl<T: serde::Serialize> serde::Serialize for Gated<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

/// proviso's own staff, as the gate knows them: who asked for a staff
/// release. Each may receive one kind of essential data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Staff {
    /// Abuse reviewers: `security` only.
    Reviewer,
    /// Analysts: `analytics` only (counts, dashboards).
    Analyst,
    /// Operators holding the admin token: any essential purpose.
    Admin,
}

impl Staff {
    /// Whether this role may receive data for `purpose`.
    pub fn may_receive(self, purpose: Purpose) -> bool {
        match self {
            Staff::Reviewer => purpose == Purpose::Security,
            Staff::Analyst => purpose == Purpose::Analytics,
            Staff::Admin => purpose.is_essential(),
        }
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
    #[error("a count over {people} people is below the minimum of {minimum}")]
    BelowMinimum { people: u64, minimum: u64 },
    #[error("staff role {0:?} may not receive purpose `{1}`")]
    NotForRole(Staff, Purpose),
    #[error("a value released for `{found}` cannot join one released for `{expected}`")]
    PurposeMismatch { expected: Purpose, found: Purpose },
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

/// Releases to a partner a value that names nobody (an empty list, a
/// withdrawn feed record that keeps only its cursor and reason): the
/// partner must be configured for the purpose, nothing more is asked.
pub fn release_to_partner_unnamed<T: Unnamed>(
    partner: &PartnerGrant<'_>,
    purpose: Purpose,
    value: T,
) -> Result<Gated<T>, GateError> {
    let allowed = partner.purposes.contains(&purpose) && value.names_nobody();
    crate::telemetry::GateDecided { purpose, allowed }.emit();
    if allowed {
        Ok(Gated { value, purpose })
    } else {
        Err(GateError::PartnerPurpose(purpose))
    }
}

/// A value that can show it names no subject: checked again by
/// [`release_to_partner_unnamed`] when released.
pub trait Unnamed {
    fn names_nobody(&self) -> bool;
}

impl<T> Unnamed for Vec<T> {
    /// An empty list names nobody.
    fn names_nobody(&self) -> bool {
        self.is_empty()
    }
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

/// Releases an aggregate: the number of people in `counted`, each of whom
/// [`release_count`] already asked for the purpose, when there are at least
/// `minimum` of them (the audience k). Below the minimum nothing is
/// released: the caller answers "suppressed" without a number.
pub fn release_aggregate(counted: &Gated<Vec<u32>>, minimum: u64) -> Result<Gated<u64>, GateError> {
    let people = counted.value.len() as u64;
    let allowed = people >= minimum.max(1);
    crate::telemetry::GateDecided { purpose: counted.purpose, allowed }.emit();
    if allowed {
        Ok(Gated { value: people, purpose: counted.purpose })
    } else {
        Err(GateError::BelowMinimum { people, minimum })
    }
}

/// Releases an aggregate over people counted apart: cluster mode's
/// audience sizes, where each node counted the people of its partitions
/// through [`release_count`] on its own state, and the parts' people are
/// disjoint (`cluster::gather` takes parts whose partitions are). As
/// [`release_aggregate`], on their sum: k is applied once, to the whole.
pub fn release_summed_aggregate(purpose: Purpose, parts: &[u64], minimum: u64) -> Result<Gated<u64>, GateError> {
    // Saturating: counts a peer sent cannot wrap around into a small sum.
    let people = parts.iter().fold(0u64, |sum, part| sum.saturating_add(*part));
    let allowed = people >= minimum.max(1);
    crate::telemetry::GateDecided { purpose, allowed }.emit();
    if allowed {
        Ok(Gated { value: people, purpose })
    } else {
        Err(GateError::BelowMinimum { people, minimum })
    }
}

/// Releases records to proviso's own staff for an essential purpose, naming
/// the role that asked: reviewers receive `security` data, analysts
/// `analytics` (counts and dashboards), the admin any essential purpose.
/// Refusable purposes never pass: nobody on staff reads ads or product data
/// about a person.
pub fn release_for_staff<T>(staff: Staff, purpose: Purpose, value: T) -> Result<Gated<T>, GateError> {
    let allowed = purpose.is_essential() && staff.may_receive(purpose);
    crate::telemetry::GateDecided { purpose, allowed }.emit();
    if !purpose.is_essential() {
        return Err(GateError::AggregateNotEssential(purpose));
    }
    if !allowed {
        return Err(GateError::NotForRole(staff, purpose));
    }
    Ok(Gated { value, purpose })
}

/// Releases a person's own record to the subject-facing service (the person
/// seeing what is held about them is the `service` purpose, always allowed),
/// once the gate has checked the record is about a person proviso knows:
/// someone who has used the service, not a number only in address books.
pub fn release_to_subject<T>(
    state: &State,
    subject: &crate::contract::Pseudonym,
    value: impl FnOnce(u32) -> T,
) -> Result<Gated<T>, GateError> {
    let Some(index) = state.subjects.lookup_person(subject) else {
        crate::telemetry::GateDecided { purpose: Purpose::Service, allowed: false }.emit();
        return Err(GateError::UnknownSubject);
    };
    crate::telemetry::GateDecided { purpose: Purpose::Service, allowed: true }.emit();
    Ok(Gated { value: value(index), purpose: Purpose::Service })
}

#[cfg(test)]
mod tests;
