//! Address books packed into one byte arena: each book is its sorted
//! contacts as bit-packed gaps in four widths chosen for that book, with a
//! small skip table so membership stays a binary search plus a short scan.
//!
//! Owns: the encoding of one book, the arena of all books, reclaiming the
//! space of replaced books, and the snapshot form of the books.
//! Never: interprets a contact (dense subject indexes in, the same out).
//!
//! Why this shape (measured on the `bench/partner.sh` workload, see
//! `bench/README.md`, "Address books: encodings measured" and "Address
//! books: gaps in widths chosen per book"): subject indexes are handed out
//! in order of first sight and books cluster in communities, so a book's
//! gaps (contact minus previous contact, less one) come in two kinds: small
//! ones inside a community (58% below 16 there) and large ones between
//! communities (40% of 8 to 15 bits). One arena with a `u32` start per owner
//! costs 4 bytes per owner instead of a hash map entry and a boxed slice
//! (4.44 allocator bytes per contact for sorted `u32` lists in a hash map,
//! 4.98 for a roaring bitmap per owner, whose per-container overhead
//! dominates at 100 members). LEB128 varint gaps took 1.55 bytes per contact;
//! a 2-bit selector per gap and four widths per book take less, without a
//! code tuned to one workload: each book picks the four widths that make
//! its own gaps shortest, whatever their spread.
//!
//! Book layout (`n` contacts, `n >= 1`; empty books are not stored):
//!
//! ```text
//! varint n
//! if n >= 2: 3 bytes, the widths w0 <= w1 <= w2 <= w3 (6 bits each, w0 lowest)
//! (n - 1) / BLOCK skip entries, each: u32 LE contact[k * BLOCK], u32 LE bit
//!     offset (in the gap stream) of the gap before contact[k * BLOCK + 1]
//! varint contact[0]
//! gap stream, bits from the lowest of each byte up: for each i >= 1, a
//!     2-bit selector s, then gap_i = contact[i] - contact[i - 1] - 1 in w_s
//!     bits (s the first width that holds gap_i), padded to a whole byte
//! ```

use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Contacts per skip entry. A lookup binary-searches the skip table, then
/// decodes at most `BLOCK - 1` gaps. 64 costs 8 bytes per 64 contacts; on
/// the partner workload 16 and 32 were 5-8% faster to look up for 24% and
/// 8% more bytes, 128 and no skip table 20-25% slower for 5% fewer bytes
/// (bench/README.md, "Address books: encodings measured").
pub const BLOCK: usize = 64;

/// Arena start values are `u32` byte offsets (plus one; 0: no book), so the
/// arena holds at most this many bytes of books (about two billion contacts
/// at two bytes each).
const ARENA_LIMIT: usize = u32::MAX as usize - 1;

/// The most bytes one book of `n` contacts can take in the arena: its
/// length, widths, skip table and first contact, and 34 bits a gap.
fn worst_len(n: usize) -> usize {
    5 + 3 + (n / BLOCK + 1) * 8 + 5 + (n * 34).div_ceil(8)
}

