//! The contact graph: each subject's latest address book, as dense indexes.
//!
//! Owns: replacing a book on every `contacts` snapshot, answering "is B in
//! A's book" for the abuse rules, blocks, and ranking friend suggestions
//! (`suggest.rs`).
//! Never: holds a phone number (books are pseudonyms turned into indexes by
//! `state/`), suggests across a block, or releases a suggestion itself (the
//! API does, through the gate).

pub mod books;
pub mod encodings;
pub mod suggest;

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

pub use books::{Book, BookIter};
use books::{Books, StoredBooks};

type Blocks = HashSet<(u32, u32), foldhash::fast::RandomState>;

/// Address books by owner, packed as bit-packed gaps in one arena
/// (`books.rs`): about 1.3 bytes per contact and four per owner, with
/// membership a binary search over a skip table plus a short scan.
#[derive(Default, Serialize)]
pub struct Graph {
    books: Books,
    /// How many books hold each subject (Adamic-Adar's degree).
    in_degree: Vec<u32>,
    /// (blocker, blocked): suggestions never cross a block either way.
    blocks: Blocks,
}

/// The graph section of a snapshot (version 7 on), before its indexes are
/// checked against the subject registry ([`Graph::from_stored`]).
#[derive(Deserialize)]
pub struct StoredGraph {
    books: StoredBooks,
    in_degree: Vec<u32>,
    blocks: Blocks,
}

/// The graph section of snapshots up to version 6: each book a sorted
/// `u32` list in a hash map.
#[derive(Deserialize)]
pub struct LegacyGraph {
    books: HashMap<u32, Box<[u32]>, foldhash::fast::RandomState>,
    in_degree: Vec<u32>,
    blocks: Blocks,
}

impl Graph {
    /// A graph section read from a snapshot whose registry holds `subjects`
    /// indexes: every owner and contact must be one of them.
    pub fn from_stored(stored: StoredGraph, subjects: usize) -> Result<Graph, String> {
        let books = Books::from_stored(stored.books, subjects)?;
        Graph::checked(books, stored.in_degree, stored.blocks, subjects)
    }

    /// An older snapshot's graph section, in the packed layout.
    pub fn from_legacy(legacy: LegacyGraph, subjects: usize) -> Result<Graph, String> {
        let lists = legacy.books.iter().map(|(&owner, book)| (owner, &book[..]));
        let books = Books::from_lists(lists, subjects)?;
        Graph::checked(books, legacy.in_degree, legacy.blocks, subjects)
    }

    fn checked(books: Books, in_degree: Vec<u32>, blocks: Blocks, subjects: usize) -> Result<Graph, String> {
        if in_degree.len() > subjects {
            return Err(format!("in-degree of {} subjects, registry holds {subjects}", in_degree.len()));
        }
        Ok(Graph { books, in_degree, blocks })
    }

    /// Replaces `owner`'s book (a snapshot, not a delta).
    pub fn set_book(&mut self, owner: u32, mut contacts: Vec<u32>) {
        contacts.sort_unstable();
        contacts.dedup();
        contacts.retain(|&contact| contact != owner);
        for contact in self.books.get(owner).iter() {
            if let Some(count) = self.in_degree.get_mut(contact as usize) {
                *count = count.saturating_sub(1);
            }
        }
        for &contact in &contacts {
            let index = contact as usize;
            if self.in_degree.len() <= index {
                self.in_degree.resize(index + 1, 0);
            }
            self.in_degree[index] += 1;
        }
        self.books.set(owner, &contacts);
    }

    /// Forgets an erased subject: its book, its blocks, and its place in
    /// everyone else's book.
    pub fn remove_subject(&mut self, subject: u32) {
        self.set_book(subject, Vec::new());
        if self.in_degree(subject) > 0 {
            let holders: Vec<u32> =
                self.books.iter().filter(|(_, book)| book.contains(subject)).map(|(owner, _)| owner).collect();
            let mut contacts = Vec::new();
            for owner in holders {
                self.books.get(owner).decode_into(&mut contacts);
                contacts.retain(|&contact| contact != subject);
                self.books.set(owner, &contacts);
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

    /// Whether `other` is in `owner`'s book.
    pub fn has_contact(&self, owner: u32, other: u32) -> bool {
        self.books.get(owner).contains(other)
    }

    /// `owner`'s book (empty when there is none): its length, its contacts
    /// in increasing order, membership.
    pub fn book(&self, owner: u32) -> Book<'_> {
        self.books.get(owner)
    }

    /// Every non-empty book, by owner.
    pub fn books(&self) -> impl Iterator<Item = (u32, Book<'_>)> + '_ {
        self.books.iter()
    }

    pub fn heap_bytes(&self) -> usize {
        self.books.heap_bytes() + self.in_degree.capacity() * 4 + self.blocks.capacity() * 9
    }

    /// This graph as a version-6 (or older) snapshot stored it: the postcard
    /// bytes of a [`LegacyGraph`]. Tests use it to write old snapshots.
    #[cfg(test)]
    pub fn legacy_blob(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Legacy<'a> {
            books: HashMap<u32, Vec<u32>>,
            in_degree: &'a [u32],
            blocks: &'a Blocks,
        }
        let books = self.books().map(|(owner, book)| (owner, book.iter().collect())).collect();
        let legacy = Legacy { books, in_degree: &self.in_degree, blocks: &self.blocks };
        postcard::to_stdvec(&legacy).expect("a graph serialises")
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
        assert_eq!(graph.book(1).iter().collect::<Vec<_>>(), [3, 5, 9]);
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
