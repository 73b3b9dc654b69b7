//! What one partner network may read: its security feed, its product and
//! ads feeds, and friend suggestions for its accounts.
//!
//! Owns: the partner-facing bodies (built only here, handed out only as
//! `Gated<T>`), and for each disclosure the order gate → audit → feed: the
//! gate under the state lock, the audit and feed fsyncs after it, all under
//! the disclosure ordering lock (`Disclosure::disclosing`).
//! Never: names a subject not linked to the reading partner, another
//! partner's ids, or anything the gate refuses at the moment of reading
//! (stored feed records are checked again when read).

use serde::Serialize;

use super::{pseudonyms_of, rfc3339, DiscloseError, Disclosure, Sealed};
use crate::contract::Purpose;
use crate::gate::{release_to_partner_unnamed, Gated, Unnamed};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SecurityRecordView {
    /// Position in this partner's feed.
    pub cursor: u64,
    /// The account id at this partner (the partner's own id).
    pub partner_id: String,
    /// This partner's handle for the subject (`h_` + 32 hex): stable across
    /// this partner's feeds, different for every partner.
    pub handle: String,
    /// ban, review or clear.
    pub action: String,
    /// spam, scam, phishing, fake_account or abuse.
    pub reason: String,
    /// Event time of the action (RFC 3339).
    pub at: String,
}

/// A page of a partner's security feed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SecurityFeedPage {
    pub records: Vec<SecurityRecordView>,
    /// Pass as `after` for the next page; equals the request's `after` when
    /// nothing new is available yet.
    pub next: Option<u64>,
    /// Private: only this module makes a page, and only from a release.
    #[serde(skip)]
    #[schema(ignore)]
    _sealed: Sealed,
}

/// One record of a product or ads feed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PurposeRecordView {
    pub cursor: u64,
    /// add or retract.
    pub op: String,
    /// suggestion or audience_member.
    pub about: String,
    /// The account the record is about (suggestions: who it is for); absent
    /// from a withdrawn add and from every retract.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner_id: Option<String>,
    /// Suggestions: the suggested account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggested: Option<String>,
    /// Audience memberships: the business.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business: Option<String>,
    /// Retractions: the cursor of the add withdrawn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retracts: Option<u64>,
    /// Retractions: refused, banned, unlinked, deleted or no_longer_allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// An add that was withdrawn since, or that the gate refuses now: it
    /// names nobody.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub withdrawn: bool,
    pub at: String,
}

/// A page of a product or ads feed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PurposeFeedPage {
    pub records: Vec<PurposeRecordView>,
    /// Pass as `after` for the next page.
    pub next: Option<u64>,
    #[serde(skip)]
    #[schema(ignore)]
    _sealed: Sealed,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SuggestionView {
    /// The suggested account's id at this partner.
    pub partner_id: String,
    /// Adamic-Adar weight of the mutual contacts (ranking's third key).
    pub score: f64,
    /// Why, in plain words: "in your contacts", "has you in their
    /// contacts", "12 mutual contacts".
    pub reasons: Vec<String>,
}

/// Friend suggestions for one account, best first (a JSON array).
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct Suggestions {
    pub items: Vec<SuggestionView>,
    #[serde(skip)]
    _sealed: Sealed,
}

/// A partner feed page of either kind.
pub enum FeedPage {
    Security(Gated<SecurityFeedPage>),
    Purpose(Gated<PurposeFeedPage>),
}

impl Disclosure {
    /// The partner's feed for one purpose after cursor `after`, at most
    /// `limit` records. `security`: abuse actions about subjects linked to
    /// this partner now. `product` / `ads`: every suggestion / audience
    /// membership disclosed to this partner and its withdrawal.
    pub fn feed(
        &self,
        partner: &str,
        purpose: Purpose,
        after: Option<u64>,
        limit: usize,
    ) -> Result<FeedPage, DiscloseError> {
        self.check_partner(partner, purpose, "that purpose")?;
        match purpose {
            Purpose::Security => self.deciding(|| self.security_feed(partner, after, limit)).map(FeedPage::Security),
            Purpose::Product | Purpose::Ads => {
                self.deciding(|| self.purpose_feed(partner, purpose, after, limit)).map(FeedPage::Purpose)
            }
            _ => Err(DiscloseError::NoSuchFeed),
        }
    }

    /// The purpose of a feed named `purpose`, once `partner` exists and is
    /// configured to receive it.
    pub fn feed_purpose(&self, partner: &str, purpose: &str) -> Result<Purpose, DiscloseError> {
        self.partner(partner)?;
        let purpose = Purpose::parse(purpose)
            .ok_or_else(|| DiscloseError::UnknownPurpose(Purpose::expected().trim_end().to_string()))?;
        self.check_partner(partner, purpose, "that purpose")?;
        Ok(purpose)
    }

