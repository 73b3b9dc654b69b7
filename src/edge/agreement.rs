//! The matcher held against the crate: generated numbers of every region,
//! written the ways people write them, answered both ways.
//!
//! Owns: the generator (each region's example numbers with digits changed,
//! added or dropped, in international, spaced, national, national-prefix and
//! `00` forms, plus random digits) and the comparison of validity, region
//! and E.164 between [`super::matcher::valid`] and the `phonenumber`
//! crate's `is_valid`, `country().id()` and `format().mode(E164)`; and of
//! what [`super::matcher::parse_plus`] and the crate's `parse` read from
//! numbers written `+` and digits.
//! Never: runs on the data path; the numbers are synthetic and never leave
//! the report except as the few disagreements it shows.

use fastrand::Rng;
use phonenumber::metadata::Metadata;
use phonenumber::Mode;

use crate::contract::Region;

/// What one run of [`check`] found.
#[derive(Debug, Default, serde::Serialize)]
pub struct Agreement {
    /// Numbers generated.
    pub generated: u64,
    /// Numbers the crate parsed (only those have answers to compare).
    pub parsed: u64,
    /// Of those, valid according to the crate.
    pub valid: u64,
    /// Metadata entries (regions and non-geographic codes) numbers were drawn from.
    pub regions: usize,
    /// Numbers written `+` and digits whose parse was compared
    /// ([`super::matcher::parse_plus`] against the crate's `parse`): each
    /// generated number's digits after a `+`, and a number of the same
    /// entry written `+`, country code, national prefix, national number;
    /// and one with a short random national number.
    pub plus_forms: u64,
    /// Of those, the ones the crate parsed.
    pub plus_parsed: u64,
    /// Of those, left to the crate (a national-prefix rule that does not
    /// compile without Unicode): not compared.
    pub plus_asked: u64,
    /// Generated numbers written `+`, digits and separators whose crate
    /// reading was compared with that of `+` and their digits alone.
    pub spaced_forms: u64,
    /// Numbers whose answers differed.
    pub disagreements: u64,
    /// The first few of them: written form, region hint, both answers.
    pub examples: Vec<String>,
}

/// Generates `count` numbers from `seed` and compares both answers for each.
/// Every metadata entry is drawn in turn, so any `count` of at least the
/// number of entries covers them all.
pub fn check(count: u64, seed: u64, mut progress: impl FnMut(u64)) -> Agreement {
    // As the edge runs the crate: with room for every compiled pattern.
    super::phone::enlarge_regex_cache();
    let mut rng = Rng::with_seed(seed);
    let entries = super::matcher::all_metadata();
    let mut report = Agreement { regions: entries.len().min(count as usize), ..Agreement::default() };
    let mut written = String::new();
    let mut plus_rng = Rng::with_seed(seed ^ 0x9e37_79b9_7f4a_7c15);
    for index in 0..count {
        let metadata = entries[index as usize % entries.len()];
        let hint = write_number(&mut rng, metadata, &mut written);
        report.generated += 1;
        if index % 4096 == 0 {
            progress(index);
        }
        let digits: String = written.chars().filter(char::is_ascii_digit).collect();
        compare_plus(&digits, &mut report);
        if written.starts_with('+') && written.bytes().all(|b| b.is_ascii_digit() || b"+ -.()/".contains(&b)) {
            compare_spaced(&written, &digits, &mut report);
        }
        let mut national = example(&mut plus_rng, metadata);
        mutate(&mut plus_rng, &mut national);
        let prefix = metadata.national_prefix().unwrap_or("");
        compare_plus(&format!("{}{prefix}{national}", metadata.country_code()), &mut report);
        // Short ones too: a national number of one of the region's local-only
        // lengths, or of 1 to 12 digits, after its national prefix.
        let local = metadata.descriptors().general().possible_local_length();
        let length = match local.len() {
            0 => plus_rng.usize(1..13),
            n if plus_rng.bool() => usize::from(local[plus_rng.usize(0..n)]),
            _ => plus_rng.usize(1..13),
        };
        let short: String = (0..length).map(|_| char::from(b'0' + plus_rng.u8(0..10))).collect();
        compare_plus(&format!("{}{prefix}{short}", metadata.country_code()), &mut report);
        let Ok(number) = phonenumber::parse(hint, &written) else { continue };
        report.parsed += 1;
        let crate_valid = phonenumber::is_valid(&number);
        let crate_answer = crate_valid.then(|| {
            let region = number.country().id().and_then(|id| Region::parse(id.as_ref())).unwrap_or(Region::UNKNOWN);
            (number.format().mode(Mode::E164).to_string(), region)
        });
        let ours = super::matcher::valid(&number).map(|matched| (matched.e164, matched.region));
        report.valid += u64::from(crate_valid);
        if crate_answer != ours {
            report.disagreements += 1;
            if report.examples.len() < 10 {
                report
                    .examples
                    .push(format!("{written:?} (region {hint:?}): crate {crate_answer:?}, matcher {ours:?}"));
            }
        }
    }
    progress(count);
    report
}

