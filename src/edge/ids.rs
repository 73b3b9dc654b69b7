//! What the edge accepts as an identifier, a reason or a domain, and what an
//! identifier may never carry: a phone number or an e-mail address.
//!
//! Owns: the character sets of opaque ids, reason tokens and bare domains;
//! the detectors of phone-like digit runs and e-mail addresses; masking them
//! out of free text (a reviewer's note).
//! Never: quotes the value it refuses.

use super::error::{EdgeError, RejectReason};
use super::wire::WireEvent;

/// Longest opaque id (device, group, business, partner ids).
pub const MAX_ID_LEN: usize = 128;
/// Longest reason token.
pub const MAX_REASON_LEN: usize = 64;
/// Digits in a run (separators removed) that make it look like a phone number.
pub const PHONE_LIKE_DIGITS: usize = 7;

/// Characters people write between the digits of a phone number.
fn is_phone_separator(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'.' | b'(' | b')' | b'/' | b'+')
}

/// Byte ranges of the runs of digits and separators in `text` that hold at
/// least [`PHONE_LIKE_DIGITS`] digits, trimmed to start and end on a digit.
fn phone_like_runs(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut runs = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if !bytes[at].is_ascii_digit() {
            at += 1;
            continue;
        }
        let (start, mut end, mut digits) = (at, at, 0);
        while at < bytes.len() && (bytes[at].is_ascii_digit() || is_phone_separator(bytes[at])) {
            if bytes[at].is_ascii_digit() {
                digits += 1;
                end = at + 1;
            }
            at += 1;
        }
        if digits >= PHONE_LIKE_DIGITS {
            runs.push((start, end));
        }
    }
    runs
}

/// Whether `text` carries a run of 7 or more digits once separators
/// (space - . ( ) / +) are removed: a phone number, written any way.
pub fn has_phone_like_run(text: &str) -> bool {
    !phone_like_runs(text).is_empty()
}

/// Byte ranges of e-mail addresses in `text`: a local part, `@`, and a
/// domain of at least two labels ending in a letters-only label.
fn email_spans(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let local = |b: u8| b.is_ascii_alphanumeric() || b"._%+-'".contains(&b);
    let host = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'-';
    let mut spans = Vec::new();
    for (at, _) in text.match_indices('@') {
        let start = bytes[..at].iter().rposition(|b| !local(*b)).map_or(0, |p| p + 1);
        let end = bytes[at + 1..].iter().position(|b| !host(*b)).map_or(bytes.len(), |p| at + 1 + p);
        let domain = text[at + 1..end].trim_end_matches('.');
        let mut labels = domain.split('.');
        let tld_ok =
            labels.next_back().is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()));
        if start < at && tld_ok && labels.all(|label| !label.is_empty()) && domain.contains('.') {
            spans.push((start, at + 1 + domain.len()));
        }
    }
    spans
}

/// Whether `text` holds an e-mail address.
pub fn has_email(text: &str) -> bool {
    !email_spans(text).is_empty()
}

