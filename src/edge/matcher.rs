//! The phone metadata, compiled for the edge: validity, region and E.164 of a
//! parsed number, with the `phonenumber` crate's answers and without its cost.
//!
//! Owns: the patterns of each region of the crate's metadata (each
//! compiled the first time a number asks it), and the three
//! questions the edge asks after parsing: is the number valid, which region
//! is it from, what is its E.164 form.
//! Never: parses written forms (the crate does), or answers differently from
//! the crate: `validity_region_e164_agree_with_the_crate` in `edge/tests.rs`
//! and `proviso bench phone-agreement` check it over generated numbers of
//! every region.
//!
//! Why: the crate asks each question through regexes kept in one LRU behind
//! one process-wide mutex (every lookup hashes the pattern text and takes the
//! lock), asks the region question twice, and formats E.164 through the
//! national formatter. Measured on the first million lines of
//! `bench/compare.sh`'s workload, that was a quarter of ingest's CPU, and
//! the mutex kept the edge workers from running side by side.
//!
//! The crate's own semantics are kept exactly, including where they differ
//! from libphonenumber: a descriptor matches when its pattern matches a
//! prefix of the national number (the crate checks `find` at offset 0, not a
//! full match) and the number's length is one of its possible lengths.

use std::collections::HashMap;
use std::sync::{LazyLock, OnceLock};

use phonenumber::metadata::{Descriptor, Metadata, DATABASE};
use phonenumber::PhoneNumber;

use crate::contract::Region;

/// A metadata pattern, compiled the first time a number asks it (compiling
/// every pattern of a region at its first number compiled many that no
/// number of it ever needs).
struct Lazy {
    text: &'static str,
    compiled: OnceLock<Option<Compiled>>,
}

impl Lazy {
    fn of(text: &'static str) -> Lazy {
        Lazy { text, compiled: OnceLock::new() }
    }

    /// Whether it matches at the start of `national`; `None` when the
    /// pattern does not compile.
    fn is_match(&self, national: &str) -> Option<bool> {
        self.compiled.get_or_init(|| anchored(self.text)).as_ref().map(|regex| regex.is_match(national))
    }
}

/// One descriptor's test: the possible lengths, then its pattern (only
/// compiled for a number of one of those lengths).
struct Pattern {
    lengths: &'static [u16],
    pattern: Lazy,
}

impl Pattern {
    fn of(descriptor: &'static Descriptor) -> Pattern {
        Pattern { lengths: descriptor.possible_length(), pattern: Lazy::of(descriptor.national_number().as_str()) }
    }

    /// `Descriptor::is_match` (a pattern that does not compile matches
    /// nothing, as the crate's lookup of it fails).
    fn is_match(&self, national: &str) -> bool {
        (self.lengths.is_empty() || self.lengths.contains(&(national.len() as u16)))
            && self.pattern.is_match(national) == Some(true)
    }
}

/// A compiled pattern: an NFA run by a bounded backtracker or a PikeVM.
type Compiled = regex_automata::meta::Regex;

/// A metadata pattern as the crate builds it (whitespace ignored), matching
/// only at the start of the text: the crate's `find(..).start() == 0`, since
/// a leftmost-first search returns a match at 0 whenever there is one.
///
/// Unicode is off: `\d` is then `[0-9]` instead of every script's digits,
/// which compiled to hundreds of UTF-8 states at each of the metadata's
/// many `\d`. The text matched is the crate's national number, ASCII digits
/// only, so the answers are the same (`proviso bench phone-agreement`: no
/// disagreement over a million numbers of every region). The lazy and
/// one-pass DFAs are off too: a national number is at most 17 digits, and
/// the NFA engines answer as fast. Numbers of all 243 regions held 145 MiB
/// of patterns before, 23 MiB now (`bench/phone_memory.sh`, bench/README.md
/// "Phone patterns: memory").
fn anchored(pattern: &str) -> Option<Compiled> {
    use regex_automata::{meta, nfa::thompson::WhichCaptures, util::syntax};
    meta::Regex::builder()
        .syntax(syntax::Config::new().ignore_whitespace(true).unicode(false))
        .configure(meta::Config::new().hybrid(false).onepass(false).which_captures(WhichCaptures::None))
        .build(&format!("^(?:{pattern})"))
        .ok()
}

/// One region's metadata, each pattern compiled when first asked.
struct RegionPatterns {
    metadata: &'static Metadata,
    general: Pattern,
    /// Every type the crate's `number_type` checks after the general one;
    /// a number is of a known type when any of them matches. Fixed-line
    /// and mobile come first: most numbers are one of them, so the other
    /// types' patterns are seldom compiled (the answer is the same in any
    /// order).
    types: Vec<Pattern>,
    leading_digits: Option<Lazy>,
}

