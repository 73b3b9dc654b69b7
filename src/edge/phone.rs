//! Phone numbers: any written form -> E.164 -> keyed pseudonym, with a cache.
//!
//! libphonenumber parsing and validation cost 30-70 µs per number, while real
//! traffic repeats the same few written forms per account, so each distinct
//! (region, written form) is normalised once and its outcome cached. The cache
//! lives in memory only and is never persisted, logged or exposed.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::RwLock;

use super::error::{EdgeError, RejectReason};
use super::key::PseudonymKey;
use super::packed_table::PackedTable;
use crate::contract::{Pseudonym, Region};

/// Longest written form accepted; real numbers with spacing fit in 32.
const MAX_WRITTEN_LEN: usize = 48;
const SHARDS: usize = 64;
/// Entries per shard before that shard is cleared (bounds memory at roughly
/// 64 shards × 65,536 slots of 40 B ≈ 168 MB in the worst case: the packed
/// keys' table is at most half full).
const SHARD_CAPACITY: usize = 32_768;

type Outcome = Result<(Pseudonym, Region), PhoneFault>;

/// A phone number as written in a request, borrowed from the line: the edge's
/// input and the only form a raw number takes in proviso.
///
/// It has no `Display`, `Serialize`, `Clone` or `Copy`, and its `Debug` shows
/// only the last two digits, so a number cannot reach a log line, an error
/// message or a file by accident. Only the edge makes one
/// (`RawNumber::written` is private to `edge/`), and the only thing to do
/// with it is hand it to [`PhoneBook::resolve`], which consumes it.
pub struct RawNumber<'a> {
    written: &'a str,
}

impl<'a> RawNumber<'a> {
    /// Wraps a written number read from a request by the edge.
    pub(super) fn written(written: &'a str) -> RawNumber<'a> {
        RawNumber { written }
    }
}

impl std::fmt::Debug for RawNumber<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawNumber(…{})", last_two_digits(self.written))
    }
}

/// The shard that caches a key of hash `hash`. Bits 32.. pick it: the
/// table inside the shard uses the low bits for slots, so the shard choice
/// must not fix them (with low bits, every key of a shard would probe one
/// chain).
fn shard_of(hash: u64) -> usize {
    ((hash >> 32) as usize) % SHARDS
}

/// A valid number in E.164 form, between parsing and hashing; as private
/// as [`RawNumber`], and consumed by [`PhoneBook::pseudonym_of`].
struct E164(String);
/// One lock's worth of the cache: cache key -> outcome. Keys of digits
/// (nearly all) are packed into a `u128` kept inline in the table, so a hit
/// costs one probe of the table and no pointer chase to a boxed key (with
/// millions of entries each of those is a cache miss: boxed keys made cache
/// hits a quarter of ingest's time). The packed keys' table is proviso's
/// own ([`PackedTable`]), so an address book's lookups can be fetched ahead.
struct Shard {
    packed: PackedTable<Outcome>,
    written: HashMap<Box<[u8]>, Outcome, foldhash::fast::RandomState>,
}

impl Shard {
    fn new(hasher: &foldhash::fast::RandomState) -> Shard {
        Shard { packed: PackedTable::with_hasher(hasher.clone()), written: HashMap::default() }
    }

    /// The outcome cached for `key`, whose hash is `hash`.
    fn get(&self, key: CacheKey<'_>, hash: u64) -> Option<Outcome> {
        match key {
            CacheKey::Packed(packed) => self.packed.get(packed, hash),
            CacheKey::Written(written) => self.written.get(written).copied(),
        }
    }

    fn insert(&mut self, key: CacheKey<'_>, hash: u64, outcome: Outcome) {
        if self.packed.len() + self.written.len() >= SHARD_CAPACITY {
            self.packed.clear();
            self.written.clear();
        }
        match key {
            CacheKey::Packed(packed) => self.packed.insert(packed, hash, outcome),
            CacheKey::Written(written) => {
                self.written.insert(written.into(), outcome);
            }
        }
    }
}

/// A cache key as the table holds it.
#[derive(Clone, Copy)]
enum CacheKey<'a> {
    /// Region (or `++`), international flag and up to 24 digits, packed.
    Packed(u128),
    /// Anything else: the key's bytes.
    Written(&'a [u8]),
}