/// Appends `value` as an LEB128 varint.
fn put_varint(out: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads one LEB128 varint at `*at`, advancing it. `None` past the end or on
/// a varint longer than a `u32` holds.
#[inline]
fn get_varint(bytes: &[u8], at: &mut usize) -> Option<u32> {
    let first = *bytes.get(*at)?;
    *at += 1;
    if first < 0x80 {
        return Some(u32::from(first));
    }
    let mut value = u32::from(first & 0x7f);
    let mut shift = 7;
    loop {
        let byte = *bytes.get(*at)?;
        *at += 1;
        if shift == 28 && byte > 0x0f {
            return None;
        }
        value |= u32::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Bits needed to write `gap` (0 for 0).
#[inline]
fn bit_len(gap: u32) -> u8 {
    (32 - gap.leading_zeros()) as u8
}

/// The four gap widths of one book, in bits, non-decreasing; a gap is
/// written in the first that holds it, so the last holds the widest gap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Widths([u8; 4]);

impl Widths {
    /// The widths that write `gaps` in the fewest bits: the widest gap's
    /// width last, and the three others from the widths that occur. For
    /// the cheapest `c` above each `b`, then the cheapest `b` above each
    /// `a`: each step depends only on the width below it, so the search
    /// takes the square of the distinct widths (a dozen or so in a book),
    /// not the cube. It runs on the writer for every book stored.
    pub fn choose(gaps: impl Iterator<Item = u32>) -> Widths {
        let mut counts = [0u32; 33];
        for gap in gaps {
            counts[usize::from(bit_len(gap))] += 1;
        }
        let mut present = [0u8; 33];
        let mut distinct = 0;
        for width in 0..=32u8 {
            if counts[usize::from(width)] > 0 {
                present[distinct] = width;
                distinct += 1;
            }
        }
        if distinct == 0 {
            return Widths::default();
        }
        let widest = present[distinct - 1];
        if distinct <= 4 {
            let mut widths = [widest; 4];
            widths[..distinct].copy_from_slice(&present[..distinct]);
            return Widths(widths);
        }
        // at_most[i]: gaps of width at most present[i].
        let mut at_most = [0u64; 33];
        let mut running = 0u64;
        for i in 0..distinct {
            running += u64::from(counts[usize::from(present[i])]);
            at_most[i] = running;
        }
        let width = |i: usize| u64::from(present[i]);
        let last = distinct - 1;
        // above_c[j]: the fewest bits for the gaps wider than present[j],
        // with one more width below the widest, and that width's index.
        let mut above_c = [(u64::MAX, 0usize); 33];
        for j in 0..last {
            for c in j + 1..last {
                let bits = width(c) * (at_most[c] - at_most[j]) + width(last) * (at_most[last] - at_most[c]);
                if bits < above_c[j].0 {
                    above_c[j] = (bits, c);
                }
            }
        }
        let mut best = (u64::MAX, Widths([widest; 4]));
        for a in 0..last {
            for b in a + 1..last.saturating_sub(1) {
                let (rest, c) = above_c[b];
                if rest == u64::MAX {
                    continue;
                }
                let bits = width(a) * at_most[a] + width(b) * (at_most[b] - at_most[a]) + rest;
                if bits < best.0 {
                    best = (bits, Widths([present[a], present[b], present[c], widest]));
                }
            }
        }
        best.1
    }

    /// For each bit length 0..=32, the selector of a gap of that length
    /// (the first width that holds it; 3 past the widest).
    fn selectors(self) -> [u8; 33] {
        let mut selectors = [3u8; 33];
        for (length, selector) in selectors.iter_mut().enumerate() {
            if let Some(position) = self.0.iter().position(|&width| usize::from(width) >= length) {
                *selector = position as u8;
            }
        }
        selectors
    }

    fn pack(self) -> [u8; 3] {
        let [a, b, c, d] = self.0.map(u32::from);
        let packed = a | b << 6 | c << 12 | d << 18;
        [packed as u8, (packed >> 8) as u8, (packed >> 16) as u8]
    }

    fn unpack(bytes: [u8; 3]) -> Widths {
        let packed = u32::from(bytes[0]) | u32::from(bytes[1]) << 8 | u32::from(bytes[2]) << 16;
        Widths([0, 6, 12, 18].map(|shift| ((packed >> shift) & 0x3f).min(32) as u8))
    }
}

/// Writes bits from the lowest up onto the end of a byte vector.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    /// Bits not yet written out, from the lowest; fewer than 8 between calls.
    pending: u64,
    pending_bits: u32,
    /// Bits written since the writer began.
    written: u64,
}

impl BitWriter<'_> {
    /// Appends the low `bits` bits of `value` (`bits` at most 34): the
    /// whole bytes pending go out in one 8-byte write, cut back to them.
    #[inline]
    fn put(&mut self, value: u64, bits: u32) {
        debug_assert!(bits <= 34 && self.pending_bits < 8);
        self.pending |= value << self.pending_bits;
        self.pending_bits += bits;
        self.written += u64::from(bits);
        let whole = self.pending_bits / 8;
        let len = self.out.len();
        self.out.extend_from_slice(&self.pending.to_le_bytes());
        self.out.truncate(len + whole as usize);
        // At most 7 bits were pending and 34 came: `whole` is at most 5.
        self.pending >>= whole * 8;
        self.pending_bits -= whole * 8;
    }

    fn finish(self) {
        if self.pending_bits > 0 {
            self.out.push(self.pending as u8);
        }
    }
}

/// The 8 bytes of `stream` from `byte` on, little-endian (zeros past its end).
#[inline]
fn word_at(stream: &[u8], byte: usize) -> u64 {
    match stream.get(byte..byte + 8) {
        Some(eight) => u64::from_le_bytes(eight.try_into().unwrap_or([0; 8])),
        None => {
            let mut eight = [0u8; 8];
            let rest = stream.get(byte..).unwrap_or(&[]);
            eight[..rest.len()].copy_from_slice(rest);
            u64::from_le_bytes(eight)
        }
    }
}

/// Reads a book's gaps from its gap stream, a word at a time: the next bits
/// wait in a register, so reading a gap is a few shifts and masks (its width
/// from the book's four, held in a register too).
#[derive(Clone)]
struct GapReader<'a> {
    stream: &'a [u8],
    /// The next byte of `stream` not yet in `buffer`.
    next_byte: usize,
    /// Bits from the lowest up; the lowest `available` are the stream's next.
    buffer: u64,
    available: u32,
    /// The four widths, one a byte from the lowest.
    widths: u32,
}