/// `text` with every phone-like run and e-mail address replaced by
/// `[removed]`: free text (a reviewer's note) may explain, never identify.
pub fn mask_contact_details(text: &str) -> String {
    let mut spans = phone_like_runs(text);
    spans.extend(email_spans(text));
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in spans {
        if end <= at {
            continue;
        }
        out.push_str(&text[at..start.max(at)]);
        out.push_str("[removed]");
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// Opaque ids: 1 to 128 printable ASCII characters without spaces or quotes.
pub(super) fn opaque_id(wire: &WireEvent<'_>, field: &'static str) -> Result<String, EdgeError> {
    let value = wire.required_str(field)?;
    let ok = !value.is_empty()
        && value.len() <= MAX_ID_LEN
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.:@/+=#".contains(&b));
    if ok {
        Ok(value.to_string())
    } else {
        Err(EdgeError::new(
            RejectReason::InvalidValue,
            Some(field),
            format!("`{field}` must be an opaque id of 1-{MAX_ID_LEN} characters from A-Z a-z 0-9 _ - . : @ / + = #"),
        ))
    }
}

/// An opaque id of the service's own (device, group, business) that must
/// not be a phone number or an e-mail address in disguise.
pub(super) fn service_id(wire: &WireEvent<'_>, field: &'static str) -> Result<String, EdgeError> {
    let value = opaque_id(wire, field)?;
    if has_phone_like_run(&value) {
        return Err(EdgeError::new(
            RejectReason::InvalidValue,
            Some(field),
            format!(
                "`{field}` must be opaque: it holds a run of {PHONE_LIKE_DIGITS} or more digits, like a phone number"
            ),
        ));
    }
    if has_email(&value) {
        return Err(EdgeError::new(
            RejectReason::InvalidValue,
            Some(field),
            format!("`{field}` must be opaque: it holds an e-mail address"),
        ));
    }
    Ok(value)
}

/// Reasons are short machine tokens, never free text (free text is content).
pub(super) fn reason_token(wire: &WireEvent<'_>, field: &'static str) -> Result<String, EdgeError> {
    let value = wire.required_str(field)?;
    if is_reason_token(value) {
        Ok(value.to_string())
    } else if value.contains(' ') {
        Err(EdgeError::content(field))
    } else {
        Err(EdgeError::new(
            RejectReason::InvalidValue,
            Some(field),
            format!("`{field}` must be a token of 1-{MAX_REASON_LEN} characters from a-z 0-9 _ -"),
        ))
    }
}

/// Reasons (report, partner flag) are short machine tokens: `[a-z0-9_-]{1,64}`.
pub fn is_reason_token(reason: &str) -> bool {
    !reason.is_empty()
        && reason.len() <= MAX_REASON_LEN
        && reason.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A bare domain: lowercase labels of letters, digits and hyphens joined by
/// dots. Anything more (scheme, path, query, port, spaces) is a link, which is
/// message content.
pub(super) fn bare_domain(value: &str) -> Result<String, EdgeError> {
    normalize_bare_domain(value).ok_or_else(|| EdgeError::content("link_domain"))
}

/// `value` lowercased if it is a syntactically valid domain name: at most
/// 253 characters, at least two labels of 1-63 letters, digits and inner
/// hyphens, the last one (the top-level domain) 2-63 letters, and no
/// phone-like run of digits. Else `None`. The abuse rules' domain lists use
/// the same definition.
pub fn normalize_bare_domain(value: &str) -> Option<String> {
    let domain = value.to_ascii_lowercase();
    let labels_ok = domain.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    let tld_ok = domain
        .rsplit('.')
        .next()
        .is_some_and(|tld| (2..=63).contains(&tld.len()) && tld.bytes().all(|b| b.is_ascii_alphabetic()));
    (labels_ok && tld_ok && domain.contains('.') && domain.len() <= 253 && !has_phone_like_run(&domain))
        .then_some(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Phone numbers hide in ids written any way; ordinary ids pass.
    #[test]
    fn phone_like_runs_and_emails_are_found() {
        for hidden in ["+14155550199", "d_415-555-0199", "(415) 555 0199", "g.98123.45678", "1234567"] {
            assert!(has_phone_like_run(hidden), "{hidden}");
        }
        for plain in ["d_3f9a12b4c5", "biz_123456", "g_ab12-cd34", "p_1", "2026-01"] {
            assert!(!has_phone_like_run(plain), "{plain}");
        }
        for hidden in ["jane.doe@example.com", "x:jane@mail.example.org", "a@b.co"] {
            assert!(has_email(hidden), "{hidden}");
        }
        for plain in ["user@partner", "@example.com", "team@host.1"] {
            assert!(!has_email(plain), "{plain}");
        }
    }

    /// Masking keeps the explanation and drops the contact details.
    #[test]
    fn masking_removes_numbers_and_addresses_only() {
        let note = "called +1 (415) 555-0199, wrote to jane.doe@example.com; spam ring 42";
        let masked = mask_contact_details(note);
        assert_eq!(masked, "called +[removed], wrote to [removed]; spam ring 42");
        assert!(!masked.contains("0199") && !masked.contains("jane"));
    }

    /// A domain needs a letters-only top-level label and no number inside.
    #[test]
    fn domains_are_syntactically_valid() {
        assert_eq!(normalize_bare_domain("Example.COM").as_deref(), Some("example.com"));
        assert_eq!(normalize_bare_domain("a-b.co.uk").as_deref(), Some("a-b.co.uk"));
        for bad in ["meet me at nine", "example", "example.c", "10.0.0.1", "call.4155550199.com", "x.-a.com", "a..com"]
        {
            assert_eq!(normalize_bare_domain(bad), None, "{bad}");
        }
    }
}