/// Most digits a packed key holds (4 bits each, 96 bits).
const PACKED_DIGITS: usize = 24;

impl<'a> CacheKey<'a> {
    /// Packs a [`cache_key`] of digits: bits 120.. and 112.. the region
    /// bytes, 104 the international flag, 96.. the digit count, then one
    /// nibble a digit, first digit highest. Distinct keys pack distinctly.
    fn of(key: &'a [u8]) -> CacheKey<'a> {
        let digits = key.get(3..).unwrap_or_default();
        let plain = matches!(key.get(2), Some(b'+') | Some(b'#'));
        if !plain || digits.len() > PACKED_DIGITS || !digits.iter().all(u8::is_ascii_digit) {
            return CacheKey::Written(key);
        }
        let mut packed = u128::from(key[0]) << 120
            | u128::from(key[1]) << 112
            | u128::from(key[2] == b'+') << 104
            | (digits.len() as u128) << 96;
        for (index, digit) in digits.iter().enumerate() {
            packed |= u128::from(digit - b'0') << (92 - 4 * index);
        }
        CacheKey::Packed(packed)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PhoneFault {
    NotANumber,
    Invalid,
}

pub struct PhoneBook {
    key: PseudonymKey,
    default_region: Region,
    shards: Vec<RwLock<Shard>>,
    hasher: foldhash::fast::RandomState,
}

impl PhoneBook {
    pub(super) fn key(&self) -> &PseudonymKey {
        &self.key
    }

    pub fn new(key: PseudonymKey, default_region: Region) -> PhoneBook {
        let hasher = foldhash::fast::RandomState::default();
        PhoneBook {
            key,
            default_region,
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::new(&hasher))).collect(),
            hasher,
        }
    }

    /// Resolves a written number read in `region` (else the default region).
    pub fn resolve(
        &self,
        number: RawNumber<'_>,
        region: Option<Region>,
        field: &'static str,
    ) -> Result<(Pseudonym, Region), EdgeError> {
        let written = number.written;
        if written.len() > MAX_WRITTEN_LEN {
            return Err(EdgeError::new(
                RejectReason::InvalidPhone,
                Some(field),
                format!("field `{field}` is not a phone number (longer than {MAX_WRITTEN_LEN} characters)"),
            ));
        }
        let region = region.unwrap_or(self.default_region);
        let mut key_buffer = [0u8; MAX_WRITTEN_LEN + 3];
        let cache_key = cache_key(written, region, &mut key_buffer);
        let packed = CacheKey::of(cache_key);
        let hash = self.hash_of(packed);
        let shard = &self.shards[shard_of(hash)];

        let cached = shard.read().ok().and_then(|map| map.get(packed, hash));
        let outcome = match cached {
            Some(outcome) => outcome,
            None => {
                let outcome = self.normalise_uncached(written, region, cache_key);
                if let Ok(mut map) = shard.write() {
                    map.insert(packed, hash, outcome);
                }
                outcome
            }
        };
        outcome.map_err(|fault| {
            let ending = last_two_digits(written);
            let what = match fault {
                PhoneFault::NotANumber => "is not a phone number",
                PhoneFault::Invalid => "is not a valid phone number",
            };
            EdgeError::new(RejectReason::InvalidPhone, Some(field), format!("field `{field}` {what} (ending {ending})"))
        })
    }

    /// Resolves every number of one address book, read in `region` (else
    /// the default region): the same answers, and the same error (the first
    /// refused number's, in book order), as [`PhoneBook::resolve`] called on
    /// each in turn. Faster: the cached numbers (nearly all, once traffic
    /// has been seen) are looked up together: every slot they read first is
    /// asked of the processor before any is read, so their cache misses
    /// overlap instead of coming one after another. The rest go through
    /// [`PhoneBook::resolve`] in book order.
    pub fn resolve_book(
        &self,
        numbers: Vec<RawNumber<'_>>,
        region: Option<Region>,
        field: &'static str,
    ) -> Result<Vec<Pseudonym>, EdgeError> {
        let region = region.unwrap_or(self.default_region);
        let mut found: Vec<Option<Pseudonym>> = vec![None; numbers.len()];
        // (shard, packed key, its hash, index in the book), for the packed keys.
        let mut keyed: Vec<(usize, u128, u64, usize)> = Vec::with_capacity(numbers.len());
        let mut key_buffer = [0u8; MAX_WRITTEN_LEN + 3];
        for (index, number) in numbers.iter().enumerate() {
            if number.written.len() > MAX_WRITTEN_LEN {
                continue;
            }
            if let CacheKey::Packed(packed) = CacheKey::of(cache_key(number.written, region, &mut key_buffer)) {
                let hash = self.hash_of(CacheKey::Packed(packed));
                keyed.push((shard_of(hash), packed, hash, index));
            }
        }
        keyed.sort_unstable_by_key(|&(shard, ..)| shard);
        // Every shard the book touches, read-locked in ascending order (a
        // writer holds one shard and waits for nothing else, so readers
        // that lock in one order cannot wait on each other in a cycle);
        // then every slot asked for first, then every lookup.
        let mut guards = Vec::new();
        for run in keyed.chunk_by(|a, b| a.0 == b.0) {
            if let Ok(map) = self.shards[run[0].0].read() {
                guards.push((run, map));
            }
        }
        for (run, map) in &guards {
            for &(_, _, hash, _) in *run {
                map.packed.prefetch(hash);
            }
        }
        for (run, map) in &guards {
            for &(_, packed, hash, index) in *run {
                if let Some(Ok((pseudonym, _))) = map.packed.get(packed, hash) {
                    found[index] = Some(pseudonym);
                }
            }
        }
        drop(guards);
        numbers
            .into_iter()
            .zip(found)
            .map(|(number, cached)| match cached {
                Some(pseudonym) => Ok(pseudonym),
                None => self.resolve(number, Some(region), field).map(|(pseudonym, _)| pseudonym),
            })
            .collect()
    }

    /// The hash of `key` that picks its shard and its slot in the shard.
    fn hash_of(&self, key: CacheKey<'_>) -> u64 {
        match key {
            CacheKey::Packed(packed) => self.hasher.hash_one(packed),
            CacheKey::Written(written) => self.hasher.hash_one(written),
        }
    }

    /// A cache miss. A spaced international form is read as `+` and its
    /// digits (the form its cache key already stands for). A national or
    /// `00`-style form whose region has plain prefix rules is first
    /// rewritten to the international form libphonenumber would read it as;
    /// when that form is a valid number the answer is the same and usually
    /// already cached (every number tends to arrive in both forms), so the
    /// parse runs once per number instead of once per written form.
    /// Anything else goes to `parse_valid`, which reads `+` and digits with
    /// the compiled matcher and leaves only other forms to the crate.
    fn normalise_uncached(&self, written: &str, region: Region, cache_key: &[u8]) -> Outcome {
        if let Some(international) = plain_international_digits(cache_key) {
            return self.normalise(&international, region);
        }
        if cache_key.get(2) == Some(&b'#') {
            if let Some(international) = plain_international(&cache_key[3..], region) {
                if let Ok(found) = self.resolve(RawNumber::written(&international), None, "phone") {
                    return Ok(found);
                }
            }
        }
        self.normalise(written, region)
    }

    fn normalise(&self, written: &str, region: Region) -> Outcome {
        let matched = parse_valid(written, region)?;
        Ok((self.pseudonym_of(E164(matched.e164)), matched.region))
    }

    /// The keyed pseudonym of an E.164 number: the one place a number
    /// becomes a pseudonym. The number is dropped here.
    fn pseudonym_of(&self, number: E164) -> Pseudonym {
        Pseudonym::from_keyed_hash(&blake3::keyed_hash(self.key.bytes(), number.0.as_bytes()))
    }
}

/// A written number read in `region`, parsed and checked by the compiled
/// matcher: its E.164 form and region, or why it is refused.
fn parse_valid(written: &str, region: Region) -> Result<super::matcher::Matched, PhoneFault> {
    use super::matcher::{parse_plus, valid_parts, Plus};
    // `+` and digits (every plain national form rewritten by
    // `plain_international`, and most numbers written international) are
    // read without the crate's parser and its regex cache.
    if let Some(digits) = written.strip_prefix('+').filter(|digits| digits.bytes().all(|b| b.is_ascii_digit())) {
        match parse_plus(digits) {
            Plus::Number { code, national } => return valid_parts(code, &national).ok_or(PhoneFault::Invalid),
            Plus::NotANumber => return Err(PhoneFault::NotANumber),
            Plus::AskTheCrate => {}
        }
    }
    // A number written with `+` carries its own country code. Passing a
    // region as well makes phonenumber 0.3 strip digits that look like
    // that region's international prefix (with US, "+55 11 9..." loses
    // its "11" area code), so international forms are parsed region-free.
    let region_id = if written.trim_start().starts_with('+') {
        None
    } else {
        region.as_str().parse::<phonenumber::country::Id>().ok()
    };
    note_crate_parse();
    let number = phonenumber::parse(region_id, written).map_err(|_| PhoneFault::NotANumber)?;
    super::matcher::valid(&number).ok_or(PhoneFault::Invalid)
}

/// What the edge makes of `written` read in `region`, as E.164 and region,
/// without a cache or a pseudonym: the same steps as
/// [`PhoneBook::resolve`] (a plain national or IDD form is first read as
/// the international form it stands for, when that is valid). Only for
/// holding the edge's answers against another library
/// (`agreement::dump`); `None` when the number is refused.
pub(super) fn edge_answer(written: &str, region: Region) -> Option<super::matcher::Matched> {
    let mut buffer = [0u8; MAX_WRITTEN_LEN + 3];
    if written.len() > MAX_WRITTEN_LEN {
        return None;
    }
    let key = cache_key(written, region, &mut buffer);
    if let Some(international) = plain_international_digits(key) {
        return parse_valid(&international, region).ok();
    }
    if key.get(2) == Some(&b'#') {
        if let Some(matched) = plain_international(&key[3..], region).and_then(|i| parse_valid(&i, region).ok()) {
            return Some(matched);
        }
    }
    parse_valid(written, region).ok()
}

/// The cache key of a written number: its region and its digits when it is
/// written with digits and separators only (so `+55 11 98710-7843` and
/// `+5511987107843` share one entry), else the whole written form. Numbers
/// written with `+` carry their own country, so the region is left out.
fn cache_key<'a>(written: &str, region: Region, buffer: &'a mut [u8; MAX_WRITTEN_LEN + 3]) -> &'a [u8] {
    let trimmed = written.trim();
    let plain = trimmed
        .bytes()
        .enumerate()
        .all(|(index, b)| b.is_ascii_digit() || b" -.()/".contains(&b) || (b == b'+' && index == 0));
    let international = trimmed.starts_with('+');
    buffer[..2].copy_from_slice(if plain && international { b"++" } else { &region.0 });
    let mut len = 2;
    if plain {
        buffer[len] = if international { b'+' } else { b'#' };
        len += 1;
        for digit in trimmed.bytes().filter(u8::is_ascii_digit) {
            buffer[len] = digit;
            len += 1;
        }
    } else {
        buffer[len..len + written.len()].copy_from_slice(written.as_bytes());
        len += written.len();
    }
    &buffer[..len]
}

