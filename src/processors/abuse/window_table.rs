//! The table of recently active subjects' windows, by subject index.
//!
//! Owns: where each subject's [`SubjectWindow`] lives. A slot a subject
//! (by its dense index) points into one vector holding only the windows
//! there are; removing one moves the last window into its place, so the
//! vector stays dense without a free list.
//! Never: keeps a window for a subject it was told to forget, or changes the
//! snapshot form (a map from subject to window, as the `HashMap` it replaced
//! wrote it).
//!
//! Why: on the partner workload 74,000 of 200,000 subjects have a window. A
//! `HashMap<u32, SubjectWindow>` held them in 131,072 buckets of 57 bytes
//! (7.5 MB, the table at its power of two); this holds 4 bytes a subject
//! and 52 a window (4.6 MB), and a lookup is an index, not a hash.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::window::SubjectWindow;

/// No window for this subject.
const NONE: u32 = u32::MAX;

pub(super) struct WindowTable {
    /// By subject index: the window's place in `windows`, or [`NONE`].
    slot_of: Vec<u32>,
    windows: Vec<SubjectWindow>,
    /// The subject of each window, in `windows`' order.
    owners: Vec<u32>,
    /// Whether `slot_of` indexes `owners`: false for a table just read from
    /// a snapshot until [`WindowTable::bind`] checked it. An unbound table
    /// would answer "no window" for everyone, so a lookup on one is a bug
    /// (debug builds, and so every test, panic on it).
    bound: bool,
}

impl Default for WindowTable {
    fn default() -> WindowTable {
        WindowTable { slot_of: Vec::new(), windows: Vec::new(), owners: Vec::new(), bound: true }
    }
}

impl WindowTable {
    pub fn get(&self, subject: u32) -> Option<&SubjectWindow> {
        debug_assert!(self.bound, "a window table read from a snapshot is looked up before `bind`");
        let slot = *self.slot_of.get(subject as usize)?;
        // NONE is past the end: `windows` never holds u32::MAX entries.
        self.windows.get(slot as usize)
    }

    /// The subject's window, made empty if it had none.
    pub fn get_or_default(&mut self, subject: u32) -> &mut SubjectWindow {
        debug_assert!(self.bound, "a window table read from a snapshot is changed before `bind`");
        let index = subject as usize;
        if index >= self.slot_of.len() {
            self.slot_of.resize(index + 1, NONE);
        }
        let mut slot = self.slot_of[index];
        if slot == NONE {
            slot = self.windows.len() as u32;
            self.windows.push(SubjectWindow::default());
            self.owners.push(subject);
            self.slot_of[index] = slot;
        }
        &mut self.windows[slot as usize]
    }

    pub fn remove(&mut self, subject: u32) {
        debug_assert!(self.bound, "a window table read from a snapshot is changed before `bind`");
        let Some(&slot) = self.slot_of.get(subject as usize) else { return };
        if slot != NONE {
            self.remove_slot(slot as usize);
        }
    }

    /// Drops the window in `slot`; the last window takes its place.
    fn remove_slot(&mut self, slot: usize) {
        self.windows.swap_remove(slot);
        let gone = self.owners.swap_remove(slot);
        self.slot_of[gone as usize] = NONE;
        if let Some(&moved) = self.owners.get(slot) {
            self.slot_of[moved as usize] = slot as u32;
        }
    }

    /// Keeps the windows for which `keep` is true, then gives back room when
    /// fewer than half the places are used.
    pub fn retain(&mut self, mut keep: impl FnMut(&mut SubjectWindow) -> bool) {
        let mut slot = 0;
        while slot < self.windows.len() {
            if keep(&mut self.windows[slot]) {
                slot += 1;
            } else {
                self.remove_slot(slot);
            }
        }
        if self.windows.capacity() > 2 * self.windows.len().max(64) {
            self.windows.shrink_to(self.windows.len() * 5 / 4);
            self.owners.shrink_to(self.owners.len() * 5 / 4);
        }
    }

    /// Indexes a table just read from a snapshot (which holds the windows
    /// and their subjects only) against the registry's `subjects`: a
    /// subject index past the registry, or two windows of one subject, is
    /// refused (the slots are sized by the largest index, which is the
    /// file's word until checked).
    pub fn bind(&mut self, subjects: usize) -> Result<(), String> {
        let largest = self.owners.iter().copied().max().map_or(0, |owner| owner as usize + 1);
        if largest > subjects {
            return Err(format!("abuse: a window of subject {} of {subjects}", largest - 1));
        }
        self.slot_of = vec![NONE; largest];
        for (slot, &owner) in self.owners.iter().enumerate() {
            let place = &mut self.slot_of[owner as usize];
            if *place != NONE {
                return Err(format!("abuse: two windows of subject {owner}"));
            }
            *place = slot as u32;
        }
        self.bound = true;
        Ok(())
    }

    /// Subjects with a window.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, &SubjectWindow)> {
        self.owners.iter().copied().zip(&self.windows)
    }

    /// Heap bytes: the table's own vectors and each window's entries.
    pub fn heap_bytes(&self) -> usize {
        self.slot_of.capacity() * 4
            + self.owners.capacity() * 4
            + self.windows.capacity() * std::mem::size_of::<SubjectWindow>()
            + self.windows.iter().map(SubjectWindow::heap_bytes).sum::<usize>()
    }
}

