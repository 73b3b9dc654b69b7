//! Consent registry and policy: what each subject chose, and what applies when
//! they chose nothing.
//!
//! Owns: the policy file (per purpose and jurisdiction: `opt_in` or `opt_out`
//! with a notice period), each subject's consent history, and the state of a
//! (subject, purpose) pair at a given time.
//! Never: filters data itself. Outputs ask `gate::allow`, which asks here.

mod policy;

pub use policy::{Basis, Policy, PolicyError, PurposePolicy};

use std::collections::HashMap;

use crate::contract::{Purpose, DAY_MS};

/// One explicit choice by a subject (from a consent event or the API, both of
/// which go through the log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsentChange {
    pub purpose: Purpose,
    pub granted: bool,
    pub ts_ms: i64,
}

/// What applies to a (subject, purpose) pair at one time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsentState {
    Granted,
    Denied,
    /// Opt-out notice period still running: treated as not granted.
    Pending,
}

impl ConsentState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentState::Granted => "granted",
            ConsentState::Denied => "denied",
            ConsentState::Pending => "pending",
        }
    }
}

/// Why a state holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateBasis {
    /// Essential purpose: always allowed.
    Essential,
    /// The subject granted it.
    Granted,
    /// The subject refused it.
    Refused,
    /// Opt-in jurisdiction and no grant.
    OptInRequired,
    /// Opt-out jurisdiction; the notice period is running or has passed.
    OptOutNotice,
}

impl StateBasis {
    pub fn as_str(self) -> &'static str {
        match self {
            StateBasis::Essential => "essential",
            StateBasis::Granted => "consent_granted",
            StateBasis::Refused => "consent_refused",
            StateBasis::OptInRequired => "opt_in_required",
            StateBasis::OptOutNotice => "opt_out_notice",
        }
    }
}

/// The full answer for one pair: state, basis and the period it holds for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PurposeStatus {
    pub state: ConsentState,
    pub basis: StateBasis,
    /// Start of this state, when known (epoch ms).
    pub since_ms: Option<i64>,
    /// When this state ends on its own (end of the notice period).
    pub until_ms: Option<i64>,
}

/// Explicit choices of every subject that made one, by dense subject index.
#[derive(Default)]
pub struct ConsentRegistry {
    /// foldhash: subject indexes are dense and trusted; the gate reads this per subject.
    histories: HashMap<u32, Vec<ConsentChange>, foldhash::fast::RandomState>,
}

impl ConsentRegistry {
    /// Forgets an erased subject's choices.
    pub fn remove(&mut self, subject: u32) {
        self.histories.remove(&subject);
    }

    /// Approximate heap bytes of the histories.
    pub fn heap_bytes(&self) -> usize {
        self.histories.capacity() * (std::mem::size_of::<(u32, Vec<ConsentChange>)>() + 1)
            + self.histories.values().map(|h| h.capacity() * std::mem::size_of::<ConsentChange>()).sum::<usize>()
    }

    /// Records a choice. Histories keep log (acknowledgement) order: a
    /// choice acknowledged later overrides every earlier one, whatever the
    /// event times say.
    pub fn record(&mut self, subject: u32, change: ConsentChange) {
        self.histories.entry(subject).or_default().push(change);
    }

    pub fn history(&self, subject: u32) -> &[ConsentChange] {
        self.histories.get(&subject).map_or(&[], Vec::as_slice)
    }

    pub fn subjects_with_choices(&self) -> usize {
        self.histories.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, &[ConsentChange])> {
        self.histories.iter().map(|(s, h)| (*s, h.as_slice()))
    }
}

/// The state of `purpose` for a subject at `at_ms`, from their history, the
/// policy for their region, and when proviso first saw them.
///
/// Rules, in order: essential purposes are granted; of the explicit choices
/// in effect at `at_ms` (event time at or before it), the one acknowledged
/// last decides; otherwise opt-in is denied, and opt-out is pending for the
/// notice period after first sight and granted afterwards.
///
/// `history` is in log order. The edge never logs an event time later than
/// arrival, so a choice is in effect from its acknowledgement at the latest,
/// and a later acknowledgement always wins: a refusal sent with a back-dated
/// time cannot lose to an earlier grant, nor a future-dated one wait.
pub fn status_at(
    history: &[ConsentChange],
    purpose: Purpose,
    region: &str,
    first_seen_ms: i64,
    policy: &Policy,
    at_ms: i64,
) -> PurposeStatus {
    if purpose.is_essential() {
        return PurposeStatus {
            state: ConsentState::Granted,
            basis: StateBasis::Essential,
            since_ms: None,
            until_ms: None,
        };
    }
    let latest = history.iter().rev().find(|c| c.purpose == purpose && c.ts_ms <= at_ms);
    if let Some(choice) = latest {
        return if choice.granted {
            PurposeStatus {
                state: ConsentState::Granted,
                basis: StateBasis::Granted,
                since_ms: Some(choice.ts_ms),
                until_ms: None,
            }
        } else {
            PurposeStatus {
                state: ConsentState::Denied,
                basis: StateBasis::Refused,
                since_ms: Some(choice.ts_ms),
                until_ms: None,
            }
        };
    }
    let (basis, notice_days) = policy.basis_for(purpose, region);
    match basis {
        Basis::OptIn => PurposeStatus {
            state: ConsentState::Denied,
            basis: StateBasis::OptInRequired,
            since_ms: Some(first_seen_ms),
            until_ms: None,
        },
        Basis::OptOut => {
            let notice_ends = first_seen_ms.saturating_add(i64::from(notice_days) * DAY_MS);
            if at_ms < notice_ends {
                PurposeStatus {
                    state: ConsentState::Pending,
                    basis: StateBasis::OptOutNotice,
                    since_ms: Some(first_seen_ms),
                    until_ms: Some(notice_ends),
                }
            } else {
                PurposeStatus {
                    state: ConsentState::Granted,
                    basis: StateBasis::OptOutNotice,
                    since_ms: Some(notice_ends),
                    until_ms: None,
                }
            }
        }
    }
}