/// A number written `+`, digits and separators only (`+55 11 98710-7843`),
/// as `+` and its digits: the form its cache entry stands for, which
/// [`parse_valid`] reads without the crate's parser. The crate reads both
/// forms alike (`agreement::check` holds that over its generated spaced
/// forms).
fn plain_international_digits(cache_key: &[u8]) -> Option<String> {
    if cache_key.get(..3) != Some(b"+++") {
        return None;
    }
    std::str::from_utf8(&cache_key[2..]).ok().map(str::to_string)
}

/// The international form (`+` and digits) that libphonenumber reads the
/// national-form `digits` of `region` as, when the region's rules are plain:
/// a digits-only international (IDD) prefix, and a digits-only national prefix
/// with no separate parsing rule or transform. `None` otherwise.
///
/// Callers use the answer only when it is a valid number: libphonenumber then
/// makes the same choices (it strips an IDD first, then a national prefix
/// whenever what remains is valid), so the pseudonym cannot differ.
fn plain_international(digits: &[u8], region: Region) -> Option<String> {
    let metadata = phonenumber::metadata::DATABASE.by_id(region.as_str())?;
    if metadata.national_prefix_for_parsing().is_some() || metadata.national_prefix_transform_rule().is_some() {
        return None;
    }
    let all_digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let digits = std::str::from_utf8(digits).ok()?;
    if let Some(idd) = metadata.international_prefix().map(|r| r.as_str()) {
        if !all_digits(idd) {
            return None;
        }
        if let Some(rest) = digits.strip_prefix(idd) {
            return Some(format!("+{rest}"));
        }
    }
    let national = match metadata.national_prefix() {
        Some(prefix) if !all_digits(prefix) => return None,
        Some(prefix) => digits.strip_prefix(prefix).unwrap_or(digits),
        None => digits,
    };
    Some(format!("+{}{national}", metadata.country_code()))
}