impl<'a> GapReader<'a> {
    fn new(stream: &'a [u8], bit: usize, widths: Widths) -> GapReader<'a> {
        let mut reader =
            GapReader { stream, next_byte: bit / 8, buffer: 0, available: 0, widths: u32::from_le_bytes(widths.0) };
        reader.refill();
        let skip = (bit % 8) as u32;
        reader.buffer >>= skip;
        reader.available -= skip;
        reader
    }

    /// Tops the buffer up to at least 56 bits. The bits above those counted
    /// are the next byte's low bits, or zero: putting them in again is a
    /// no-op.
    #[inline]
    fn refill(&mut self) {
        self.buffer |= word_at(self.stream, self.next_byte) << self.available;
        let bytes = (63 - self.available) / 8;
        self.next_byte += bytes as usize;
        self.available += bytes * 8;
    }

    #[inline]
    fn gap(&mut self) -> u32 {
        self.refill();
        let width = (self.widths >> ((self.buffer as u32 & 3) * 8)) & 0xff;
        let gap = ((self.buffer >> 2) & ((1u64 << width) - 1)) as u32;
        self.buffer >>= 2 + width;
        self.available -= 2 + width;
        gap
    }

    /// Bits of the stream read so far.
    fn bit(&self) -> usize {
        self.next_byte * 8 - self.available as usize
    }
}

/// Encodes sorted, deduplicated, non-empty `contacts` (layout in the module
/// doc) onto the end of `out`. Returns the encoded length.
pub fn encode_book<const B: usize>(contacts: &[u32], out: &mut Vec<u8>) -> usize {
    debug_assert!(!contacts.is_empty());
    debug_assert!(contacts.windows(2).all(|pair| pair[0] < pair[1]), "book not sorted and deduplicated");
    let begin = out.len();
    put_varint(out, contacts.len() as u32);
    let widths = Widths::choose(contacts.windows(2).map(|pair| pair[1] - pair[0] - 1));
    let selectors = widths.selectors();
    if contacts.len() >= 2 {
        out.extend_from_slice(&widths.pack());
    }
    let skips = (contacts.len() - 1) / B;
    let table = out.len();
    out.resize(table + skips * 8, 0);
    put_varint(out, contacts[0]);
    let mut writer = BitWriter { out, pending: 0, pending_bits: 0, written: 0 };
    for (i, pair) in contacts.windows(2).enumerate() {
        let gap = pair[1] - pair[0] - 1;
        let selector = selectors[usize::from(bit_len(gap))];
        writer.put(u64::from(selector) | u64::from(gap) << 2, 2 + u32::from(widths.0[usize::from(selector)]));
        // `pair[1]` is contact i + 1: a skip entry starts each block after
        // the first, at the gap after its first contact.
        let next = i + 1;
        if next % B == 0 {
            let entry = table + (next / B - 1) * 8;
            let offset = writer.written as u32;
            writer.out[entry..entry + 4].copy_from_slice(&pair[1].to_le_bytes());
            writer.out[entry + 4..entry + 8].copy_from_slice(&offset.to_le_bytes());
        }
    }
    writer.finish();
    out.len() - begin
}

/// One encoded book, borrowed from the arena, with a skip entry every `B`
/// contacts (`BLOCK` in the arena; other values only to measure them).
#[derive(Clone, Copy)]
pub struct Book<'a, const B: usize = BLOCK> {
    len: u32,
    widths: Widths,
    first: u32,
    /// The skip table: `(len - 1) / BLOCK` entries of 8 bytes.
    skips: &'a [u8],
    /// The gap stream, and maybe more bytes after it (the next books).
    stream: &'a [u8],
}

