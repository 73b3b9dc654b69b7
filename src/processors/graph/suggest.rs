//! Friend suggestions: contacts of a person who are on the same partner
//! network but not yet their friends there, ranked.
//!
//! Owns: candidate selection and ranking: reciprocal contacts first, then
//! mutual contacts (common neighbours in the contact graph), then
//! Adamic-Adar, then the partner account id.
//! Never: suggests across a block, an existing friendship, or a subject the
//! caller's `eligible` check (the gate) refuses.

use super::{Book, Graph};
use crate::processors::links::{Links, PartnerIndex};

/// One ranked suggestion.
#[derive(Clone, Debug, PartialEq)]
pub struct Suggestion {
    pub subject: u32,
    /// The suggested person's account id at the partner.
    pub account: String,
    /// The suggested person also has the asker in their address book.
    pub reciprocal: bool,
    /// Subjects in both address books.
    pub mutual: u32,
    /// Sum over mutual contacts z of 1 / ln(books holding z).
    pub adamic_adar: f64,
}

/// Suggestions for `owner`, linked as `account` at `partner`. `eligible`
/// answers for each candidate whether it may be used (the caller asks the
/// gate: product allowed now, not banned).
pub fn suggest(
    graph: &Graph,
    links: &Links,
    partner: PartnerIndex,
    owner: u32,
    account: &str,
    eligible: &mut dyn FnMut(u32) -> bool,
    limit: usize,
) -> Vec<Suggestion> {
    // Decoded once: every candidate's book is merged against it.
    let mut book = Vec::new();
    graph.book(owner).decode_into(&mut book);
    let mut found = Vec::new();
    for &candidate in &book {
        let Some(candidate_account) = links.account_of(partner, candidate) else { continue };
        if candidate == owner
            || candidate_account == account
            || links.are_friends(partner, account, candidate_account)
            || graph.blocked_either_way(owner, candidate)
            || !eligible(candidate)
        {
            continue;
        }
        let (mutual, adamic_adar) = common_neighbours(graph, &book, graph.book(candidate));
        found.push(Suggestion {
            subject: candidate,
            account: candidate_account.to_string(),
            reciprocal: graph.has_contact(candidate, owner),
            mutual,
            adamic_adar,
        });
    }
    found.sort_by(|a, b| {
        b.reciprocal
            .cmp(&a.reciprocal)
            .then(b.mutual.cmp(&a.mutual))
            .then(b.adamic_adar.total_cmp(&a.adamic_adar))
            .then(a.account.cmp(&b.account))
    });
    found.truncate(limit);
    found
}

/// Count and Adamic-Adar weight of the subjects in both sorted books.
fn common_neighbours(graph: &Graph, a: &[u32], b: Book<'_>) -> (u32, f64) {
    let mut i = 0;
    let (mut count, mut weight) = (0u32, 0.0f64);
    for contact in b {
        while i < a.len() && a[i] < contact {
            i += 1;
        }
        if i == a.len() {
            break;
        }
        if a[i] == contact {
            count += 1;
            // Held by both books, so its degree is at least 2.
            weight += 1.0 / f64::from(graph.in_degree(contact).max(2)).ln();
            i += 1;
        }
    }
    (count, weight)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{FriendState, LinkState};

    /// Reciprocal first, then mutual contacts; friends, blocks, unlinked and
    /// ineligible candidates are never suggested.
    #[test]
    fn ranking_and_exclusions() {
        let mut graph = Graph::default();
        let mut links = Links::default();
        // Owner 0 knows 1..=6; 1 and 2 know 0 back; 3 shares two contacts.
        graph.set_book(0, vec![1, 2, 3, 4, 5, 6, 10, 11]);
        graph.set_book(1, vec![0]);
        graph.set_book(2, vec![0, 10]);
        graph.set_book(3, vec![10, 11]);
        for (subject, account) in [(0, "p0"), (1, "p1"), (2, "p2"), (3, "p3"), (4, "p4"), (5, "p5"), (6, "p6")] {
            links.apply("net", subject, account, LinkState::Linked, crate::contract::LinkOrigin::Service);
        }
        links.set_friends("net", "p4", "p0", FriendState::Added);
        graph.block(5, 0);
        let partner = links.partner_index("net").expect("partner");
        let mut eligible = |subject: u32| subject != 6;
        let found = suggest(&graph, &links, partner, 0, "p0", &mut eligible, 10);
        let order: Vec<&str> = found.iter().map(|s| s.account.as_str()).collect();
        assert_eq!(order, vec!["p2", "p1", "p3"]);
        assert!(found[0].reciprocal && found[0].mutual == 1);
        assert_eq!(found[2].mutual, 2);
        assert!(found[2].adamic_adar > 0.0);
        links.set_friends("net", "p0", "p4", FriendState::Removed);
        let found = suggest(&graph, &links, partner, 0, "p0", &mut eligible, 2);
        assert_eq!(found.len(), 2, "limit applies");
        let found = suggest(&graph, &links, partner, 0, "p0", &mut eligible, 10);
        assert!(found.iter().any(|s| s.account == "p4"), "an ended friendship is suggested again");
    }
}