impl RegionPatterns {
    fn of(metadata: &'static Metadata) -> RegionPatterns {
        let descriptors = metadata.descriptors();
        let types = [
            descriptors.fixed_line(),
            descriptors.mobile(),
            descriptors.premium_rate(),
            descriptors.toll_free(),
            descriptors.shared_cost(),
            descriptors.voip(),
            descriptors.personal_number(),
            descriptors.pager(),
            descriptors.uan(),
            descriptors.voicemail(),
        ];
        RegionPatterns {
            metadata,
            general: Pattern::of(descriptors.general()),
            types: types.into_iter().flatten().map(Pattern::of).collect(),
            leading_digits: metadata.leading_digits().map(|regex| Lazy::of(regex.as_str())),
        }
    }

    /// `validator::number_type(..) != Type::Unknown`.
    fn has_known_type(&self, national: &str) -> bool {
        self.general.is_match(national) && self.types.iter().any(|pattern| pattern.is_match(national))
    }

    /// Whether the region's leading digits match (`None`: it has none, or
    /// they do not compile, and the crate then asks the number's type).
    fn leading_digits_match(&self, national: &str) -> Option<bool> {
        self.leading_digits.as_ref()?.is_match(national)
    }
}

/// Every metadata entry: each region, and each non-geographic code (those
/// share the id `001`, so `Database::iter`, keyed by id, yields only one of
/// them; asking each country code finds the rest).
pub(super) fn all_metadata() -> &'static [&'static Metadata] {
    static ALL: LazyLock<Vec<&'static Metadata>> = LazyLock::new(|| {
        let mut all: Vec<&'static Metadata> = DATABASE.iter().collect();
        for code in 1..=999u16 {
            for metadata in DATABASE.by_code(&code).unwrap_or_default() {
                if !all.iter().any(|known| std::ptr::eq(*known, metadata)) {
                    all.push(metadata);
                }
            }
        }
        all
    });
    &ALL
}

/// Every entry's patterns, compiled on first use: (country code, region id)
/// -> patterns.
static REGIONS: LazyLock<HashMap<(u16, &'static str), OnceLock<RegionPatterns>>> = LazyLock::new(|| {
    all_metadata().iter().map(|metadata| ((metadata.country_code(), metadata.id()), OnceLock::new())).collect()
});

fn patterns(metadata: &'static Metadata) -> Option<&'static RegionPatterns> {
    let slot = REGIONS.get(&(metadata.country_code(), metadata.id()))?;
    Some(slot.get_or_init(|| RegionPatterns::of(metadata)))
}

/// `validator::source_for`, resolved to the metadata it names.
fn source_for(code: u16, national: &str) -> Option<&'static RegionPatterns> {
    let regions = DATABASE.region(&code)?;
    if let [only] = regions.as_slice() {
        let metadata = if *only == "001" {
            DATABASE.by_code(&code)?.into_iter().next()?
        } else {
            // The crate needs the id to parse as a country it knows.
            only.parse::<phonenumber::country::Id>().ok()?;
            DATABASE.by_id(*only)?
        };
        return patterns(metadata);
    }
    for region in regions {
        let region_patterns = patterns(DATABASE.by_id(region)?)?;
        let chosen = match region_patterns.leading_digits_match(national) {
            Some(matched) => matched,
            None => region_patterns.has_known_type(national),
        };
        if chosen {
            return Some(region_patterns);
        }
    }
    None
}

/// What the edge keeps of a parsed number.
pub(super) struct Matched {
    pub(super) e164: String,
    pub(super) region: Region,
}

/// The crate's `is_valid`, `format().mode(E164)` and `country().id()` of a
/// parsed number: `None` when it is not valid.
pub(super) fn valid(number: &PhoneNumber) -> Option<Matched> {
    let code = number.code().value();
    let national = number.national().to_string();
    let source = source_for(code, &national)?;
    if !source.has_known_type(&national) {
        return None;
    }
    // The crate names the region from the national number without its
    // leading zeros (`PhoneNumber::metadata`), validates with them.
    let value = number.national().value().to_string();
    let region = source_for(code, &value)
        .and_then(|found| found.metadata.id().parse::<phonenumber::country::Id>().ok())
        .and_then(|id| Region::parse(id.as_ref()))
        .unwrap_or(Region::UNKNOWN);
    Some(Matched { e164: format!("+{code}{national}"), region })
}
