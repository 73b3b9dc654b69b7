//! Ad audiences (purpose `ads`): sizes for advertisers, never identifiers;
//! member ids for a partner, only for audiences of at least k people.
//!
//! Owns: k-anonymity (suppression below k), Laplace noise and the durable
//! per-advertiser daily privacy budget, and the audience bodies (built only
//! here, handed out only as `Gated<T>`).
//! Never: releases a size below k, an identifier to an advertiser, a member
//! who does not allow ads now or is banned, a noisy size beyond the asking
//! advertiser's daily budget for the business, or an exact size when noise
//! is configured.

use serde::Serialize;

use super::metrics::{GatheredAudience, UsageQuestion};
use super::{pseudonyms_of, AudiencePolicy, DiscloseError, Disclosure, Sealed};
use crate::contract::{day_of, Control, ControlBody, Purpose};
use crate::gate::{release_aggregate, release_count, release_summed_aggregate, release_to_partner_unnamed, Gated};
use crate::pipeline::Prepared;
use crate::processors::audiences::laplace;
use crate::state::State;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AudienceSize {
    pub business: String,
    pub days: u32,
    /// Rounded to a multiple of 10; null when suppressed.
    pub size: Option<u64>,
    /// True when fewer than k people (who allow ads) are in the audience.
    pub suppressed: bool,
    /// The k in force.
    pub k: u64,
    /// Epsilon charged for this answer (0 without noise).
    pub epsilon: f64,
    /// The caller's budget left today for this business after this answer.
    pub budget_left: f64,
    #[serde(skip)]
    #[schema(ignore)]
    _sealed: Sealed,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PartnerAudience {
    pub business: String,
    pub days: u32,
    /// True when the consenting audience is smaller than k: no ids then.
    pub suppressed: bool,
    /// This partner's account ids of the members linked to it, sorted.
    pub members: Vec<String>,
    #[serde(skip)]
    #[schema(ignore)]
    _sealed: Sealed,
}

/// Cluster mode: the people a gathered audience's parts linked to the
/// partner, as this node's indexes, in its order (an embedded node's), of
/// whom only those it knows as acting people (a node ahead of this one
/// may name a person this one has not applied yet: the answer is as of
/// this node's position).
fn linked_here(state: &State, linked: &[crate::contract::Pseudonym]) -> Vec<u32> {
    let mut here: Vec<u32> = linked
        .iter()
        .filter_map(|person| state.subjects.lookup(person))
        .filter(|&subject| state.subjects.get(subject).is_some_and(|record| record.has_acted()))
        .collect();
    here.sort_unstable();
    here.dedup();
    here
}

/// Whether one more noised size would take the budget past the day's
/// (`spent` so far today, in epsilon).
fn overspends(config: &AudiencePolicy, spent: f64) -> bool {
    spent + config.epsilon > config.daily_epsilon + 1e-9
}

/// Rounds to the nearest multiple of 10 (halves up).
fn round_to_ten(value: f64) -> u64 {
    ((value.max(0.0) / 10.0 + 0.5).floor() * 10.0) as u64
}

/// Checks a span in days: 1..=365 (default 30).
pub fn parse_days(days: Option<u32>) -> Result<u32, DiscloseError> {
    let days = days.unwrap_or(30);
    if (1..=365).contains(&days) {
        Ok(days)
    } else {
        Err(DiscloseError::InvalidQuery("`days` must be 1..=365".to_string()))
    }
}

impl Disclosure {
    /// Whether an answer is noised: always when noise is configured
    /// (`audience_epsilon` set; asking `noise=false` then is an error), else
    /// only when asked with `noise=true`.
    pub fn noised(&self, asked: Option<bool>) -> Result<bool, DiscloseError> {
        match (self.audience.noise_required, asked) {
            (true, Some(false)) => Err(DiscloseError::InvalidQuery(
                "this server adds noise to every audience size (audience_epsilon is configured): leave out `noise` or set it to true"
                    .to_string(),
            )),
            (true, _) => Ok(true),
            (false, asked) => Ok(asked == Some(true)),
        }
    }

    /// The size of a business's audience for `advertiser`: people with a
    /// business message with it in the span who allow ads now and are not
    /// banned. Suppressed below k, rounded to 10. A noised answer adds
    /// Laplace noise of scale 1/epsilon and charges epsilon, suppressed or
    /// not, to this advertiser's budget for this business today, durably
    /// before answering (a restart never refills it). Blocking: it commits
    /// the charge.
    ///
    /// `counted`: in cluster mode, each covering node's count of its
    /// people in the audience who allow ads at `at_ms`
    /// ([`Disclosure::audience_question`]), summed here before k and
    /// noise; else this node's state holds everyone.
    pub fn audience_size(
        &self,
        advertiser: &str,
        business: &str,
        days: u32,
        noise: bool,
        counted: Option<(i64, Vec<u64>)>,
    ) -> Result<Gated<AudienceSize>, DiscloseError> {
        let config = self.audience;
        // Held from reading the budget until the charge is committed.
        let _charging = noise.then(|| self.charging.lock().unwrap_or_else(|p| p.into_inner()));
        let at_ms = counted.as_ref().map_or_else(|| self.pipeline.clock().now_ms(), |(at_ms, _)| *at_ms);
        let today = day_of(at_ms);
        let (count, released, spent) = {
            let state = self.pipeline.state();
            let policy = self.pipeline.policy();
            let spent = state.audiences.spent(advertiser, business, today);
            // At least k people who allow ads, or no number at all.
            match counted {
                None => {
                    let members = state.audiences.members(business, today, days);
                    let counted = release_count(&state, policy, members.iter(), Purpose::Ads, at_ms);
                    (release_aggregate(&counted, config.k).ok(), counted.map(|_| ()), spent)
                }
                Some((_, parts)) => {
                    // The suppressed answer names nobody and holds no count.
                    let nobody = release_count(&state, policy, std::iter::empty(), Purpose::Ads, at_ms);
                    (release_summed_aggregate(Purpose::Ads, &parts, config.k).ok(), nobody.map(|_| ()), spent)
                }
            }
        };
        let mut answer = AudienceSize {
            business: business.to_string(),
            days,
            size: None,
            suppressed: count.is_none(),
            k: config.k,
            epsilon: 0.0,
            budget_left: (config.daily_epsilon - spent).max(0.0),
            _sealed: Sealed(()),
        };
        if noise {
            if overspends(&config, spent) {
                return Err(DiscloseError::BudgetSpent);
            }
            let control = Control {
                ts_ms: at_ms,
                body: ControlBody::BudgetSpent {
                    advertiser: Some(advertiser.to_string()),
                    business: business.to_string(),
                    day: today,
                    epsilon_micros: (config.epsilon * 1e6).round() as u64,
                },
            };
            self.pipeline.commit_blocking(Prepared::from_control(control))?;
            answer.epsilon = config.epsilon;
            answer.budget_left = (config.daily_epsilon - spent - config.epsilon).max(0.0);
        }
        let Some(count) = count else {
            return Ok(released.map(|()| answer));
        };
        Ok(count.map(|count| {
            if !noise {
                answer.size = Some(round_to_ten(count as f64));
                return answer;
            }
            let noisy = count as f64 + laplace(1.0 / config.epsilon, fastrand::f64());
            if noisy < config.k as f64 {
                answer.suppressed = true;
            } else {
                answer.size = Some(round_to_ten(noisy));
            }
            answer
        }))
    }

    /// This partner's account ids of a business's audience (purpose `ads`):
    /// only when at least k people in it allow ads now; only members linked
    /// to this partner, allowed ads and not banned. Recorded in the audit
    /// log and the ads feed before it is returned.
    /// `gathered`: in cluster mode, each covering node's count of its
    /// people in the audience who allow ads, and those of them linked to
    /// `partner` ([`Disclosure::audience_question`]): k applies to the sum,
    /// and each linked person is asked of the gate again here.
    pub fn partner_audience(
        &self,
        partner: &str,
        business: &str,
        days: u32,
        gathered: Option<GatheredAudience>,
    ) -> Result<Gated<PartnerAudience>, DiscloseError> {
        self.deciding(|| self.partner_audience_once(partner, business, days, gathered.as_ref()))
    }

    /// Whether `advertiser` can still afford a noised size of `business`
    /// today ([`DiscloseError::BudgetSpent`] if not): cluster mode asks
    /// before gathering from every node. [`Disclosure::audience_size`]
    /// checks again, under the lock its charge is made under.
    pub fn check_budget(&self, advertiser: &str, business: &str) -> Result<(), DiscloseError> {
        let today = day_of(self.pipeline.clock().now_ms());
        let spent = self.pipeline.state().audiences.spent(advertiser, business, today);
        if overspends(&self.audience, spent) {
            return Err(DiscloseError::BudgetSpent);
        }
        Ok(())
    }

    /// Cluster mode: the question whose gathered parts are a business's
    /// audience over the `days` days ending now (and, for `partner`, its
    /// linked members); and that now.
    pub fn audience_question(&self, business: &str, days: u32, partner: Option<&str>) -> (i64, UsageQuestion) {
        let at_ms = self.pipeline.clock().now_ms();
        let partner = partner.map(str::to_string);
        (at_ms, UsageQuestion::Audience { business: business.to_string(), days, at_ms, partner })
    }

    fn partner_audience_once(
        &self,
        partner: &str,
        business: &str,
        days: u32,
        gathered: Option<&GatheredAudience>,
    ) -> Result<Gated<PartnerAudience>, DiscloseError> {
        let mut ordered = Some(self.disclosing());
        let state = self.pipeline.state();
        let reading = self.reading(&state, partner)?;
        let at_ms = reading.at_ms;
        let decided_after = state.stream_position;
        // At least k people who allow ads, and the candidates among them.
        let (enough, candidates) = match gathered {
            None => {
                let members = state.audiences.members(business, day_of(reading.at_ms), days);
                let consenting = release_count(&state, reading.policy, members.iter(), Purpose::Ads, reading.at_ms);
                (release_aggregate(&consenting, self.audience.k).is_ok(), consenting.into_inner())
            }
            Some(gathered) => (
                release_summed_aggregate(Purpose::Ads, &gathered.counts, self.audience.k).is_ok(),
                linked_here(&state, &gathered.linked),
            ),
        };
        let body = |suppressed: bool, members: Vec<String>| PartnerAudience {
            business: business.to_string(),
            days,
            suppressed,
            members,
            _sealed: Sealed(()),
        };
        if !enough {
            return Ok(release_to_partner_unnamed(&reading.settings.grant(), Purpose::Ads, Vec::new())?
                .map(|none| body(true, none)));
        }
        let index = state.links.partner_index(partner);
        let mut released = Vec::new();
        for subject in candidates {
            let Some(account) = index.and_then(|index| state.links.account_of(index, subject)) else { continue };
            if let Ok(gated) = reading.release(subject, Purpose::Ads, (subject, account.to_string())) {
                released.push(gated);
            }
        }
        let released = Gated::gather(Purpose::Ads, released)?;
        let people = pseudonyms_of(&state, released.get().iter().map(|(subject, _)| *subject));
        // Decided: the state lock goes before the secrets are minted and
        // the audit and feed records fsync'd.
        drop(state);
        let adds = released
            .get()
            .iter()
            .map(|(subject, account)| (account.clone(), None, Some(business.to_string()), vec![*subject]))
            .collect();
        let secrets = self.audit_disclosure(
            &mut ordered,
            partner,
            at_ms,
            decided_after,
            Purpose::Ads,
            "audience_members",
            people,
            "audience_member",
            adds,
        )?;
        let items = released.derive(|members| {
            members
                .iter()
                .map(|(subject, account)| {
                    let id = secrets.get(subject).map(|secret| secret.record_handle()).unwrap_or_default();
                    (account.clone(), None, Some(business.to_string()), vec![id])
                })
                .collect()
        });
        if !self.pipeline.is_cluster() {
            self.feeds.disclose(partner, "audience_member", items, at_ms)?;
        }
        Ok(released.map(|members| {
            let mut accounts: Vec<String> = members.into_iter().map(|(_, account)| account).collect();
            accounts.sort();
            body(false, accounts)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::Policy;
    use crate::contract::{Direction, Event, EventBody, LinkOrigin, LinkState, Pseudonym, Record, Region, DAY_MS};
    use crate::disclose::metrics::{audience_gathered, part_of};

    fn person(n: u8) -> Pseudonym {
        Pseudonym::from_stored(*blake3::hash(&[n, 7]).as_bytes().first_chunk::<16>().expect("16 bytes"))
    }

    /// A state of 12 people who joined 40 days before `now` (past the ads
    /// notice period), each linked at `net`, the odd ones writing to `shop`
    /// a day before `now`. With `erased`, person 0 comes first and is
    /// erased at the end (the erasure not compacted yet); without, person 0
    /// never was (the log a compaction of that erasure leaves).
    fn state(now: i64, erased: bool) -> State {
        let mut state = State::default();
        let first = if erased { 0 } else { 1 };
        let mut records = Vec::new();
        let event = |k: u8, ts_ms: i64, body: EventBody| {
            Record::Event(Event { ts_ms, subject: person(k), region: Region(*b"IN"), body })
        };
        for k in first..12u8 {
            records.push(event(k, now - 40 * DAY_MS, EventBody::Session { device: format!("d{k}") }));
            let link = EventBody::PartnerAccount {
                partner: "net".into(),
                partner_id: format!("a{k}"),
                state: LinkState::Linked,
                origin: LinkOrigin::Service,
            };
            records.push(event(k, now - 40 * DAY_MS, link));
            if k % 2 == 1 {
                let message = EventBody::BusinessMessage { business: "shop".into(), direction: Direction::Out };
                records.push(event(k, now - DAY_MS, message));
            }
        }
        if erased {
            records.push(event(0, now - DAY_MS, EventBody::DeleteAccount));
        }
        for (seq, record) in records.iter().enumerate() {
            state.apply(seq as u64, record);
        }
        state
    }

    /// Two nodes number people differently once one has compacted an
    /// erasure away (everyone interned after the erased person moves down):
    /// a gathered audience names its linked members by pseudonym, so the
    /// asker finds exactly the members in its own numbering. (Sent as one
    /// node's indexes, as a first version did, they named other people.)
    #[test]
    fn linked_members_are_named_by_pseudonym_not_by_a_node_s_indexes() {
        let now = 100 * DAY_MS;
        let (compacted, holding) = (state(now, false), state(now, true));
        assert_ne!(compacted.subjects.lookup(&person(5)), holding.subjects.lookup(&person(5)), "numbered apart");
        let question =
            UsageQuestion::Audience { business: "shop".into(), days: 7, at_ms: now, partner: Some("net".into()) };
        let part = part_of(&compacted, &Policy::default_policy(), &question).expect("a part");
        let gathered = audience_gathered(&[part]).expect("reads");
        assert_eq!(gathered.counts, vec![6], "six members allow ads");
        let members: Vec<u32> = (1..12u8).step_by(2).filter_map(|k| holding.subjects.lookup(&person(k))).collect();
        assert_eq!(linked_here(&holding, &gathered.linked), members);
        let asked_for_sizes = UsageQuestion::Audience { business: "shop".into(), days: 7, at_ms: now, partner: None };
        let part = part_of(&compacted, &Policy::default_policy(), &asked_for_sizes).expect("a part");
        assert!(audience_gathered(&[part]).expect("reads").linked.is_empty(), "a size names nobody");
    }

    /// A part naming more linked people than it counted is not one a node
    /// made: the gathered audience is refused (503), not released.
    #[test]
    fn a_part_naming_more_than_it_counted_is_refused() {
        let named: Vec<String> = (0..3u8).map(|k| person(k).subject_id()).collect();
        let forged = serde_json::json!({ "consenting": 2, "linked": named });
        assert!(audience_gathered(&[forged]).is_err());
        let honest = serde_json::json!({ "consenting": 3, "linked": named });
        assert_eq!(audience_gathered(&[honest]).expect("reads").linked.len(), 3);
    }
}
