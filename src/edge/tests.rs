//! Unit and property tests of the privacy edge.

use super::*;
use proptest::prelude::*;

fn edge() -> Edge {
    Edge::new(PseudonymKey::from_bytes([3; 32]), Region(*b"US"))
}

fn accept(line: &str) -> Result<Event, EdgeError> {
    edge().accept_line(line.as_bytes())
}

#[test]
fn every_event_type_is_accepted_in_its_documented_shape() {
    let lines = [
        r#"{"type":"register","ts":"2026-01-05T10:00:00Z","phone":"+919812345678","device":"d1","platform":"android"}"#,
        r#"{"type":"session","ts":1767607200000,"phone":"+919812345678","device":"d1"}"#,
        r#"{"type":"message","ts":"2026-01-05T10:00:00+05:30","phone":"+919812345678","to":"+5511987654321","kind":"text","link_domain":"Example.COM"}"#,
        r#"{"type":"message","ts":"2026-01-05T10:00:00Z","phone":"+919812345678","group":"g-1","kind":"media"}"#,
        r#"{"type":"contacts","ts":"2026-01-05T10:00:00Z","phone":"098123 45678","country":"IN","contacts":["+5511987654321","098123 45679"]}"#,
        r#"{"type":"business_message","ts":"2026-01-05T10:00:00Z","phone":"+919812345678","business":"b_42","direction":"out"}"#,
        r#"{"type":"report","ts":"2026-01-05T10:00:00Z","phone":"+919812345678","target":"+5511987654321","reason":"spam"}"#,
        r#"{"type":"block","ts":"2026-01-05T10:00:00Z","phone":"+919812345678","target":"+5511987654321"}"#,
        r#"{"type":"consent","ts":"2026-01-05T10:00:00Z","phone":"+919812345678","purpose":"ads","granted":false}"#,
        r#"{"type":"delete_account","ts":"2026-01-05T10:00:00Z","phone":"+919812345678"}"#,
        r#"{"type":"partner_account","ts":"2026-01-05T10:00:00Z","phone":"+919812345678","partner_id":"p_1"}"#,
        r#"{"type":"partner_friend","ts":"2026-01-05T10:00:00Z","phone":"+919812345678","partner_id":"p_1","friend":"p_2","state":"added"}"#,
        r#"{"type":"partner_flag","ts":"2026-01-05T10:00:00Z","phone":"+919812345678","partner_id":"p_1","reason":"spam_wave"}"#,
    ];
    for line in lines {
        let event = accept(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(event.region, Region(*b"IN"));
    }
    let message = accept(lines[2]).expect("message");
    assert_eq!(message.ts_ms, 1_767_587_400_000, "offsets are converted to UTC");
    match message.body {
        EventBody::Message { link_domain, .. } => assert_eq!(link_domain.as_deref(), Some("example.com")),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn content_fields_are_refused_with_the_content_message() {
    for field in ["text", "body", "content", "caption", "media", "url", "Text"] {
        let line = format!(
            r#"{{"type":"message","ts":1767607200000,"phone":"+919812345678","to":"+5511987654321","kind":"text","{field}":"hello"}}"#
        );
        let error = accept(&line).expect_err("content");
        assert_eq!(error.reason, RejectReason::Content, "{field}");
        assert!(error.message.contains("message content is never accepted"), "{}", error.message);
        assert!(!error.message.contains("hello"));
    }
    for domain in
        ["https://example.com", "example.com/path", "example.com?q=1", "example .com", "localhost", "a.com:80"]
    {
        let line = format!(
            r#"{{"type":"message","ts":1767607200000,"phone":"+919812345678","to":"+5511987654321","kind":"text","link_domain":"{domain}"}}"#
        );
        let error = accept(&line).expect_err(domain);
        assert_eq!(error.reason, RejectReason::Content, "{domain}");
    }
}

#[test]
fn content_outranks_an_earlier_schema_error() {
    let error = accept(r#"{"type":"message","bogus":1,"text":"secret words"}"#).expect_err("content");
    assert_eq!(error.reason, RejectReason::Content);
}

#[test]
fn schema_errors_name_the_field_and_never_the_value() {
    let cases: &[(&str, RejectReason, &str)] = &[
        (
            r#"{"type":"sesion","ts":1767607200000,"phone":"+919812345678"}"#,
            RejectReason::UnknownType,
            "unknown event type, expected one of: register session",
        ),
        (
            r#"{"type":"session","ts":1767607200000,"phone":"+919812345678","device":"d","devise":"x"}"#,
            RejectReason::UnknownField,
            "did you mean `device`",
        ),
        (
            r#"{"type":"session","ts":1767607200000,"phone":"+919812345678"}"#,
            RejectReason::MissingField,
            "missing field `device`",
        ),
        (
            r#"{"type":"session","ts":1767607200000,"phone":"+919812345678","device":"d","kind":"text"}"#,
            RejectReason::UnknownField,
            "field `kind` is not part of a `session` event",
        ),
        (
            r#"{"type":"session","ts":1767607200000,"phone":919812345678,"device":"d"}"#,
            RejectReason::WrongType,
            "field `phone` must be a string",
        ),
        (
            r#"{"type":"session","ts":"yesterday","phone":"+919812345678","device":"d"}"#,
            RejectReason::InvalidTimestamp,
            "RFC 3339",
        ),
        (
            r#"{"type":"session","ts":1767607200,"phone":"+919812345678","device":"d"}"#,
            RejectReason::InvalidTimestamp,
            "not seconds",
        ),
        (
            r#"{"type":"session","ts":1767607200000,"phone":"+91981234","device":"d"}"#,
            RejectReason::InvalidPhone,
            "ending 34",
        ),
        (
            r#"{"type":"session","ts":1767607200000,"phone":"call me","device":"d"}"#,
            RejectReason::InvalidPhone,
            "field `phone`",
        ),
        (
            r#"{"type":"consent","ts":1767607200000,"phone":"+919812345678","purpose":"security","granted":false}"#,
            RejectReason::EssentialRefusal,
            "essential",
        ),
        (
            r#"{"type":"register","ts":1767607200000,"phone":"+919812345678","device":"d","platform":"symbian"}"#,
            RejectReason::InvalidValue,
            "`platform` must be one of",
        ),
        (
            r#"{"type":"session","ts":1767607200000,"phone":"+919812345678","device":"d""#,
            RejectReason::InvalidJson,
            "JSON",
        ),
        (r#"[1,2]"#, RejectReason::InvalidJson, "JSON"),
    ];
    for (line, reason, needle) in cases {
        let error = accept(line).expect_err(line);
        assert_eq!(error.reason, *reason, "{line}: {}", error.message);
        assert!(error.message.contains(needle), "{line}: {}", error.message);
        assert!(!error.message.contains("98123"), "{}", error.message);
    }
}

#[test]
fn national_numbers_are_read_in_the_line_country_or_the_default_region() {
    let with_country =
        accept(r#"{"type":"session","ts":1767607200000,"phone":"098123 45678","country":"in","device":"d"}"#)
            .expect("IN");
    let international =
        accept(r#"{"type":"session","ts":1767607200000,"phone":"+91 98123-45678","device":"d"}"#).expect("intl");
    assert_eq!(with_country.subject, international.subject);
    let us_default = accept(r#"{"type":"session","ts":1767607200000,"phone":"(202) 555-0143","device":"d"}"#);
    if let Ok(event) = us_default {
        assert_eq!(event.region, Region(*b"US"));
    }
}

/// Written forms of the same number, for the property test.
fn forms(national: &str) -> Vec<String> {
    let spaced = format!("{} {}", &national[..5], &national[5..]);
    vec![
        format!("+91{national}"),
        format!("+91 {spaced}"),
        format!("0091 {spaced}"),
        format!("+91-{}-{}", &national[..5], &national[5..]),
        format!("+91 ({}) {}", &national[..3], &national[3..]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Every way of writing a number gives one pseudonym, and nothing the
    /// edge returns (error or event) contains the number's digits.
    #[test]
    fn every_written_form_gives_one_pseudonym_and_no_digits_leak(rest in 100_000_000u64..999_999_999) {
        let national = format!("9{rest}");
        let edge = edge();
        let mut seen = None;
        for form in forms(&national) {
            let line = format!(r#"{{"type":"session","ts":1767607200000,"phone":"{form}","device":"d"}}"#);
            let event = edge.accept_line(line.as_bytes());
            let Ok(event) = event else {
                let error = event.expect_err("checked");
                prop_assert!(!error.message.contains(&national[2..]));
                continue;
            };
            let debug = format!("{event:?}");
            prop_assert!(!debug.contains(&national[2..]));
            match seen {
                None => seen = Some(event.subject),
                Some(subject) => prop_assert_eq!(subject, event.subject),
            }
        }
    }
}

/// phonenumber 0.3 with a region hint drops "11" after +55 when the region is
/// US; international forms must not depend on the default region.
#[test]
fn international_numbers_do_not_depend_on_the_default_region() {
    let us = Edge::new(PseudonymKey::from_bytes([3; 32]), Region(*b"US"));
    let india = Edge::new(PseudonymKey::from_bytes([3; 32]), Region(*b"IN"));
    let (from_us, region) = us.resolve_phone("+55 11 98765 4321", None).expect("valid from US default");
    let (from_in, _) = india.resolve_phone("+5511987654321", None).expect("valid from IN default");
    assert_eq!(from_us, from_in);
    assert_eq!(region, Region(*b"BR"));
}

#[test]
fn every_contract_field_has_its_own_slot() {
    for (index, name) in wire::FIELDS.iter().enumerate() {
        assert_eq!(wire::slot_of(name), Some(index), "{name}");
    }
    assert_eq!(wire::slot_of("text"), None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// The national-form shortcut gives exactly what the full parser gives:
    /// for numbers written in their region's national format (and with the
    /// `00` prefix), the pseudonym equals the one of the E.164 form, and a
    /// fresh edge that sees only the national form agrees.
    #[test]
    fn national_forms_agree_with_the_full_parser(
        region in proptest::sample::select(&["IN", "GB", "FR", "ES", "US", "ID", "NG", "MX", "BR", "DE", "IT", "JP"][..]),
        subscriber in 0u64..10_000_000_000,
    ) {
        let id: phonenumber::country::Id = region.parse().expect("region");
        let code = phonenumber::metadata::DATABASE.by_id(region).expect("metadata").country_code();
        let Ok(number) = phonenumber::parse(None, format!("+{code}{subscriber}")) else { return Ok(()) };
        if !phonenumber::is_valid(&number) {
            return Ok(());
        }
        let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
        let national = number.format().mode(phonenumber::Mode::National).to_string();
        let full_parser = phonenumber::parse(Some(id), &national).ok().filter(phonenumber::is_valid)
            .map(|n| n.format().mode(phonenumber::Mode::E164).to_string());
        let warm = edge();
        let (by_e164, _) = warm.resolve_phone(&e164, None).expect("valid e164");
        let via_shortcut = warm.resolve_phone(&national, Some(region)).ok().map(|(p, _)| p);
        let cold = edge().resolve_phone(&national, Some(region)).ok().map(|(p, _)| p);
        prop_assert_eq!(via_shortcut, cold, "shortcut and full parser disagree for a national form");
        if full_parser.as_deref() == Some(e164.as_str()) {
            prop_assert_eq!(via_shortcut, Some(by_e164));
        }
    }
}

/// The compiled matcher answers exactly as the `phonenumber` crate does:
/// validity, region and E.164 of generated numbers from every metadata
/// entry and non-geographic code, and the parse of numbers written `+` and
/// digits (`matcher::parse_plus`): a million numbers (about 90 s in a debug
/// build; `PHONE_AGREEMENT_NUMBERS` changes the count, and
/// `proviso bench phone-agreement` runs the same check in release).
#[test]
fn validity_region_e164_agree_with_the_crate() {
    let count = std::env::var("PHONE_AGREEMENT_NUMBERS").ok().and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
    let report = super::agreement::check(count, 11, |_| {});
    let entries = super::matcher::all_metadata().len();
    assert_eq!(report.regions, entries, "every metadata entry is drawn from");
    assert_eq!(report.disagreements, 0, "{:#?}", report.examples);
    // Both answers are exercised, and most numbers parse.
    assert!(report.valid * 5 > report.parsed, "valid {} of {}", report.valid, report.parsed);
    assert!(report.valid * 10 < report.parsed * 9, "valid {} of {}", report.valid, report.parsed);
    assert!(report.parsed * 2 > report.generated, "parsed {} of {}", report.parsed, report.generated);
    // `+` and digits: three forms a number, parsed both ways, none left to
    // the crate (every national-prefix rule compiles without Unicode).
    assert_eq!(report.plus_forms, 3 * count);
    assert_eq!(report.plus_asked, 0);
    assert!(report.spaced_forms * 10 > count, "spaced forms {}", report.spaced_forms);
    assert!(report.plus_parsed * 2 > report.plus_forms, "parsed {} of {}", report.plus_parsed, report.plus_forms);
}