impl Serialize for WindowTable {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for WindowTable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TableVisitor;
        impl<'de> Visitor<'de> for TableVisitor {
            type Value = WindowTable;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map from subject index to window")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WindowTable, A::Error> {
                // The length is the file's word: reserve at most a MiB on it
                // (serde's own cautious rule), and grow past that as entries
                // actually arrive.
                let hint = map.size_hint().unwrap_or(0).min((1 << 20) / std::mem::size_of::<SubjectWindow>());
                let mut table = WindowTable {
                    slot_of: Vec::new(),
                    windows: Vec::with_capacity(hint),
                    owners: Vec::with_capacity(hint),
                    bound: false,
                };
                while let Some((subject, window)) = map.next_entry::<u32, SubjectWindow>()? {
                    table.owners.push(subject);
                    table.windows.push(window);
                }
                table.owners.shrink_to_fit();
                table.windows.shrink_to_fit();
                Ok(table)
            }
        }
        deserializer.deserialize_map(TableVisitor)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    enum Op {
        /// Touch the subject's window (making it if needed) and stamp it.
        Touch(u32, i64),
        Remove(u32),
        /// Keep the windows stamped at or after this time.
        Retain(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u32..300, 0i64..1_000).prop_map(|(s, t)| Op::Touch(s, t)),
            1 => (0u32..300).prop_map(Op::Remove),
            1 => (0i64..1_000).prop_map(Op::Retain),
        ]
    }

    fn contents(table: &WindowTable) -> HashMap<u32, i64> {
        table.iter().map(|(subject, window)| (subject, window.newest_ms)).collect()
    }

    proptest! {
        /// The table answers as the `HashMap` it replaced, through any mix of
        /// touches, removals and sweeps, and after a snapshot round trip.
        #[test]
        fn the_table_answers_as_a_map(ops in proptest::collection::vec(op(), 0..400)) {
            let mut table = WindowTable::default();
            let mut model: HashMap<u32, i64> = HashMap::new();
            for op in ops {
                match op {
                    Op::Touch(subject, ts) => {
                        let window = table.get_or_default(subject);
                        window.newest_ms = window.newest_ms.max(ts);
                        let held = model.entry(subject).or_default();
                        *held = (*held).max(ts);
                    }
                    Op::Remove(subject) => {
                        table.remove(subject);
                        model.remove(&subject);
                    }
                    Op::Retain(horizon) => {
                        table.retain(|window| window.newest_ms >= horizon);
                        model.retain(|_, ts| *ts >= horizon);
                    }
                }
                prop_assert_eq!(table.len(), model.len());
            }
            prop_assert_eq!(contents(&table), model.clone());
            for subject in 0..310 {
                prop_assert_eq!(table.get(subject).map(|w| w.newest_ms), model.get(&subject).copied());
            }
            let mut back: WindowTable = postcard::from_bytes(&postcard::to_stdvec(&table).unwrap()).unwrap();
            back.bind(310).unwrap();
            prop_assert_eq!(contents(&back), model.clone());
            for subject in 0..310 {
                prop_assert_eq!(back.get(subject).map(|w| w.newest_ms), model.get(&subject).copied());
            }
        }
    }

    /// Snapshots written when the windows were a `HashMap` read back as the
    /// same windows, and a table writes what that map wrote.
    #[test]
    fn snapshots_of_the_old_map_read_back() {
        let mut old: HashMap<u32, SubjectWindow> = HashMap::new();
        for (subject, ts) in [(7u32, 70i64), (3, 30), (250_000, 5)] {
            old.entry(subject).or_default().newest_ms = ts;
        }
        let bytes = postcard::to_stdvec(&old).unwrap();
        let mut table: WindowTable = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(table.bind(250_000), Err("abuse: a window of subject 250000 of 250000".into()));
        table.bind(250_001).unwrap();
        let read: HashMap<u32, i64> = contents(&table);
        assert_eq!(read, HashMap::from([(7, 70), (3, 30), (250_000, 5)]));
        assert_eq!(table.get(250_000).map(|w| w.newest_ms), Some(5));
        let again: HashMap<u32, SubjectWindow> = postcard::from_bytes(&postcard::to_stdvec(&table).unwrap()).unwrap();
        assert_eq!(again.iter().map(|(s, w)| (*s, w.newest_ms)).collect::<HashMap<_, _>>(), read);
        // A file's index past the registry (u32::MAX among them) allocates
        // nothing for it; one subject twice is refused.
        let hostile = postcard::to_stdvec(&HashMap::from([(u32::MAX, SubjectWindow::default())])).unwrap();
        let mut table: WindowTable = postcard::from_bytes(&hostile).unwrap();
        assert!(table.bind(1_000).is_err());
        // (postcard writes a map as a sequence of pairs)
        let twice =
            postcard::to_stdvec(&vec![(7u32, SubjectWindow::default()), (7, SubjectWindow::default())]).unwrap();
        let mut table: WindowTable = postcard::from_bytes(&twice).unwrap();
        assert_eq!(table.len(), 2, "the same subject's entry twice is read as two");
        assert!(table.bind(10).is_err());
    }

    /// A table read from a snapshot and looked up before `bind` is a bug
    /// the tests catch, not a silent "no window" for everyone.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "before `bind`")]
    fn an_unbound_table_is_not_looked_up() {
        let bytes = postcard::to_stdvec(&HashMap::from([(3u32, SubjectWindow::default())])).unwrap();
        let table: WindowTable = postcard::from_bytes(&bytes).unwrap();
        let _ = table.get(3);
    }
}