/// phonenumber 0.3 shares one 100-entry LRU of compiled regexes across all
/// regions, so validating numbers from a dozen countries recompiles regexes
/// constantly (measured: ~85 µs per number, most of it in regex compilation).
/// A cache large enough for the whole metadata set removes that.
pub(super) fn enlarge_regex_cache() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let cache = phonenumber::metadata::DATABASE.cache();
        if let Ok(mut cache) = cache.lock() {
            *cache = regex_cache::RegexCache::new(REGEX_CACHE_ENTRIES);
        };
    });
}

/// Counts one parse by the crate, and enlarges its regex cache at the
/// [`CRATE_PARSES_BEFORE_ENLARGING`]th. Not at start-up: the larger cache's
/// table alone takes about 1.9 MB, and most numbers never reach the crate
/// (numbers written `+` and digits, and plain national forms, are read by
/// the compiled matcher), so a node that parses a few with the crate, as a
/// served node answering lookups does, keeps the crate's own small cache
/// (bench/README.md, "Memory of a served node, continued").
fn note_crate_parse() {
    static PARSES: AtomicU32 = AtomicU32::new(0);
    if reaches(&PARSES, CRATE_PARSES_BEFORE_ENLARGING) {
        enlarge_regex_cache();
    }
}

/// Counts one on `counter`: `true` for exactly one call, the one that
/// brings it to `threshold`, however many threads count. The count stops
/// there, so it never wraps.
fn reaches(counter: &AtomicU32, threshold: u32) -> bool {
    counter.load(Ordering::Relaxed) < threshold && counter.fetch_add(1, Ordering::Relaxed) + 1 == threshold
}

