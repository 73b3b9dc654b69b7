//! Partner account ids, interned: each id string held once, by index.
//!
//! Owns: the id <-> index table the link maps key on, and how many map
//! entries name each id: an id no entry names any more (a replaced link or
//! claim, a removed friendship, an erased person's links) is forgotten,
//! blanked in place; indexes are never reused, so no map can come to name
//! someone else.
//! Never: decides what is linked (that is `mod.rs`), or holds anything but
//! the ids partners and the service wrote.

use std::hash::BuildHasher;

/// The table: ids by index in one arena, and a hash index over them.
#[derive(Default)]
pub(super) struct Accounts {
    /// Every id's bytes, one after another. A forgotten id's bytes are
    /// zeroed in place (no trace of it stays in memory) and its span
    /// emptied; a snapshot leaves them out, so a reload reclaims them.
    bytes: Vec<u8>,
    /// Each id's (start, length) in `bytes`, by index; a forgotten one is
    /// empty. About 26 bytes an id of 18 characters, where a boxed string
    /// each took 48 (pointer, allocation and its header).
    spans: Vec<(u32, u32)>,
    /// Indexes of the non-empty ids, hashed by their id.
    index: hashbrown::HashTable<u32>,
    /// How many map entries name each id.
    refs: Vec<u32>,
    hasher: foldhash::fast::FixedState,
}

/// The id at `index` in `bytes` by `spans` (empty when forgotten or out of
/// range). Ids are stored from `&str`s, so the bytes are UTF-8.
fn id_in<'a>(bytes: &'a [u8], spans: &[(u32, u32)], index: u32) -> &'a str {
    let Some(&(start, len)) = spans.get(index as usize) else { return "" };
    let (start, len) = (start as usize, len as usize);
    bytes.get(start..start + len).and_then(|id| std::str::from_utf8(id).ok()).unwrap_or("")
}

impl Accounts {
    /// The index of `id`, if it was interned (and not forgotten).
    pub(super) fn find(&self, id: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(id);
        self.index.find(hash, |&index| self.get(index) == id).copied()
    }

    /// The index of `id`, interning it on first sight (named by nothing
    /// yet: the caller names it with [`Accounts::retain`] at once).
    pub(super) fn intern(&mut self, id: &str) -> u32 {
        if let Some(index) = self.find(id) {
            return index;
        }
        let index = self.spans.len() as u32;
        self.push(id);
        self.refs.push(0);
        let (bytes, spans, hasher) = (&self.bytes, &self.spans, &self.hasher);
        self.index.insert_unique(hasher.hash_one(id), index, |&other| hasher.hash_one(id_in(bytes, spans, other)));
        index
    }

    fn push(&mut self, id: &str) {
        // Ids come from lines of at most a few megabytes, so they fit a
        // `u32`; the arena outgrows it only past 4 GiB of ids, and an id
        // past that is held as forgotten (found by nothing).
        let start = u32::try_from(self.bytes.len()).unwrap_or(u32::MAX);
        let len = u32::try_from(id.len()).unwrap_or(0);
        if start == u32::MAX || start.checked_add(len).is_none() {
            self.spans.push((0, 0));
            return;
        }
        self.bytes.extend_from_slice(id.as_bytes());
        self.spans.push((start, len));
    }

    /// The id at `index` (empty when forgotten or out of range).
    pub(super) fn get(&self, index: u32) -> &str {
        id_in(&self.bytes, &self.spans, index)
    }

    /// Whether `index` names a held id.
    pub(super) fn holds(&self, index: u32) -> bool {
        !self.get(index).is_empty()
    }

    /// One more map entry names the id at `index`.
    pub(super) fn retain(&mut self, index: u32) {
        if let Some(refs) = self.refs.get_mut(index as usize) {
            *refs += 1;
        }
    }

    /// One map entry fewer names the id at `index`; at none it is forgotten.
    pub(super) fn release(&mut self, index: u32) {
        let Some(refs) = self.refs.get_mut(index as usize) else { return };
        *refs = refs.saturating_sub(1);
        if *refs == 0 {
            self.forget(index);
        }
    }

    /// Forgets every id no entry names (after loading a snapshot).
    pub(super) fn forget_unnamed(&mut self) {
        for index in 0..self.spans.len() as u32 {
            if self.refs[index as usize] == 0 {
                self.forget(index);
            }
        }
    }

    /// Forgets the id at `index`: zeroed, emptied, and no longer found.
    fn forget(&mut self, index: u32) {
        let id = self.get(index);
        if id.is_empty() {
            return;
        }
        let hash = self.hasher.hash_one(id);
        if let Ok(entry) = self.index.find_entry(hash, |&other| other == index) {
            entry.remove();
        }
        let Some(span) = self.spans.get_mut(index as usize) else { return };
        let (start, len) = (span.0 as usize, span.1 as usize);
        *span = (0, 0);
        if let Some(bytes) = self.bytes.get_mut(start..start + len) {
            bytes.fill(0);
        }
    }

    /// Every id by index (forgotten ones empty), for a snapshot.
    pub(super) fn ids(&self) -> Vec<Box<str>> {
        (0..self.spans.len() as u32).map(|index| Box::from(self.get(index))).collect()
    }

    /// The table of a snapshot's ids; two equal non-empty ids are refused.
    pub(super) fn from_ids(ids: Vec<Box<str>>) -> Result<Accounts, String> {
        let mut accounts = Accounts { refs: vec![0; ids.len()], ..Accounts::default() };
        accounts.bytes.reserve_exact(ids.iter().map(|id| id.len()).sum());
        accounts.spans.reserve_exact(ids.len());
        for id in &ids {
            accounts.push(id);
        }
        drop(ids);
        let Accounts { bytes, spans, index, hasher, .. } = &mut accounts;
        for position in 0..spans.len() as u32 {
            let id = id_in(bytes, spans, position);
            if id.is_empty() {
                continue;
            }
            let hash = hasher.hash_one(id);
            if index.find(hash, |&other| id_in(bytes, spans, other) == id).is_some() {
                return Err(format!("links: account id {position} appears twice"));
            }
            index.insert_unique(hash, position, |&other| hasher.hash_one(id_in(bytes, spans, other)));
        }
        Ok(accounts)
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
            + self.spans.capacity() * std::mem::size_of::<(u32, u32)>()
            + self.index.capacity() * (std::mem::size_of::<u32>() + 1)
            + self.refs.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An id is found while some entry names it, forgotten after the last
    /// one lets go, and its index never comes back.
    #[test]
    fn interned_ids_are_found_and_forgotten_ones_are_not() {
        let mut accounts = Accounts::default();
        let a = accounts.intern("p_1");
        let b = accounts.intern("p_2");
        accounts.retain(a);
        accounts.retain(a);
        accounts.retain(b);
        assert_eq!(accounts.intern("p_1"), a);
        assert_eq!((accounts.find("p_2"), accounts.get(b)), (Some(b), "p_2"));
        accounts.release(a);
        assert_eq!(accounts.find("p_1"), Some(a), "still named once");
        accounts.release(a);
        assert_eq!(accounts.find("p_1"), None);
        assert!(!accounts.bytes.windows(3).any(|bytes| bytes == b"p_1"), "a forgotten id leaves no bytes");
        assert!(!accounts.holds(a) && accounts.holds(b));
        assert_ne!(accounts.intern("p_1"), a, "a forgotten index is never reused");
        let copy = Accounts::from_ids(accounts.ids()).expect("valid");
        assert_eq!(copy.find("p_2"), Some(b));
        assert!(Accounts::from_ids(vec!["x".into(), "x".into()]).is_err());
    }
}
