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

/// The table: ids by index, and a hash index over them.
#[derive(Default)]
pub(super) struct Accounts {
    /// Ids by index; a forgotten one is empty.
    ids: Vec<Box<str>>,
    /// Indexes of the non-empty ids, hashed by their id.
    index: hashbrown::HashTable<u32>,
    /// How many map entries name each id.
    refs: Vec<u32>,
    hasher: foldhash::fast::FixedState,
}

impl Accounts {
    /// The index of `id`, if it was interned (and not forgotten).
    pub(super) fn find(&self, id: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(id);
        self.index.find(hash, |&index| &*self.ids[index as usize] == id).copied()
    }

    /// The index of `id`, interning it on first sight (named by nothing
    /// yet: the caller names it with [`Accounts::retain`] at once).
    pub(super) fn intern(&mut self, id: &str) -> u32 {
        if let Some(index) = self.find(id) {
            return index;
        }
        let index = self.ids.len() as u32;
        self.ids.push(id.into());
        self.refs.push(0);
        let (ids, hasher) = (&self.ids, &self.hasher);
        self.index.insert_unique(hasher.hash_one(id), index, |&other| hasher.hash_one(&*ids[other as usize]));
        index
    }

    /// The id at `index` (empty when forgotten or out of range).
    pub(super) fn get(&self, index: u32) -> &str {
        self.ids.get(index as usize).map_or("", |id| id)
    }

    /// Whether `index` names a held id.
    pub(super) fn holds(&self, index: u32) -> bool {
        self.ids.get(index as usize).is_some_and(|id| !id.is_empty())
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
        for index in 0..self.ids.len() as u32 {
            if self.refs[index as usize] == 0 {
                self.forget(index);
            }
        }
    }

    /// Forgets the id at `index`: blanked, and no longer found.
    fn forget(&mut self, index: u32) {
        let Some(id) = self.ids.get(index as usize) else { return };
        if id.is_empty() {
            return;
        }
        let hash = self.hasher.hash_one(&**id);
        if let Ok(entry) = self.index.find_entry(hash, |&other| other == index) {
            entry.remove();
        }
        self.ids[index as usize] = Box::from("");
    }

    /// Every id by index (forgotten ones empty), for a snapshot.
    pub(super) fn ids(&self) -> &[Box<str>] {
        &self.ids
    }

    /// The table of a snapshot's ids; two equal non-empty ids are refused.
    pub(super) fn from_ids(ids: Vec<Box<str>>) -> Result<Accounts, String> {
        let refs = vec![0; ids.len()];
        let mut accounts = Accounts { ids, refs, ..Accounts::default() };
        let Accounts { ids, index, hasher, .. } = &mut accounts;
        for (position, id) in ids.iter().enumerate() {
            if id.is_empty() {
                continue;
            }
            let hash = hasher.hash_one(&**id);
            if index.find(hash, |&other| ids[other as usize] == *id).is_some() {
                return Err(format!("links: account id {position} appears twice"));
            }
            index.insert_unique(hash, position as u32, |&other| hasher.hash_one(&*ids[other as usize]));
        }
        Ok(accounts)
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.ids.capacity() * std::mem::size_of::<Box<str>>()
            + self.ids.iter().map(|id| id.len().next_multiple_of(16) + 16).sum::<usize>()
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
        assert!(!accounts.holds(a) && accounts.holds(b));
        assert_ne!(accounts.intern("p_1"), a, "a forgotten index is never reused");
        let copy = Accounts::from_ids(accounts.ids().to_vec()).expect("valid");
        assert_eq!(copy.find("p_2"), Some(b));
        assert!(Accounts::from_ids(vec!["x".into(), "x".into()]).is_err());
    }
}
