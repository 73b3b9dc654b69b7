//! The contact graph: each subject's latest address book, as dense indexes.
//!
//! Owns: replacing a book on every `contacts` snapshot, answering "is B in
//! A's book" for the abuse rules (and, later, friend suggestions).
//! Never: holds a phone number (books are pseudonyms turned into indexes by
//! `state/`), or suggests anything itself.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Address books by owner. Books are sorted and deduplicated so membership
/// is a binary search and a book costs 4 bytes per contact.
#[derive(Default, Serialize, Deserialize)]
pub struct Graph {
    books: HashMap<u32, Box<[u32]>, foldhash::fast::RandomState>,
}

impl Graph {
    /// Replaces `owner`'s book (a snapshot, not a delta).
    pub fn set_book(&mut self, owner: u32, mut contacts: Vec<u32>) {
        contacts.sort_unstable();
        contacts.dedup();
        if contacts.is_empty() {
            self.books.remove(&owner);
        } else {
            self.books.insert(owner, contacts.into_boxed_slice());
        }
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
        graph.set_book(1, vec![]);
        assert!(graph.book(1).is_empty());
        assert!(!graph.has_contact(2, 7));
    }
}
