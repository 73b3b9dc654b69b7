//! The phone metadata, compiled for the edge: validity, region and E.164 of a
//! parsed number, with the `phonenumber` crate's answers and without its cost.
//!
//! Owns: the patterns of each region of the crate's metadata (each
//! compiled the first time a number asks it), and the three
//! questions the edge asks after parsing: is the number valid, which region
//! is it from, what is its E.164 form.
//! It also reads numbers written `+` and digits ([`parse_plus`]) as the
//! crate's parser does, without its regex cache.
//! Never: parses any other written form (the crate does), or answers
//! differently from the crate: `validity_region_e164_agree_with_the_crate`
//! in `edge/tests.rs` and `proviso bench phone-agreement` check it over
//! generated numbers of every region.
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
use phonenumber::{NationalNumber, PhoneNumber};

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
    /// The national-prefix rule, for [`parse_plus`] (`None`: the region has
    /// none; inside, `None`: it does not compile without Unicode).
    prefix_for_parsing: Option<OnceLock<Option<regex::Regex>>>,
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
            prefix_for_parsing: metadata.national_prefix_for_parsing().map(|_| OnceLock::new()),
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
    valid_parts(number.code().value(), number.national())
}

/// [`valid`] of the number with this country code and national number.
pub(super) fn valid_parts(code: u16, number: &NationalNumber) -> Option<Matched> {
    let national = number.to_string();
    let source = source_for(code, &national)?;
    if !source.has_known_type(&national) {
        return None;
    }
    // The crate names the region from the national number without its
    // leading zeros (`PhoneNumber::metadata`), validates with them.
    let value = number.value().to_string();
    let region = source_for(code, &value)
        .and_then(|found| found.metadata.id().parse::<phonenumber::country::Id>().ok())
        .and_then(|id| Region::parse(id.as_ref()))
        .unwrap_or(Region::UNKNOWN);
    Some(Matched { e164: format!("+{code}{national}"), region })
}

/// What the crate's `parse` makes of `+` and digits.
#[derive(Debug, PartialEq)]
pub(super) enum Plus {
    /// The country code and the national number the crate reads.
    Number { code: u16, national: NationalNumber },
    /// The crate refuses it.
    NotANumber,
    /// A region whose national-prefix rule this reading does not compile:
    /// ask the crate.
    AskTheCrate,
}

/// `phonenumber::parse(None, "+{digits}")`, for `digits` of ASCII digits
/// only, without the crate's regex cache: the same steps (country code,
/// the region the number belongs to, its national-prefix rule, the length
/// check), with the patterns this module compiles. `agreement::check`
/// holds its answers against the crate's over generated numbers of every
/// region.
///
/// Why: the crate finds the region of a number whose country code several
/// regions share (the 25 of `+1`) by trying each region's patterns, which it
/// compiles with Unicode classes into its own cache: 3.4 MB for one number
/// of each of 8 countries, 19 MiB for every region
/// (bench/README.md, "Phone numbers written `+` and digits").
pub(super) fn parse_plus(digits: &str) -> Plus {
    debug_assert!(digits.bytes().all(|b| b.is_ascii_digit()));
    // Viable (`validator::is_viable`): at least three digits after the `+`;
    // the crate's country-code step then refuses a leading 0.
    if digits.len() < 3 || digits.starts_with('0') {
        return Plus::NotANumber;
    }
    // The first of the one-, two- and three-digit prefixes that is a country code.
    let Some((code, national)) = (1..=3).find_map(|len| {
        let code: u16 = digits[..len].parse().ok()?;
        DATABASE.by_code(&code).map(|_| (code, &digits[len..]))
    }) else {
        return Plus::NotANumber;
    };
    let mut national = national.to_string();
    if let Some(source) = source_for(code, national.trim_start_matches('0')) {
        let Some(potential) = strip_national_prefix(source, &national) else { return Plus::AskTheCrate };
        if !too_short(source.metadata, potential.len()) {
            national = potential;
        }
    }
    if !(2..=17).contains(&national.len()) {
        return Plus::NotANumber;
    }
    match national.parse::<NationalNumber>() {
        Ok(national) => Plus::Number { code, national },
        Err(_) => Plus::NotANumber,
    }
}

/// `helper::national_number`, then the crate's second strip of a literal
/// national prefix. `None` when the region's prefix rule does not compile
/// here.
fn strip_national_prefix(source: &RegionPatterns, national: &str) -> Option<String> {
    let metadata = source.metadata;
    let literal_prefix = |mut number: String| {
        if let Some(prefix) = metadata.national_prefix() {
            if number.starts_with(prefix) {
                number.drain(..prefix.len());
            }
        }
        number
    };
    let Some(parsing) = source.prefix_for_parsing.as_ref() else {
        return Some(literal_prefix(literal_prefix(national.to_string())));
    };
    let parsing = parsing.get_or_init(|| prefix_rule(parsing_source(metadata)?)).as_ref()?;
    let mut number = national.to_string();
    if let Some(found) = parsing.find(national).filter(|found| found.start() == 0) {
        let viable = source.general.is_match(national);
        let captures = parsing.captures(national)?;
        let last_matched = captures.get(captures.len() - 1).is_some();
        match metadata.national_prefix_transform_rule() {
            Some(transform) if last_matched => {
                let transformed = parsing.replace(national, transform).into_owned();
                if !viable || source.general.is_match(&transformed) {
                    number = transformed;
                }
            }
            // The crate asks whether the general pattern matches the number
            // from the match's *start* (0), so a viable number always passes.
            _ => number = national[found.end()..].to_string(),
        }
    }
    Some(literal_prefix(number))
}

fn parsing_source(metadata: &Metadata) -> Option<&str> {
    metadata.national_prefix_for_parsing().map(|regex| regex.as_str())
}

/// A national-prefix rule as the crate builds it (whitespace ignored), with
/// Unicode off: the text is ASCII digits, so it answers as the crate's. A
/// rule that cannot be compiled so (one that could match bytes outside
/// ASCII) is left to the crate.
fn prefix_rule(pattern: &str) -> Option<regex::Regex> {
    regex::RegexBuilder::new(pattern).ignore_whitespace(true).unicode(false).build().ok()
}

/// `validator::length(meta, number, Type::Unknown) == Validation::TooShort`.
/// (The crate's metadata carries no lengths on the general descriptor
/// today, so this never refuses a stripped number; it is kept as the crate
/// words it, for metadata that does.)
fn too_short(metadata: &Metadata, length: usize) -> bool {
    let general = metadata.descriptors().general();
    let length = length as u16;
    let (possible, local) = (general.possible_length(), general.possible_local_length());
    match possible.first() {
        None => false,
        Some(&minimum) => !local.contains(&length) && length < minimum,
    }
}
