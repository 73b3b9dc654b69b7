//! Partner links: which partner account belongs to which subject.
//!
//! Owns: the (partner, partner account id) <-> subject mapping built from
//! `partner_account` events, and the partners' pending claims. A link exists
//! only when the messaging service attests it (the person linked the two
//! accounts in the app); a partner's own `linked` is a claim kept as pending,
//! which shares nothing. Unlinking by either side ends the link.
//! Never: decides what a partner may receive (that is `gate/`), lets one
//! partner's ids answer a lookup for another, or turns a claim into a link.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::contract::{LinkOrigin, LinkState};

/// Dense partner number, interned from the partner's name in log order.
pub type PartnerIndex = u16;

#[derive(Default, Serialize, Deserialize)]
pub struct Links {
    /// Partner names by index.
    partners: Vec<String>,
    /// (partner, subject) -> the partner's account id.
    by_subject: HashMap<(PartnerIndex, u32), String, foldhash::fast::RandomState>,
    /// (partner, account id) -> subject.
    by_account: HashMap<(PartnerIndex, String), u32, foldhash::fast::RandomState>,
    /// Friendships at each partner, between its account ids (smaller id first).
    friends: std::collections::HashSet<(PartnerIndex, String, String), foldhash::fast::RandomState>,
    /// A partner's claims not attested by the service: (partner, subject) ->
    /// the account id it claims. Never consulted by an output.
    claims: HashMap<(PartnerIndex, u32), String, foldhash::fast::RandomState>,
}

impl Links {
    /// The partner's index, interning the name on first sight.
    pub fn intern(&mut self, partner: &str) -> PartnerIndex {
        if let Some(index) = self.partner_index(partner) {
            return index;
        }
        self.partners.push(partner.to_string());
        (self.partners.len() - 1) as PartnerIndex
    }

    pub fn partner_index(&self, partner: &str) -> Option<PartnerIndex> {
        self.partners.iter().position(|name| name == partner).map(|i| i as PartnerIndex)
    }

    pub fn partner_name(&self, index: PartnerIndex) -> Option<&str> {
        self.partners.get(usize::from(index)).map(String::as_str)
    }

    /// Applies a `partner_account` event; returns the subjects whose link at
    /// `partner` ended (their earlier disclosures to it must be withdrawn).
    ///
    /// The service's `linked` creates the link (moving the account id to this
    /// subject, and this subject's link to this account id), and settles any
    /// claim. A partner's `linked` is only recorded as a claim. `unlinked`
    /// from the service ends the subject's link to that id; from the partner,
    /// it ends the link of its account id whoever the line names (a partner
    /// may always stop receiving, never start).
    pub fn apply(
        &mut self,
        partner: &str,
        subject: u32,
        account: &str,
        state: LinkState,
        origin: LinkOrigin,
    ) -> Vec<u32> {
        let index = self.intern(partner);
        let mut ended = Vec::new();
        match (state, origin) {
            (LinkState::Linked, LinkOrigin::Service) => {
                self.claims.remove(&(index, subject));
                if let Some(previous) = self.by_subject.insert((index, subject), account.to_string()) {
                    if previous != account {
                        self.by_account.remove(&(index, previous));
                        ended.push(subject);
                    }
                }
                if let Some(other) = self.by_account.insert((index, account.to_string()), subject) {
                    if other != subject {
                        self.by_subject.remove(&(index, other));
                        ended.push(other);
                    }
                }
            }
            (LinkState::Linked, LinkOrigin::Partner) => {
                if self.account_of(index, subject) != Some(account) {
                    self.claims.insert((index, subject), account.to_string());
                }
            }
            (LinkState::Unlinked, LinkOrigin::Service) => {
                if self.claims.get(&(index, subject)).is_some_and(|claimed| claimed == account) {
                    self.claims.remove(&(index, subject));
                }
                if self.by_subject.get(&(index, subject)).is_some_and(|linked| linked == account) {
                    self.by_subject.remove(&(index, subject));
                    self.by_account.remove(&(index, account.to_string()));
                    ended.push(subject);
                }
            }
            (LinkState::Unlinked, LinkOrigin::Partner) => {
                self.claims.retain(|(claim_partner, _), claimed| !(*claim_partner == index && claimed == account));
                if let Some(linked) = self.by_account.remove(&(index, account.to_string())) {
                    self.by_subject.remove(&(index, linked));
                    ended.push(linked);
                }
            }
        }
        ended
    }

    /// The account id `partner` claims for the subject, not attested yet.
    pub fn claim_of(&self, partner: PartnerIndex, subject: u32) -> Option<&str> {
        self.claims.get(&(partner, subject)).map(String::as_str)
    }