impl<'a, const B: usize> Book<'a, B> {
    /// The book that starts at `bytes[0]` (bytes after it are ignored).
    /// Only for bytes [`encode_book`] wrote with the same `B`.
    #[inline]
    pub fn at(bytes: &'a [u8]) -> Self {
        let mut at = 0;
        let len = get_varint(bytes, &mut at).unwrap_or(0);
        if len == 0 {
            return Self::EMPTY;
        }
        let widths = match bytes.get(at..at + 3) {
            Some(&[a, b, c]) if len >= 2 => {
                at += 3;
                Widths::unpack([a, b, c])
            }
            _ => Widths::default(),
        };
        let skips_end = (at + ((len - 1) as usize / B) * 8).min(bytes.len());
        let skips = &bytes[at..skips_end];
        let mut at = skips_end;
        let first = get_varint(bytes, &mut at).unwrap_or(0);
        Book { len, widths, first, skips, stream: &bytes[at..] }
    }

    pub const EMPTY: Book<'static, B> = Book { len: 0, widths: Widths([0; 4]), first: 0, skips: &[], stream: &[] };

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The contacts in increasing order.
    pub fn iter(&self) -> BookIter<'a> {
        BookIter { gaps: GapReader::new(self.stream, 0, self.widths), left: self.len, next: self.first, floor: None }
    }

    /// Whether `contact` is in the book: a binary search over the skip
    /// table, then a scan of at most one block.
    pub fn contains(&self, contact: u32) -> bool {
        if self.len == 0 {
            return false;
        }
        // The last skip entry whose contact is <= `contact`.
        let entries = self.skips.len() / 8;
        let (mut low, mut high) = (0usize, entries);
        while low < high {
            let middle = (low + high) / 2;
            if read_u32(self.skips, middle * 8) <= contact {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        let (mut current, bit, mut left) = if low == 0 {
            (self.first, 0, (self.len as usize).min(B) - 1)
        } else {
            let entry = (low - 1) * 8;
            let start = read_u32(self.skips, entry);
            let offset = read_u32(self.skips, entry + 4) as usize;
            (start, offset, (self.len as usize - low * B).min(B) - 1)
        };
        if current >= contact || left == 0 {
            return current == contact;
        }
        let mut gaps = GapReader::new(self.stream, bit, self.widths);
        while current < contact && left > 0 {
            current = current.wrapping_add(gaps.gap()).wrapping_add(1);
            left -= 1;
        }
        current == contact
    }

    /// Appends the contacts to `out` (after clearing it).
    pub fn decode_into(&self, out: &mut Vec<u32>) {
        out.clear();
        out.reserve(self.len as usize);
        out.extend(self.iter());
    }
}

impl<'a, const B: usize> IntoIterator for Book<'a, B> {
    type Item = u32;
    type IntoIter = BookIter<'a>;
    fn into_iter(self) -> BookIter<'a> {
        self.iter()
    }
}

