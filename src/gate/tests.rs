//! Property tests of the gate's policy.

use super::*;
use crate::consent::{Basis, ConsentChange};
use crate::contract::{Event, EventBody, Pseudonym, Region, DAY_MS};
use proptest::prelude::*;

const REGIONS: &[&str] = &["IN", "BR", "US", "DE", "GB", "FR"];

fn arb_purpose() -> impl Strategy<Value = Purpose> {
    (0u8..5).prop_map(|code| Purpose::from_code(code).expect("in range"))
}

/// A state with one subject from `region`, first seen at day 0, who made
/// `choices` (purpose, granted, day).
fn state_with(region: &str, choices: &[(Purpose, bool, i64)]) -> State {
    let mut state = State::default();
    let subject = Pseudonym::from_stored([7; 16]);
    let region = Region::parse(region).expect("region");
    let mut seq = 0;
    let mut apply = |state: &mut State, ts_ms: i64, body: EventBody| {
        state.apply_event(seq, &Event { ts_ms, subject, region, body });
        seq += 1;
    };
    apply(&mut state, 0, EventBody::Session { device: "d".into() });
    for (purpose, granted, day) in choices {
        if purpose.is_essential() && !granted {
            continue; // the edge rejects these; they never reach state
        }
        apply(&mut state, day * DAY_MS, EventBody::Consent { purpose: *purpose, granted: *granted });
    }
    state
}

/// The choice in force at `at_day`: of those made by then, the one
/// acknowledged (applied) last, whatever their days say.
fn last_choice(choices: &[(Purpose, bool, i64)], purpose: Purpose, at_day: i64) -> Option<bool> {
    choices
        .iter()
        .rev()
        .find(|(p, granted, day)| *p == purpose && *day <= at_day && (*granted || !p.is_essential()))
        .map(|(_, granted, _)| *granted)
}

proptest! {
    /// Essential purposes are allowed for every subject at every instant,
    /// whatever they chose.
    #[test]
    fn essential_purposes_are_always_allowed(
        region in proptest::sample::select(REGIONS),
        choices in proptest::collection::vec((arb_purpose(), any::<bool>(), 0i64..90), 0..12),
        at_day in 0i64..120,
    ) {
        let state = state_with(region, &choices);
        let policy = Policy::default_policy();
        for purpose in [Purpose::Service, Purpose::Security, Purpose::Analytics] {
            prop_assert!(allow(&state, &policy, 0, purpose, at_day * DAY_MS).allowed);
        }
    }

    /// When a subject's latest choice is a refusal, the purpose is denied,
    /// in every jurisdiction and after any notice period.
    #[test]
    fn refusal_always_wins(
        region in proptest::sample::select(REGIONS),
        choices in proptest::collection::vec((arb_purpose(), any::<bool>(), 0i64..90), 0..12),
        at_day in 0i64..120,
    ) {
        let state = state_with(region, &choices);
        let policy = Policy::default_policy();
        for purpose in [Purpose::Product, Purpose::Ads] {
            let decision = allow(&state, &policy, 0, purpose, at_day * DAY_MS);
            match last_choice(&choices, purpose, at_day) {
                Some(false) => prop_assert!(!decision.allowed),
                Some(true) => prop_assert!(decision.allowed),
                None => {}
            }
        }
    }

    /// Pending is never allowed; opt-in is never allowed without a grant;
    /// opt-out without a choice is allowed exactly when the notice has passed.
    #[test]
    fn pending_and_opt_in_without_grant_are_never_allowed(
        region in proptest::sample::select(REGIONS),
        choices in proptest::collection::vec((arb_purpose(), any::<bool>(), 0i64..90), 0..12),
        at_day in 0i64..120,
    ) {
        let state = state_with(region, &choices);
        let policy = Policy::default_policy();
        for purpose in [Purpose::Product, Purpose::Ads] {
            let at_ms = at_day * DAY_MS;
            let decision = allow(&state, &policy, 0, purpose, at_ms);
            if decision.status.state == ConsentState::Pending {
                prop_assert!(!decision.allowed);
            }
            let (basis, notice_days) = policy.basis_for(purpose, region);
            let granted_ever = state.consent.history(0).iter().any(|c: &ConsentChange| c.purpose == purpose && c.granted && c.ts_ms <= at_ms);
            if basis == Basis::OptIn && !granted_ever {
                prop_assert!(!decision.allowed);
            }
            if last_choice(&choices, purpose, at_day).is_none() && basis == Basis::OptOut {
                prop_assert_eq!(decision.allowed, at_day >= i64::from(notice_days));
            }
        }
    }
}

