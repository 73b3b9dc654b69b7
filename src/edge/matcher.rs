//! The phone metadata, compiled for the edge: validity, region and E.164 of a
//! parsed number, with the `phonenumber` crate's answers and without its cost.
//!
//! Owns: one set of compiled patterns per region of the crate's metadata
//! (built the first time a number of that region is seen), and the three
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

/// One descriptor's test: the possible lengths, and its pattern anchored at
/// the start.
struct Pattern {
    lengths: Vec<u16>,
    regex: regex::Regex,
}

impl Pattern {
    fn compile(descriptor: &Descriptor) -> Option<Pattern> {
        Some(Pattern {
            lengths: descriptor.possible_length().to_vec(),
            regex: anchored(descriptor.national_number().as_str())?,
        })
    }

    /// `Descriptor::is_match`.
    fn is_match(&self, national: &str) -> bool {
        (self.lengths.is_empty() || self.lengths.contains(&(national.len() as u16))) && self.regex.is_match(national)
    }
}

/// A metadata pattern as the crate builds it (whitespace ignored), matching
/// only at the start of the text: the crate's `find(..).start() == 0`, since
/// a leftmost-first search returns a match at 0 whenever there is one.
fn anchored(pattern: &str) -> Option<regex::Regex> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})")).ignore_whitespace(true).build().ok()
}

/// One region's compiled metadata.
struct RegionPatterns {
    metadata: &'static Metadata,
    general: Option<Pattern>,
    /// Every type the crate's `number_type` checks after the general one;
    /// a number is of a known type when any of them matches.
    types: Vec<Pattern>,
    leading_digits: Option<regex::Regex>,
}

impl RegionPatterns {
    fn compile(metadata: &'static Metadata) -> RegionPatterns {
        let descriptors = metadata.descriptors();
        let types = [
            descriptors.premium_rate(),
            descriptors.toll_free(),
            descriptors.shared_cost(),
            descriptors.voip(),
            descriptors.personal_number(),
            descriptors.pager(),
            descriptors.uan(),
            descriptors.voicemail(),
            descriptors.fixed_line(),
            descriptors.mobile(),
        ];
        RegionPatterns {
            metadata,
            general: Pattern::compile(descriptors.general()),
            types: types.into_iter().flatten().filter_map(Pattern::compile).collect(),
            leading_digits: metadata.leading_digits().and_then(|regex| anchored(regex.as_str())),
        }
    }

    /// `validator::number_type(..) != Type::Unknown`.
    fn has_known_type(&self, national: &str) -> bool {
        self.general.as_ref().is_some_and(|general| general.is_match(national))
            && self.types.iter().any(|pattern| pattern.is_match(national))
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
    Some(slot.get_or_init(|| RegionPatterns::compile(metadata)))
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
        let chosen = match &region_patterns.leading_digits {
            Some(leading) => leading.is_match(national),
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