    /// Checks that `partner` exists and is configured for `purpose`, before
    /// a caller reads its request any further.
    pub fn check_partner(&self, partner: &str, purpose: Purpose, what: &'static str) -> Result<(), DiscloseError> {
        if self.partner(partner)?.purposes.contains(&purpose) {
            Ok(())
        } else {
            Err(DiscloseError::NotConfigured(what))
        }
    }

    fn security_feed(
        &self,
        partner: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Gated<SecurityFeedPage>, DiscloseError> {
        let start = after.map_or(0, |after| after.saturating_add(1));
        let mut ordered = Some(self.disclosing());
        let settings = self.partner(partner)?;
        let state = self.pipeline.state();
        let reading = self.reading(&state, partner)?;
        let at_ms = reading.at_ms;
        let decided_after = state.stream_position;
        let mut released = Vec::new();
        let mut disclosed: Vec<u32> = Vec::new();
        let mut next = after;
        if let Some(index) = state.links.partner_index(partner) {
            let feed = state.abuse.security_feed(index);
            for (cursor, record) in feed.iter().enumerate().skip(usize::try_from(start).unwrap_or(usize::MAX)) {
                if released.len() == limit {
                    break;
                }
                next = Some(cursor as u64);
                let view = SecurityRecordView {
                    cursor: cursor as u64,
                    partner_id: record.partner_account.clone(),
                    // Filled below from the person's secret, once the page is known.
                    handle: String::new(),
                    action: match record.status {
                        crate::processors::abuse::Status::Banned => "ban".to_string(),
                        other => other.as_str().to_string(),
                    },
                    reason: record.reason.clone(),
                    at: rfc3339(record.ts_ms),
                };
                // Linked now, to this partner, under the same account, and
                // allowed: else the record is withheld.
                let still_same_account =
                    state.links.account_of(index, record.subject) == Some(view.partner_id.as_str());
                if !still_same_account {
                    continue;
                }
                if let Ok(gated) = reading.release(record.subject, Purpose::Security, view) {
                    released.push(gated);
                    disclosed.push(record.subject);
                }
            }
        }
        // What to disclose is decided: the state lock is let go before the
        // secrets are minted and the audit record is fsync'd.
        let people = pseudonyms_of(&state, disclosed.iter().copied());
        drop(state);
        let secrets = self.audit_disclosure(
            &mut ordered,
            partner,
            at_ms,
            decided_after,
            Purpose::Security,
            "security_feed",
            people,
            "",
            vec![],
        )?;
        let records = Gated::gather(Purpose::Security, released)?;
        Ok(records.map(|mut records| {
            for (view, subject) in records.iter_mut().zip(&disclosed) {
                view.handle =
                    secrets.get(subject).map(|secret| secret.partner_handle(&settings.handle_key)).unwrap_or_default();
            }
            SecurityFeedPage { records, next, _sealed: Sealed(()) }
        }))
    }

    fn purpose_feed(
        &self,
        partner: &str,
        purpose: Purpose,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Gated<PurposeFeedPage>, DiscloseError> {
        let mut ordered = Some(self.disclosing());
        let stored = self.feeds.read(partner, purpose, after, limit)?;
        let next = stored.last().map(|record| record.cursor).or(after);
        let state = self.pipeline.state();
        let reading = self.reading(&state, partner)?;
        let at_ms = reading.at_ms;
        let decided_after = state.stream_position;
        // Each live add is released again now, about every person it names:
        // one the gate refuses at this moment (a withdrawal whose retraction
        // is still being written) reads as withdrawn, naming nobody.
        let mut released = Vec::with_capacity(stored.len());
        let mut named: Vec<String> = Vec::new();
        for record in stored {
            let handles = record.subjects.clone();
            let view = PurposeRecordView::of(record.clone());
            let gated = match reading.release_again(self.pipeline.vault(), purpose, &handles, view) {
                Some(gated) => {
                    named.extend(handles);
                    gated
                }
                None => {
                    let withdrawn = PurposeRecordView::of(record.redacted());
                    release_to_partner_unnamed(&reading.settings.grant(), purpose, withdrawn)?
                }
            };
            released.push(gated);
        }
        // Cluster mode: the people behind the handles, for the cluster's log.
        let people: Vec<(u32, crate::contract::Pseudonym)> = if self.pipeline.is_cluster() {
            named
                .iter()
                .filter_map(|handle| {
                    let pseudonym = self.pipeline.vault().owner_of_record_handle(handle)?;
                    Some((state.subjects.lookup(&pseudonym)?, pseudonym))
                })
                .collect()
        } else {
            Vec::new()
        };
        drop(state);
        let kind = if purpose == Purpose::Product { "product_feed" } else { "ads_feed" };
        if self.pipeline.is_cluster() {
            self.audit_disclosure(&mut ordered, partner, at_ms, decided_after, purpose, kind, people, "", Vec::new())?;
        } else if !named.is_empty() {
            self.audit.append(at_ms, &format!("partner:{partner}"), purpose.as_str(), kind, named)?;
        }
        Ok(Gated::gather(purpose, released)?.map(|records| PurposeFeedPage { records, next, _sealed: Sealed(()) }))
    }

    /// Friend suggestions for one of this partner's accounts (purpose
    /// `product`): its linked person's contacts who are on this partner, not
    /// yet friends there, not blocked either way, not banned, and both
    /// people allowing product sharing now.
    pub fn suggestions(
        &self,
        partner: &str,
        partner_id: &str,
        limit: usize,
    ) -> Result<Gated<Suggestions>, DiscloseError> {
        self.deciding(|| self.suggestions_once(partner, partner_id, limit))
    }

    fn suggestions_once(
        &self,
        partner: &str,
        partner_id: &str,
        limit: usize,
    ) -> Result<Gated<Suggestions>, DiscloseError> {
        let mut ordered = Some(self.disclosing());
        let (found, owner, people, at_ms, decided_after) = {
            let state = self.pipeline.state();
            let reading = self.reading(&state, partner)?;
            let index = state.links.partner_index(partner).ok_or(DiscloseError::AccountNotLinked)?;
            let owner = state.links.subject_of(index, partner_id).ok_or(DiscloseError::AccountNotLinked)?;
            // The asker's own consent counts too: no suggestions for someone
            // who refused product sharing (an empty list, not an error, so
            // the answer does not reveal the refusal).
            if !reading.allows(owner, Purpose::Product) {
                return Ok(release_to_partner_unnamed(&reading.settings.grant(), Purpose::Product, Vec::new())?
                    .map(|items| Suggestions { items, _sealed: Sealed(()) }));
            }
            let mut eligible = |candidate: u32| reading.allows(candidate, Purpose::Product);
            let found = crate::processors::graph::suggest::suggest(
                &state.graph,
                &state.links,
                index,
                owner,
                partner_id,
                &mut eligible,
                limit,
            );
            // Each suggested person is released as they are named.
            let released =
                found.into_iter().filter_map(|s| reading.release(s.subject, Purpose::Product, s).ok()).collect();
            let found = Gated::gather(Purpose::Product, released)?;
            let involved = found.get().iter().map(|s| s.subject).chain((!found.get().is_empty()).then_some(owner));
            let people = pseudonyms_of(&state, involved);
            // Decided: the state lock goes here, before any fsync.
            (found, owner, people, reading.at_ms, state.stream_position)
        };
        let adds = found
            .get()
            .iter()
            .map(|s| (partner_id.to_string(), Some(s.account.clone()), None, vec![owner, s.subject]))
            .collect();
        let secrets = self.audit_disclosure(
            &mut ordered,
            partner,
            at_ms,
            decided_after,
            Purpose::Product,
            "suggestions",
            people,
            "suggestion",
            adds,
        )?;
        let id_of = |subject: u32| secrets.get(&subject).map(|secret| secret.record_handle()).unwrap_or_default();
        let items = found.derive(|found| {
            found
                .iter()
                .map(|s| (partner_id.to_string(), Some(s.account.clone()), None, vec![id_of(owner), id_of(s.subject)]))
                .collect()
        });
        if !self.pipeline.is_cluster() {
            self.feeds.disclose(partner, "suggestion", items, at_ms)?;
        }
        Ok(found.map(|found| {
            let items = found
                .into_iter()
                .map(|suggestion| {
                    let mut reasons = vec!["in your contacts".to_string()];
                    if suggestion.reciprocal {
                        reasons.push("has you in their contacts".to_string());
                    }
                    match suggestion.mutual {
                        0 => {}
                        1 => reasons.push("1 mutual contact".to_string()),
                        n => reasons.push(format!("{n} mutual contacts")),
                    }
                    SuggestionView {
                        partner_id: suggestion.account,
                        score: (suggestion.adamic_adar * 10_000.0).round() / 10_000.0,
                        reasons,
                    }
                })
                .collect();
            Suggestions { items, _sealed: Sealed(()) }
        }))
    }
}

impl PurposeRecordView {
    fn of(record: super::feeds::FeedRecord) -> PurposeRecordView {
        PurposeRecordView {
            withdrawn: record.op == "add" && record.is_redacted(),
            cursor: record.cursor,
            op: record.op,
            about: record.about,
            partner_id: (!record.partner_id.is_empty()).then_some(record.partner_id),
            suggested: record.suggested,
            business: record.business,
            retracts: record.retracts,
            reason: record.reason,
            at: rfc3339(record.at_ms),
        }
    }
}

impl Unnamed for PurposeRecordView {
    fn names_nobody(&self) -> bool {
        self.partner_id.is_none() && self.suggested.is_none() && self.business.is_none()
    }
}