/// An aggregate is a count of people the gate asked one by one, and only
/// from the minimum up; fewer people release nothing.
#[test]
fn aggregates_are_counts_of_allowed_people_from_the_minimum_up() {
    let state = state_with("IN", &[(Purpose::Ads, true, 1)]);
    let policy = Policy::default_policy();
    let counted = release_count(&state, &policy, [0u32], Purpose::Ads, 2 * DAY_MS);
    assert_eq!(counted.get(), &vec![0]);
    assert_eq!(release_aggregate(&counted, 1).map(|gated| *gated.get()), Ok(1));
    assert_eq!(release_aggregate(&counted, 2).err(), Some(GateError::BelowMinimum { people: 1, minimum: 2 }));
    let refused = release_count(&state, &policy, [0u32], Purpose::Product, 2 * DAY_MS);
    assert!(refused.get().is_empty(), "no grant for product in IN: nobody to count");
    assert!(release_aggregate(&refused, 0).is_err(), "a count of nobody is never released");
}

/// Counts made apart (cluster nodes, each over its own people) are held
/// to the minimum as one sum: parts each below it can release together,
/// and parts that add up below it release nothing.
#[test]
fn a_summed_aggregate_applies_the_minimum_to_the_whole() {
    assert_eq!(release_summed_aggregate(Purpose::Ads, &[6, 5], 10).map(|gated| *gated.get()), Ok(11));
    assert_eq!(
        release_summed_aggregate(Purpose::Ads, &[6, 3], 10).err(),
        Some(GateError::BelowMinimum { people: 9, minimum: 10 })
    );
    assert!(release_summed_aggregate(Purpose::Ads, &[], 0).is_err(), "a count of nobody is never released");
}

/// A person's own record is released only about someone proviso knows.
#[test]
fn subject_releases_need_a_known_person() {
    let state = state_with("IN", &[]);
    let known = Pseudonym::from_stored([7; 16]);
    let stranger = Pseudonym::from_stored([8; 16]);
    assert_eq!(release_to_subject(&state, &known, |index| index).map(|gated| *gated.get()), Ok(0));
    assert_eq!(release_to_subject(&state, &stranger, |index| index).err(), Some(GateError::UnknownSubject));
}

/// Staff releases name the role that asked and carry essential purposes only.
#[test]
fn staff_releases_check_the_role_and_the_purpose() {
    assert!(release_for_staff(Staff::Analyst, Purpose::Analytics, 1).is_ok());
    assert_eq!(
        release_for_staff(Staff::Analyst, Purpose::Ads, 1).err(),
        Some(GateError::AggregateNotEssential(Purpose::Ads))
    );
    assert_eq!(
        release_for_staff(Staff::Reviewer, Purpose::Analytics, 1).err(),
        Some(GateError::NotForRole(Staff::Reviewer, Purpose::Analytics))
    );
    assert!(release_for_staff(Staff::Admin, Purpose::Security, 1).is_ok());
}

/// A subject banned for abuse is never allowed a refusable purpose, even
/// with a grant; essential purposes (security) still flow; clearing the ban
/// restores the consent decision.
#[test]
fn banned_subjects_get_no_product_or_ads_output() {
    use crate::contract::{Control, ControlBody, DecisionAction, Record};
    let mut state = state_with("IN", &[(Purpose::Ads, true, 1), (Purpose::Product, true, 1)]);
    let policy = Policy::default_policy();
    let at = 2 * DAY_MS;
    assert!(allow(&state, &policy, 0, Purpose::Ads, at).allowed);
    let subject = Pseudonym::from_stored([7; 16]);
    let decide = |action| {
        Record::Control(Control { ts_ms: at, body: ControlBody::Decision { subject, action, note: String::new() } })
    };
    state.apply(100, &decide(DecisionAction::Ban));
    for purpose in [Purpose::Ads, Purpose::Product] {
        assert!(!allow(&state, &policy, 0, purpose, at).allowed, "{purpose}");
        assert!(release(&state, &policy, 0, purpose, at, ()).is_err());
    }
    assert!(allow(&state, &policy, 0, Purpose::Security, at).allowed);
    state.apply(101, &decide(DecisionAction::Clear));
    assert!(allow(&state, &policy, 0, Purpose::Ads, at).allowed);
}