/// The contacts of a [`Book`], decoded as they are read.
#[derive(Clone)]
pub struct BookIter<'a> {
    gaps: GapReader<'a>,
    left: u32,
    /// The first contact, until it is read.
    next: u32,
    /// The contact read last (`None` before the first).
    floor: Option<u32>,
}

impl BookIter<'_> {
    /// Bytes of the gap stream read so far (the whole stream, once every
    /// contact is read).
    fn stream_bytes(&self) -> usize {
        self.gaps.bit().div_ceil(8)
    }
}

impl Iterator for BookIter<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let contact = match self.floor {
            None => self.next,
            Some(previous) => previous.wrapping_add(self.gaps.gap()).wrapping_add(1),
        };
        self.floor = Some(contact);
        Some(contact)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl ExactSizeIterator for BookIter<'_> {}

/// Every owner's book in one arena.
#[derive(Default)]
pub struct Books {
    /// By owner: 1 + the byte offset of its book in `arena`; 0: no book.
    starts: Vec<u32>,
    arena: Vec<u8>,
    /// Bytes in `arena` no owner points at (replaced and erased books).
    garbage: usize,
    /// Owners with a non-empty book.
    owners: usize,
}

impl Books {
    pub fn get(&self, owner: u32) -> Book<'_> {
        match self.starts.get(owner as usize) {
            Some(&start) if start > 0 => Book::<BLOCK>::at(&self.arena[start as usize - 1..]),
            _ => Book::<BLOCK>::EMPTY,
        }
    }

    /// Owners with a non-empty book.
    pub fn owners(&self) -> usize {
        self.owners
    }

    /// Every owner with a non-empty book, in owner order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, Book<'_>)> + '_ {
        self.starts
            .iter()
            .enumerate()
            .filter(|(_, &start)| start > 0)
            .map(|(owner, &start)| (owner as u32, Book::<BLOCK>::at(&self.arena[start as usize - 1..])))
    }

    /// Replaces `owner`'s book with sorted, deduplicated `contacts` (empty:
    /// removes it). The old book's bytes become garbage; when garbage is
    /// more than a third of the arena, the arena is compacted (each byte
    /// written is copied at most about twice more, amortised).
    pub fn set(&mut self, owner: u32, contacts: &[u32]) {
        let index = owner as usize;
        if let Some(&start) = self.starts.get(index) {
            if start > 0 {
                self.garbage += self.encoded_len(start);
                self.starts[index] = 0;
                self.owners -= 1;
            }
        }
        if !contacts.is_empty() {
            if self.starts.len() <= index {
                self.starts.resize(index + 1, 0);
            }
            if self.arena.len() + worst_len(contacts.len()) > ARENA_LIMIT {
                self.compact();
            }
            let start = self.arena.len();
            encode_book::<BLOCK>(contacts, &mut self.arena);
            assert!(self.arena.len() <= ARENA_LIMIT, "{ARENA_FULL}");
            self.starts[index] = start as u32 + 1;
            self.owners += 1;
        }
        if self.garbage > 4096 && self.garbage * 3 > self.arena.len() {
            self.compact();
        }
    }

    /// Encoded length of the book at arena offset `start - 1`.
    fn encoded_len(&self, start: u32) -> usize {
        let begin = start as usize - 1;
        let book = Book::<BLOCK>::at(&self.arena[begin..]);
        let mut iter = book.iter();
        for _ in iter.by_ref() {}
        let stream_begin = self.arena.len() - book.stream.len();
        stream_begin + iter.stream_bytes() - begin
    }

    /// Moves every live book down over the garbage, in arena order, and
    /// gives the freed tail back.
    pub fn compact(&mut self) {
        if self.garbage == 0 {
            return;
        }
        let mut live: Vec<(u32, u32)> = self
            .starts
            .iter()
            .enumerate()
            .filter(|(_, &start)| start > 0)
            .map(|(owner, &start)| (start, owner as u32))
            .collect();
        live.sort_unstable();
        let mut write = 0usize;
        for (start, owner) in live {
            let begin = start as usize - 1;
            let len = self.encoded_len(start);
            self.arena.copy_within(begin..begin + len, write);
            self.starts[owner as usize] = write as u32 + 1;
            write += len;
        }
        self.arena.truncate(write);
        self.arena.shrink_to_fit();
        self.garbage = 0;
    }

    /// Heap bytes held (capacity, not only what is used).
    pub fn heap_bytes(&self) -> usize {
        self.starts.capacity() * 4 + self.arena.capacity()
    }
}