/// Compares the crate's `parse(None, "+{digits}")` with
/// [`super::matcher::parse_plus`].
fn compare_plus(digits: &str, report: &mut Agreement) {
    use super::matcher::{parse_plus, Plus};
    report.plus_forms += 1;
    let written = format!("+{digits}");
    let by_crate = match phonenumber::parse(None, &written) {
        Ok(number) => {
            report.plus_parsed += 1;
            Plus::Number { code: number.code().value(), national: *number.national() }
        }
        Err(_) => Plus::NotANumber,
    };
    match parse_plus(digits) {
        Plus::AskTheCrate => report.plus_asked += 1,
        ours if ours != by_crate => {
            report.disagreements += 1;
            if report.examples.len() < 10 {
                report.examples.push(format!("{written:?} parsed: crate {by_crate:?}, parse_plus {ours:?}"));
            }
        }
        _ => {}
    }
}

/// The edge reads a number written `+`, digits and separators as `+` and
/// its digits (one cache entry for both): the crate must read both forms
/// alike.
fn compare_spaced(written: &str, digits: &str, report: &mut Agreement) {
    let read = |text: &str| phonenumber::parse(None, text).ok().map(|n| (n.code().value(), *n.national()));
    report.spaced_forms += 1;
    let (spaced, plain) = (read(written), read(&format!("+{digits}")));
    if spaced != plain {
        report.disagreements += 1;
        if report.examples.len() < 10 {
            report.examples.push(format!("{written:?} read by the crate as {spaced:?}, +{digits} as {plain:?}"));
        }
    }
}

/// Writes the same `count` numbers [`check`] generates from `seed` to `out`
/// as NDJSON, one object a number: `written`, `hint` (the region it is
/// parsed with, or null), `parsed` (by the crate), and for a number the edge
/// accepts its `region` and `e164` as the edge answers them
/// ([`super::phone::edge_answer`]: the crate's parse, the matcher, and the
/// edge's own reading of plain national and IDD forms; `valid: false` when
/// the edge refuses it).
/// For holding proviso's answers against another library
/// (`bench/phone_python.py`, Python's `phonenumbers`). Returns how many
/// numbers were written.
pub fn dump(count: u64, seed: u64, out: &mut impl std::io::Write) -> std::io::Result<u64> {
    super::phone::enlarge_regex_cache();
    let mut rng = Rng::with_seed(seed);
    let entries = super::matcher::all_metadata();
    let mut written = String::new();
    for index in 0..count {
        let hint = write_number(&mut rng, entries[index as usize % entries.len()], &mut written);
        let parsed = phonenumber::parse(hint, &written).is_ok();
        // The edge reads a number without a region hint in its default
        // region; the generator's region-free forms all start with `+`.
        let region = hint.and_then(|id| Region::parse(id.as_ref())).unwrap_or(Region(*b"US"));
        let ours = super::phone::edge_answer(&written, region);
        let line = serde_json::json!({
            "written": written,
            "hint": hint.map(|id| id.as_ref().to_string()),
            "parsed": parsed,
            "valid": ours.is_some(),
            "region": ours.as_ref().map(|matched| String::from_utf8_lossy(&matched.region.0).into_owned()),
            "e164": ours.as_ref().map(|matched| matched.e164.clone()),
        });
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
    }
    Ok(count)
}

/// Writes one number of `metadata`'s region into `out`; returns the region
/// hint it is parsed with.
fn write_number(rng: &mut Rng, metadata: &Metadata, out: &mut String) -> Option<phonenumber::country::Id> {
    out.clear();
    let mut national = example(rng, metadata);
    mutate(rng, &mut national);
    let code = metadata.country_code();
    let region: Option<phonenumber::country::Id> = metadata.id().parse().ok();
    match rng.u8(0..8) {
        0 | 1 => {
            out.push_str(&format!("+{code}{national}"));
            None
        }
        2 => {
            out.push_str(&format!("+{code} {}", spaced(rng, &national)));
            None
        }
        3 => {
            let prefix = metadata.national_prefix().unwrap_or("");
            out.push_str(&format!("{prefix}{}", spaced(rng, &national)));
            region
        }
        4 => {
            out.push_str(&national);
            region
        }
        5 => {
            out.push_str(&format!("00{code}{national}"));
            Some(phonenumber::country::Id::DE)
        }
        6 => {
            out.push_str(&format!("011 {code} {national}"));
            Some(phonenumber::country::Id::US)
        }
        _ => {
            let digits: String = (0..rng.usize(4..16)).map(|_| char::from(b'0' + rng.u8(0..10))).collect();
            out.push_str(&format!("+{digits}"));
            None
        }
    }
}