/// Parses by the crate after which its regex cache is enlarged: past a
/// few hundred, recompiling evicted patterns (about 85 µs a parse) costs
/// more than the larger cache's memory.
const CRATE_PARSES_BEFORE_ENLARGING: u32 = 256;

/// Enough compiled regexes for every pattern of every region's metadata.
const REGEX_CACHE_ENTRIES: usize = 50_000;

/// `**45`-style hint: the last two digits of what was written, or `??`.
fn last_two_digits(written: &str) -> String {
    let digits: Vec<char> = written.chars().filter(char::is_ascii_digit).collect();
    match digits.len() {
        0 | 1 => "??".to_string(),
        n => format!("{}{}", digits[n - 2], digits[n - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The regex cache is enlarged once, at the threshold's parse, however
    /// many threads parse at once.
    #[test]
    fn the_threshold_is_reached_once() {
        let counter = AtomicU32::new(0);
        let reached = AtomicU32::new(0);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..1_000 {
                        if reaches(&counter, 256) {
                            reached.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(reached.load(Ordering::Relaxed), 1);
        assert!(counter.load(Ordering::Relaxed) < 256 + 4, "counting stops at the threshold");
        assert!(!reaches(&AtomicU32::new(0), 2), "the first of two parses is not the second");
    }

    fn key(region: &[u8; 2], international: bool, digits: &str) -> Vec<u8> {
        let mut key = region.to_vec();
        key.push(if international { b'+' } else { b'#' });
        key.extend_from_slice(digits.as_bytes());
        key
    }

    const REGIONS: [[u8; 2]; 3] = [*b"++", *b"IN", *b"US"];

    #[test]
    fn a_cached_outcome_takes_forty_bytes_of_the_table() {
        assert_eq!(super::super::packed_table::slot_bytes::<Outcome>(), 40);
    }

    fn written_number() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\+1 650 253 [0-9]{4}",
            "\\(650\\) 253-[0-9]{4}",
            "\\+91 9[0-9]{9}",
            "0[0-9]{10}",
            "011 49 151[0-9]{8}",
            "[0-9]{1,20}",
            "[0-9a-z +()-]{1,20}",
            "\\+[0-9]{49}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// A whole book resolves to what resolving each number in turn
        /// gives, cold and warm: the same pseudonyms, or the same error (the
        /// first refused number's, in book order).
        #[test]
        fn a_book_resolves_as_its_numbers_one_by_one(
            book in proptest::collection::vec(written_number(), 0..40),
            region in prop_oneof![Just(None), Just(Some(Region(*b"US"))), Just(Some(Region(*b"IN")))],
        ) {
            let one_by_one = PhoneBook::new(PseudonymKey::from_bytes([3; 32]), Region(*b"US"));
            let whole = PhoneBook::new(PseudonymKey::from_bytes([3; 32]), Region(*b"US"));
            let expected: Result<Vec<Pseudonym>, EdgeError> = book
                .iter()
                .map(|written| one_by_one.resolve(RawNumber::written(written), region, "contacts").map(|(p, _)| p))
                .collect();
            let numbers = || book.iter().map(|written| RawNumber::written(written)).collect::<Vec<_>>();
            prop_assert_eq!(&whole.resolve_book(numbers(), region, "contacts"), &expected, "cold");
            prop_assert_eq!(&whole.resolve_book(numbers(), region, "contacts"), &expected, "warm");
            prop_assert_eq!(&one_by_one.resolve_book(numbers(), region, "contacts"), &expected, "warmed one by one");
        }
    }

    /// phonenumber 0.3 reads "011 49 15123456989" in the US as +495123456989
    /// (it drops the digit after the country code: another person's number),
    /// and likewise for other codes whose numbers start with 1; Python's
    /// phonenumbers and libphonenumber read +4915123456989. The edge reads a
    /// plain IDD form as the international number it stands for first, so
    /// both forms are one person (found by `bench/phone_python.py`).
    #[test]
    fn an_idd_form_is_the_same_person_as_its_international_form() {
        let book = PhoneBook::new(PseudonymKey::from_bytes([7; 32]), Region(*b"US"));
        let resolve = |written: &str| book.resolve(RawNumber::written(written), None, "phone").expect("valid");
        for (idd, international) in [
            ("011 49 15123456989", "+4915123456989"),
            ("011 358 131234567", "+358131234567"),
            ("011 84 1900123456", "+841900123456"),
        ] {
            assert_eq!(resolve(idd), resolve(international), "{idd}");
            let crate_reading = phonenumber::parse(Some(phonenumber::country::Id::US), idd).expect("parses");
            let crate_e164 = crate_reading.format().mode(phonenumber::Mode::E164).to_string();
            assert_ne!(crate_e164, international, "the crate now reads {idd} right: this test can go");
            assert_eq!(edge_answer(idd, Region(*b"US")).map(|m| m.e164).as_deref(), Some(international));
        }
    }

    proptest! {
        /// Two cache keys pack to one `u128` only when they are the same key;
        /// keys too long to pack keep their bytes.
        #[test]
        fn packed_keys_are_distinct_exactly_when_keys_are(
            a in (prop::sample::select(&REGIONS[..]), any::<bool>(), "[0-9]{0,26}"),
            b in (prop::sample::select(&REGIONS[..]), any::<bool>(), "[0-9]{0,26}"),
        ) {
            let (a, b) = (key(&a.0, a.1, &a.2), key(&b.0, b.1, &b.2));
            match (CacheKey::of(&a), CacheKey::of(&b)) {
                (CacheKey::Packed(x), CacheKey::Packed(y)) => prop_assert_eq!(x == y, a == b),
                (CacheKey::Written(x), CacheKey::Written(y)) => {
                    prop_assert!(x.len() > PACKED_DIGITS + 3 && y.len() > PACKED_DIGITS + 3);
                    prop_assert_eq!(x == y, a == b);
                }
                (CacheKey::Packed(_), CacheKey::Written(long)) | (CacheKey::Written(long), CacheKey::Packed(_)) => {
                    prop_assert!(long.len() > PACKED_DIGITS + 3);
                }
            }
        }
    }
}
