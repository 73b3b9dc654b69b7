//! The contact graph: each subject's latest address book, as dense indexes.
//!
//! Owns: replacing a book on every `contacts` snapshot, answering "is B in
//! A's book" for the abuse rules, blocks, and ranking friend suggestions
//! (`suggest.rs`).
//! Never: holds a phone number (books are pseudonyms turned into indexes by
//! `state/`), suggests across a block, or releases a suggestion itself (the
//! API does, through the gate).

pub mod suggest;

use std::collections::HashSet;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Address books by owner. Books are sorted and deduplicated so membership
/// is a binary search and a book costs 4 bytes per contact.
#[derive(Default, Serialize, Deserialize)]
pub struct Graph {
    books: HashMap<u32, Box<[u32]>, foldhash::fast::RandomState>,
    /// How many books hold each subject (Adamic-Adar's degree).
    in_degree: Vec<u32>,
    /// (blocker, blocked): suggestions never cross a block either way.
    blocks: HashSet<(u32, u32), foldhash::fast::RandomState>,
}

impl Graph {
    /// Replaces `owner`'s book (a snapshot, not a delta).
    pub fn set_book(&mut self, owner: u32, mut contacts: Vec<u32>) {
        contacts.sort_unstable();
        contacts.dedup();
        contacts.retain(|&contact| contact != owner);
        if let Some(old) = self.books.remove(&owner) {
            for contact in old.iter() {
                if let Some(count) = self.in_degree.get_mut(*contact as usize) {
                    *count = count.saturating_sub(1);
                }
            }
        }
        for &contact in &contacts {
            let index = contact as usize;
            if self.in_degree.len() <= index {
                self.in_degree.resize(index + 1, 0);
            }
            self.in_degree[index] += 1;
        }
        if !contacts.is_empty() {
            self.books.insert(owner, contacts.into_boxed_slice());
        }
    }

    /// Forgets an erased subject: its book, its blocks, and its place in
    /// everyone else's book.
    pub fn remove_subject(&mut self, subject: u32) {
        self.set_book(subject, Vec::new());
        if self.in_degree(subject) > 0 {
            for book in self.books.values_mut() {
                if book.binary_search(&subject).is_ok() {
                    *book = book.iter().copied().filter(|&c| c != subject).collect();
                }
            }
            self.in_degree[subject as usize] = 0;
        }
        self.blocks.retain(|(a, b)| *a != subject && *b != subject);
    }

    /// Records that `blocker` blocked `blocked`.
    pub fn block(&mut self, blocker: u32, blocked: u32) {
        self.blocks.insert((blocker, blocked));
    }

    /// Whether either blocked the other.
    pub fn blocked_either_way(&self, a: u32, b: u32) -> bool {
        self.blocks.contains(&(a, b)) || self.blocks.contains(&(b, a))
    }

    /// How many address books hold `subject`.
    pub fn in_degree(&self, subject: u32) -> u32 {
        self.in_degree.get(subject as usize).copied().unwrap_or(0)
    }

    pub fn has_contact(&self, owner: u32, other: u32) -> bool {
        self.books.get(&owner).is_some_and(|book| book.binary_search(&other).is_ok())
    }

    pub fn book(&self, owner: u32) -> &[u32] {
        self.books.get(&owner).map_or(&[], |book| book)
    }

    pub fn heap_bytes(&self) -> usize {
        self.books.capacity() * (std::mem::size_of::<(u32, Box<[u32]>)>() + 1)
            + self.books.values().map(|book| book.len() * 4).sum::<usize>()
            + self.in_degree.capacity() * 4
            + self.blocks.capacity() * 9
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new snapshot replaces the old book entirely; an empty one removes it.
    #[test]
    fn books_are_replaced_not_merged() {
        let mut graph = Graph::default();
        graph.set_book(1, vec![5, 3, 3, 9]);
        assert!(graph.has_contact(1, 3) && graph.has_contact(1, 9));
        assert_eq!(graph.book(1), &[3, 5, 9]);
        graph.set_book(1, vec![7]);
        assert!(!graph.has_contact(1, 3));
        assert!(graph.has_contact(1, 7));
        assert_eq!((graph.in_degree(3), graph.in_degree(7)), (0, 1));
        graph.set_book(1, vec![]);
        assert!(graph.book(1).is_empty());
        assert!(!graph.has_contact(2, 7));
        assert_eq!(graph.in_degree(7), 0);
    }
}