    /// Every pending claim about the subject, with the account id claimed.
    pub fn claims_of(&self, subject: u32) -> impl Iterator<Item = (PartnerIndex, &str)> + '_ {
        (0..self.partners.len() as PartnerIndex)
            .filter_map(move |partner| self.claim_of(partner, subject).map(|account| (partner, account)))
    }

    /// Applies a `partner_friend` event (friendship is symmetric).
    pub fn set_friends(&mut self, partner: &str, a: &str, b: &str, state: crate::contract::FriendState) {
        let index = self.intern(partner);
        let key = if a <= b { (index, a.to_string(), b.to_string()) } else { (index, b.to_string(), a.to_string()) };
        match state {
            crate::contract::FriendState::Added => self.friends.insert(key),
            crate::contract::FriendState::Removed => self.friends.remove(&key),
        };
    }

    /// Whether two accounts are friends at `partner`.
    pub fn are_friends(&self, partner: PartnerIndex, a: &str, b: &str) -> bool {
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        self.friends.contains(&(partner, low.to_string(), high.to_string()))
    }

    /// Forgets an erased subject's links at every partner.
    pub fn remove_subject(&mut self, subject: u32) {
        self.by_subject.retain(|(_, linked), _| *linked != subject);
        self.by_account.retain(|_, linked| *linked != subject);
        self.claims.retain(|(_, claimed), _| *claimed != subject);
    }

    /// The subject's account id at `partner`, if linked.
    pub fn account_of(&self, partner: PartnerIndex, subject: u32) -> Option<&str> {
        self.by_subject.get(&(partner, subject)).map(String::as_str)
    }

    /// The subject linked to `account` at `partner`.
    pub fn subject_of(&self, partner: PartnerIndex, account: &str) -> Option<u32> {
        self.by_account.get(&(partner, account.to_string())).copied()
    }

    /// Every partner the subject is linked to, with its account id there.
    pub fn links_of(&self, subject: u32) -> impl Iterator<Item = (PartnerIndex, &str)> + '_ {
        (0..self.partners.len() as PartnerIndex)
            .filter_map(move |partner| self.account_of(partner, subject).map(|account| (partner, account)))
    }

    pub fn heap_bytes(&self) -> usize {
        (self.by_subject.capacity() + self.by_account.capacity() + self.claims.capacity()) * 64
            + self.friends.capacity() * 80
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Links are per partner; relinking moves an id; unlinking needs the id.
    #[test]
    fn links_are_per_partner_and_follow_the_latest_event() {
        let mut links = Links::default();
        links.apply("a", 1, "p_1", LinkState::Linked, LinkOrigin::Service);
        links.apply("b", 1, "q_9", LinkState::Linked, LinkOrigin::Service);
        let (a, b) = (links.partner_index("a").expect("a"), links.partner_index("b").expect("b"));
        assert_eq!(links.account_of(a, 1), Some("p_1"));
        assert_eq!(links.subject_of(b, "q_9"), Some(1));
        assert_eq!(links.subject_of(b, "p_1"), None, "ids never answer for another partner");
        assert_eq!(links.apply("a", 2, "p_1", LinkState::Linked, LinkOrigin::Service), vec![1], "1's link ended");
        assert_eq!(links.account_of(a, 1), None);
        assert_eq!(links.subject_of(a, "p_1"), Some(2));
        links.apply("a", 2, "p_other", LinkState::Unlinked, LinkOrigin::Service);
        assert_eq!(links.subject_of(a, "p_1"), Some(2), "unlinking another id changes nothing");
        links.apply("a", 2, "p_1", LinkState::Unlinked, LinkOrigin::Service);
        assert_eq!(links.subject_of(a, "p_1"), None);
        assert_eq!(links.links_of(1).collect::<Vec<_>>(), vec![(b, "q_9")]);
    }

    /// A partner's claim shares nothing until the service attests the same
    /// account for the same person; either side's unlinking ends the link.
    #[test]
    fn claims_become_links_only_by_attestation() {
        let mut links = Links::default();
        links.apply("a", 1, "p_1", LinkState::Linked, LinkOrigin::Partner);
        let a = links.partner_index("a").expect("a");
        assert_eq!(links.account_of(a, 1), None, "a claim is not a link");
        assert_eq!(links.subject_of(a, "p_1"), None);
        assert_eq!(links.claim_of(a, 1), Some("p_1"));
        links.apply("a", 1, "p_1", LinkState::Linked, LinkOrigin::Service);
        assert_eq!(links.account_of(a, 1), Some("p_1"));
        assert_eq!(links.claim_of(a, 1), None, "the attestation settles the claim");
        // The partner ends its account's link whoever its line names.
        assert_eq!(links.apply("a", 7, "p_1", LinkState::Unlinked, LinkOrigin::Partner), vec![1]);
        assert_eq!(links.account_of(a, 1), None);
        // A claim after unlinking does not bring the link back.
        links.apply("a", 1, "p_1", LinkState::Linked, LinkOrigin::Partner);
        assert_eq!(links.account_of(a, 1), None);
        links.remove_subject(1);
        assert_eq!(links.claim_of(a, 1), None, "erasure forgets claims");
    }
}