/// Snapshot form: a sequence of `(owner, gaps)`, where `gaps` is the gap
/// stream as `u32`s (postcard writes each as the same varint the arena
/// holds). The skip tables are rebuilt on load, so `BLOCK` can change
/// without a new snapshot version.
impl Serialize for Books {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Gaps<'a>(Book<'a>);
        impl Serialize for Gaps<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
                let mut previous: Option<u32> = None;
                for contact in self.0.iter() {
                    seq.serialize_element(&previous.map_or(contact, |previous| contact - previous - 1))?;
                    previous = Some(contact);
                }
                seq.end()
            }
        }
        let mut seq = serializer.serialize_seq(Some(self.owners))?;
        for (owner, book) in self.iter() {
            seq.serialize_element(&(owner, Gaps(book)))?;
        }
        seq.end()
    }
}

/// Books as a snapshot holds them, re-encoded but not yet placed by owner:
/// [`Books::from_stored`] checks owners and contacts against the subject
/// registry before it sizes anything by them.
pub struct StoredBooks {
    /// (owner, 1 + offset in `arena`), in the snapshot's order.
    entries: Vec<(u32, u32)>,
    arena: Vec<u8>,
    /// The largest contact in any book (0 when there is none).
    max_contact: u32,
}

/// Why stored books cannot be placed in one arena.
const ARENA_FULL: &str = "address books exceed the 4 GiB arena";

impl StoredBooks {
    fn new() -> StoredBooks {
        StoredBooks { entries: Vec::new(), arena: Vec::new(), max_contact: 0 }
    }

    /// Encodes `owner`'s book (`contacts` sorted, distinct, not empty) onto
    /// the arena, unless it would pass [`ARENA_LIMIT`].
    fn push(&mut self, owner: u32, contacts: &[u32]) -> Result<(), &'static str> {
        if self.arena.len() + worst_len(contacts.len()) > ARENA_LIMIT {
            return Err(ARENA_FULL);
        }
        self.max_contact = self.max_contact.max(contacts[contacts.len() - 1]);
        let start = self.arena.len() as u32 + 1;
        encode_book::<BLOCK>(contacts, &mut self.arena);
        self.entries.push((owner, start));
        Ok(())
    }
}

impl<'de> Deserialize<'de> for StoredBooks {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BooksVisitor;
        impl<'de> Visitor<'de> for BooksVisitor {
            type Value = StoredBooks;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a sequence of (owner, contact gaps)")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StoredBooks, A::Error> {
                let overflow = || serde::de::Error::custom("address book gap overflows a subject index");
                let mut stored = StoredBooks::new();
                let mut contacts = Vec::new();
                while let Some((owner, gaps)) = seq.next_element::<(u32, Vec<u32>)>()? {
                    if gaps.is_empty() {
                        continue;
                    }
                    contacts.clear();
                    let mut previous: Option<u32> = None;
                    for gap in gaps {
                        let contact = match previous {
                            None => gap,
                            Some(previous) => {
                                previous.checked_add(1).and_then(|floor| floor.checked_add(gap)).ok_or_else(overflow)?
                            }
                        };
                        contacts.push(contact);
                        previous = Some(contact);
                    }
                    stored.push(owner, &contacts).map_err(serde::de::Error::custom)?;
                }
                Ok(stored)
            }
        }
        deserializer.deserialize_seq(BooksVisitor)
    }
}