/// The digits of one of the region's example numbers (any type), or random
/// digits when it has none.
fn example(rng: &mut Rng, metadata: &Metadata) -> String {
    let descriptors = metadata.descriptors();
    let all = [
        Some(descriptors.general()),
        descriptors.fixed_line(),
        descriptors.mobile(),
        descriptors.toll_free(),
        descriptors.premium_rate(),
        descriptors.shared_cost(),
        descriptors.personal_number(),
        descriptors.voip(),
        descriptors.pager(),
        descriptors.uan(),
        descriptors.voicemail(),
    ];
    let examples: Vec<&str> = all.into_iter().flatten().filter_map(|descriptor| descriptor.example()).collect();
    match examples.len() {
        0 => (0..rng.usize(6..12)).map(|_| char::from(b'0' + rng.u8(0..10))).collect(),
        n => examples[rng.usize(0..n)].chars().filter(char::is_ascii_digit).collect(),
    }
}

/// Leaves the number as it is (a third of the time), or changes one to
/// three digits, and sometimes adds or drops one.
fn mutate(rng: &mut Rng, digits: &mut String) {
    if digits.is_empty() || rng.u8(0..3) == 0 {
        return;
    }
    let mut bytes = std::mem::take(digits).into_bytes();
    for _ in 0..rng.usize(1..4) {
        let at = rng.usize(0..bytes.len());
        bytes[at] = b'0' + rng.u8(0..10);
    }
    match rng.u8(0..6) {
        0 => bytes.push(b'0' + rng.u8(0..10)),
        1 if bytes.len() > 1 => {
            bytes.pop();
        }
        _ => {}
    }
    *digits = String::from_utf8(bytes).unwrap_or_default();
}

/// The digits with a space or dash after some of them.
fn spaced(rng: &mut Rng, digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() * 2);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && rng.u8(0..4) == 0 {
            out.push(if rng.bool() { ' ' } else { '-' });
        }
        out.push(digit);
    }
    out
}

/// Nanoseconds per number of each way of answering, over the same parsed
/// numbers (after a first pass that compiles what both need).
#[derive(Debug, serde::Serialize)]
pub struct Timing {
    pub numbers: u64,
    /// `phonenumber::parse`, which both ways share.
    pub parse_ns: f64,
    /// The crate's `is_valid`, then for valid numbers `country().id()` and
    /// the E.164 format (what the edge asked before the matcher).
    pub crate_ns: f64,
    /// [`super::matcher::valid`].
    pub matcher_ns: f64,
}

/// Times parse, the crate's answers and the matcher's over `count`
/// generated numbers.
pub fn time_both(count: u64, seed: u64) -> Timing {
    super::phone::enlarge_regex_cache();
    let mut rng = Rng::with_seed(seed);
    let entries = super::matcher::all_metadata();
    let mut written = String::new();
    let inputs: Vec<(String, Option<phonenumber::country::Id>)> = (0..count as usize)
        .map(|index| {
            let hint = write_number(&mut rng, entries[index % entries.len()], &mut written);
            (written.clone(), hint)
        })
        .collect();
    let started = std::time::Instant::now();
    let numbers: Vec<phonenumber::PhoneNumber> =
        inputs.iter().filter_map(|(written, hint)| phonenumber::parse(*hint, written).ok()).collect();
    let parse_ns = started.elapsed().as_nanos() as f64 / inputs.len().max(1) as f64;
    let by_crate = |number: &phonenumber::PhoneNumber| {
        phonenumber::is_valid(number).then(|| (number.country().id(), number.format().mode(Mode::E164).to_string()))
    };
    // Warm both: every region's patterns compiled once.
    let mut valid = 0usize;
    for number in &numbers {
        valid += usize::from(by_crate(number).is_some()) + usize::from(super::matcher::valid(number).is_some());
    }
    let started = std::time::Instant::now();
    for number in &numbers {
        valid += usize::from(by_crate(number).is_some());
    }
    let crate_ns = started.elapsed().as_nanos() as f64 / numbers.len().max(1) as f64;
    let started = std::time::Instant::now();
    for number in &numbers {
        valid += usize::from(super::matcher::valid(number).is_some());
    }
    let matcher_ns = started.elapsed().as_nanos() as f64 / numbers.len().max(1) as f64;
    std::hint::black_box(valid);
    Timing { numbers: numbers.len() as u64, parse_ns, crate_ns, matcher_ns }
}
