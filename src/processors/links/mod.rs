//! Partner links: which partner account belongs to which subject.
//!
//! Owns: the (partner, partner account id) <-> subject mapping built from
//! `partner_account` events, linked and unlinked.
//! Never: decides what a partner may receive (that is `gate/`), or lets one
//! partner's ids answer a lookup for another.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::contract::LinkState;

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

    /// Applies a `partner_account` event. Linking an account id moves it to
    /// the new subject; a subject has at most one account per partner.
    pub fn apply(&mut self, partner: &str, subject: u32, account: &str, state: LinkState) {
        let index = self.intern(partner);
        match state {
            LinkState::Linked => {
                if let Some(previous) = self.by_subject.insert((index, subject), account.to_string()) {
                    if previous != account {
                        self.by_account.remove(&(index, previous));
                    }
                }
                if let Some(other) = self.by_account.insert((index, account.to_string()), subject) {
                    if other != subject {
                        self.by_subject.remove(&(index, other));
                    }
                }
            }
            LinkState::Unlinked => {
                if self.by_subject.get(&(index, subject)).is_some_and(|linked| linked == account) {
                    self.by_subject.remove(&(index, subject));
                    self.by_account.remove(&(index, account.to_string()));
                }
            }
        }
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
        (self.by_subject.capacity() + self.by_account.capacity()) * 64 + self.friends.capacity() * 80
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Links are per partner; relinking moves an id; unlinking needs the id.
    #[test]
    fn links_are_per_partner_and_follow_the_latest_event() {
        let mut links = Links::default();
        links.apply("a", 1, "p_1", LinkState::Linked);
        links.apply("b", 1, "q_9", LinkState::Linked);
        let (a, b) = (links.partner_index("a").expect("a"), links.partner_index("b").expect("b"));
        assert_eq!(links.account_of(a, 1), Some("p_1"));
        assert_eq!(links.subject_of(b, "q_9"), Some(1));
        assert_eq!(links.subject_of(b, "p_1"), None, "ids never answer for another partner");
        links.apply("a", 2, "p_1", LinkState::Linked);
        assert_eq!(links.account_of(a, 1), None);
        assert_eq!(links.subject_of(a, "p_1"), Some(2));
        links.apply("a", 2, "p_other", LinkState::Unlinked);
        assert_eq!(links.subject_of(a, "p_1"), Some(2), "unlinking another id changes nothing");
        links.apply("a", 2, "p_1", LinkState::Unlinked);
        assert_eq!(links.subject_of(a, "p_1"), None);
        assert_eq!(links.links_of(1).collect::<Vec<_>>(), vec![(b, "q_9")]);
    }
}