impl Books {
    /// Places stored books by owner. Every owner and contact must be below
    /// `subjects` (the registry's length: indexes are never reused), and an
    /// owner may appear once.
    pub fn from_stored(stored: StoredBooks, subjects: usize) -> Result<Books, String> {
        let StoredBooks { entries, mut arena, max_contact } = stored;
        if !entries.is_empty() && max_contact as usize >= subjects {
            return Err(format!("address book contact {max_contact} is not a subject (registry holds {subjects})"));
        }
        let owner_slots = entries.iter().map(|&(owner, _)| owner as usize + 1).max().unwrap_or(0);
        if owner_slots > subjects {
            return Err(format!("address book owner {} is not a subject (registry holds {subjects})", owner_slots - 1));
        }
        let mut starts = vec![0u32; owner_slots];
        for &(owner, start) in &entries {
            if std::mem::replace(&mut starts[owner as usize], start) != 0 {
                return Err(format!("address book of owner {owner} stored twice"));
            }
        }
        arena.shrink_to_fit();
        Ok(Books { starts, arena, garbage: 0, owners: entries.len() })
    }

    /// Books from sorted, deduplicated lists (an older snapshot's layout),
    /// with the same checks as [`Books::from_stored`].
    pub fn from_lists<'a>(lists: impl IntoIterator<Item = (u32, &'a [u32])>, subjects: usize) -> Result<Books, String> {
        let mut stored = StoredBooks::new();
        for (owner, contacts) in lists {
            if contacts.is_empty() {
                continue;
            }
            if !contacts.windows(2).all(|pair| pair[0] < pair[1]) {
                return Err(format!("address book of owner {owner} is not sorted"));
            }
            stored.push(owner, contacts)?;
        }
        Books::from_stored(stored, subjects)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// Books of up to 300 contacts (several skip blocks) drawn from small
    /// values, values near `u32::MAX`, and wide gaps, so one-byte, five-byte
    /// and mixed varints all occur.
    fn contacts() -> impl Strategy<Value = Vec<u32>> {
        let value = prop_oneof![0u32..300, (u32::MAX - 300)..=u32::MAX, any::<u32>()];
        proptest::collection::vec(value, 0..300).prop_map(|mut values| {
            values.sort_unstable();
            values.dedup();
            values
        })
    }

    #[derive(Clone, Debug)]
    enum Step {
        Set(u32, Vec<u32>),
        Remove(u32),
        Compact,
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        let step = prop_oneof![
            6 => (0u32..40, contacts()).prop_map(|(owner, book)| Step::Set(owner, book)),
            2 => (0u32..40).prop_map(Step::Remove),
            1 => Just(Step::Compact),
        ];
        proptest::collection::vec(step, 1..60)
    }

    /// Every owner's book answers membership and iteration exactly as the
    /// sorted list it was given.
    fn assert_same(books: &Books, model: &BTreeMap<u32, Vec<u32>>, probes: &[u32]) {
        assert_eq!(books.owners(), model.len());
        for owner in 0..41 {
            let want = model.get(&owner).cloned().unwrap_or_default();
            let book = books.get(owner);
            assert_eq!(book.len(), want.len());
            assert_eq!(book.iter().collect::<Vec<_>>(), want, "owner {owner}");
            for &contact in want.iter().chain(probes) {
                assert_eq!(book.contains(contact), want.binary_search(&contact).is_ok(), "owner {owner} {contact}");
            }
            // Just beside every member: the scan must stop at the right place.
            for &contact in &want {
                for near in [contact.wrapping_sub(1), contact.wrapping_add(1)] {
                    assert_eq!(book.contains(near), want.binary_search(&near).is_ok());
                }
            }
        }
        let listed: Vec<u32> = books.iter().map(|(owner, _)| owner).collect();
        assert_eq!(listed, model.keys().copied().collect::<Vec<_>>());
    }

    /// Bits `gaps` take in `widths` (each gap in the first width that
    /// holds it, after its 2-bit selector); `None` when none holds one.
    fn bits_in(widths: [u8; 4], gaps: &[u32]) -> Option<u64> {
        gaps.iter()
            .map(|&gap| widths.iter().find(|&&width| width >= bit_len(gap)).map(|&width| 2 + u64::from(width)))
            .sum()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The widths a book picks write its gaps in as few bits as any
        /// four widths can, and pack and unpack unchanged.
        #[test]
        fn chosen_widths_are_the_shortest(gaps in proptest::collection::vec(prop_oneof![0u32..20, 0u32..5000, any::<u32>().prop_map(|g| g >> (g % 32))], 1..40)) {
            let chosen = Widths::choose(gaps.iter().copied());
            prop_assert_eq!(Widths::unpack(chosen.pack()), chosen);
            let best = bits_in(chosen.0, &gaps).expect("the widest gap fits");
            // Any four widths must end at least at the widest gap's width,
            // and ending beyond it only costs more.
            let widest = gaps.iter().map(|&gap| bit_len(gap)).max().unwrap_or(0);
            for a in 0..=widest {
                for b in a..=widest {
                    for c in b..=widest {
                        let bits = bits_in([a, b, c, widest], &gaps).expect("the widest gap fits");
                        prop_assert!(best <= bits, "{:?} takes {} bits, [{}, {}, {}, {}] {}", chosen, best, a, b, c, widest, bits);
                    }
                }
            }
        }

        /// Replacing, erasing and compacting books keeps every answer equal
        /// to a plain sorted `Vec` per owner, and the snapshot form loads
        /// back to the same answers; the arena never holds more garbage than
        /// compaction allows.
        #[test]
        fn packed_books_answer_like_sorted_vecs(steps in steps(), probes in proptest::collection::vec(any::<u32>(), 0..20)) {
            let mut books = Books::default();
            let mut model: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
            for step in steps {
                match step {
                    Step::Set(owner, book) => {
                        books.set(owner, &book);
                        if book.is_empty() { model.remove(&owner); } else { model.insert(owner, book); }
                    }
                    Step::Remove(owner) => {
                        books.set(owner, &[]);
                        model.remove(&owner);
                    }
                    Step::Compact => books.compact(),
                }
                prop_assert!(books.garbage <= 4096 || books.garbage * 3 <= books.arena.len());
                assert_same(&books, &model, &probes);
            }
            let bytes = postcard::to_stdvec(&books).expect("encode");
            let stored: StoredBooks = postcard::from_bytes(&bytes).expect("decode");
            let loaded = Books::from_stored(stored, u32::MAX as usize + 1).expect("valid");
            assert_same(&loaded, &model, &probes);
            prop_assert_eq!(loaded.garbage, 0);
            let lists = model.iter().map(|(&owner, book)| (owner, &book[..]));
            assert_same(&Books::from_lists(lists, u32::MAX as usize + 1).expect("valid"), &model, &probes);
        }
    }

    /// A stored owner or contact outside the registry, or a gap running past
    /// `u32::MAX`, is an error, never an allocation sized by it.
    #[test]
    fn stored_books_are_checked_against_the_registry() {
        let mut books = Books::default();
        books.set(3, &[1, 7]);
        let bytes = postcard::to_stdvec(&books).expect("encode");
        let load = |subjects| Books::from_stored(postcard::from_bytes(&bytes).expect("decode"), subjects);
        assert!(load(8).is_ok());
        assert!(load(7).is_err(), "contact 7 is not a subject");
        let mut owner_far = Books::default();
        owner_far.set(3, &[1]);
        let mut bytes = postcard::to_stdvec(&owner_far).expect("encode");
        bytes[1] = 0x7f; // owner 127
        assert!(Books::from_stored(postcard::from_bytes(&bytes).expect("decode"), 8).is_err());
        // One book, owner 0, gaps [u32::MAX, 0]: the second contact overflows.
        let overflowing = postcard::to_stdvec(&vec![(0u32, vec![u32::MAX, 0u32])]).expect("encode");
        assert!(postcard::from_bytes::<StoredBooks>(&overflowing).is_err());
        let twice = postcard::to_stdvec(&vec![(0u32, vec![1u32]), (0u32, vec![2u32])]).expect("encode");
        assert!(Books::from_stored(postcard::from_bytes(&twice).expect("decode"), 8).is_err());
    }
}
