//! Rendering: each planned event as its NDJSON line, written by hand (no
//! serde on the hot path).
//!
//! Owns: the line of every event type, which written form of a number each
//! line carries, timestamps (RFC 3339 or epoch millis), and the opaque ids
//! derived for devices, groups and partner accounts.
//! Never: decides what happens or when, or draws from a generator other than
//! the render one.

use fastrand::Rng;

use super::phones::{F_E164, F_IDD, F_NATIONAL, F_SPACED, REGIONS};
use super::{
    Ev, Simulator, Subject, BENIGN_DOMAINS, FLAG_REASONS, K_BIZ, K_BLOCK, K_CONSENT, K_CONTACTS, K_MSG_GROUP, K_MSG_TO,
    K_PARTNER_ACCOUNT, K_PARTNER_FLAG, K_PARTNER_FRIEND, K_REGISTER, K_REPORT, K_SESSION, LINK_INVENTED_BASE,
    LINK_PHISH_BASE, PHISHING_DOMAINS, REPORT_REASONS,
};

/// Milliseconds in a day.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// Appends a non-negative integer in decimal.
#[inline]
pub(crate) fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends a signed integer in decimal.
#[inline]
pub(crate) fn push_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    push_u64(out, v.unsigned_abs());
}

/// Appends `v` as exactly `width` zero-padded digits.
#[inline]
fn push_padded(out: &mut Vec<u8>, v: u32, width: usize) {
    let mut buf = [b'0'; 4];
    let mut v = v;
    for i in (0..width).rev() {
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&buf[..width]);
}

/// Appends `v` as lowercase hex, `digits` digits.
#[inline]
pub(crate) fn push_hex(out: &mut Vec<u8>, v: u64, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        out.push(HEX[((v >> (i * 4)) & 0xf) as usize]);
    }
}

/// Appends `v` as `digits` letters, four bits each: ids of the service's own
/// (devices, groups) that never hold a run of digits, as the edge requires.
#[inline]
pub(crate) fn push_letters(out: &mut Vec<u8>, v: u64, digits: u32) {
    const LETTERS: &[u8; 16] = b"abcdefghjkmnpqrs";
    for i in (0..digits).rev() {
        out.push(LETTERS[((v >> (i * 4)) & 0xf) as usize]);
    }
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// RFC 3339 formatter with a one-day cache of the date prefix.
pub(crate) struct TsFmt {
    day: i64,
    prefix: [u8; 11],
}

impl TsFmt {
    pub(crate) fn new() -> Self {
        TsFmt { day: i64::MIN, prefix: [0; 11] }
    }

    /// Appends `"YYYY-MM-DDTHH:MM:SS.mmmZ"` (with quotes).
    #[inline]
    pub(crate) fn push(&mut self, out: &mut Vec<u8>, ms: i64) {
        let day = ms.div_euclid(DAY_MS);
        if day != self.day {
            self.day = day;
            let (y, m, d) = civil_from_days(day);
            let mut p = Vec::with_capacity(11);
            push_padded(&mut p, y.clamp(0, 9999) as u32, 4);
            p.push(b'-');
            push_padded(&mut p, m, 2);
            p.push(b'-');
            push_padded(&mut p, d, 2);
            p.push(b'T');
            self.prefix.copy_from_slice(&p);
        }
        let rem = ms.rem_euclid(DAY_MS) as u32;
        let (secs, milli) = (rem / 1000, rem % 1000);
        out.push(b'"');
        out.extend_from_slice(&self.prefix);
        push_padded(out, secs / 3600, 2);
        out.push(b':');
        push_padded(out, (secs / 60) % 60, 2);
        out.push(b':');
        push_padded(out, secs % 60, 2);
        out.push(b'.');
        push_padded(out, milli, 3);
        out.extend_from_slice(b"Z\"");
    }
}

/// SplitMix64 finaliser: a cheap, well-mixed hash for deriving opaque ids.
#[inline]
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The `type` field of each event kind, indexed by `K_*`.
const TYPE_NAMES: [&str; 13] = [
    "register",
    "session",
    "message",
    "message",
    "contacts",
    "business_message",
    "report",
    "block",
    "consent",
    "delete_account",
    "partner_account",
    "partner_friend",
    "partner_flag",
];

/// The `platform` of a registration, indexed by `Subject::platform`.
const PLATFORMS: [&str; 4] = ["android", "ios", "web", "other"];
/// The `kind` of a message, indexed by the low four bits of its payload.
const MSG_KINDS: [&str; 5] = ["text", "media", "voice", "call", "other"];

impl Simulator {
    /// Renders one event as a JSON object.
    pub(super) fn render(&mut self, e: &Ev, out: &mut Vec<u8>) {
        let rr = &mut self.render_rng;
        let s = &self.subjects[e.subj as usize];
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(TYPE_NAMES[usize::from(e.kind)].as_bytes());
        out.extend_from_slice(b"\",\"ts\":");
        if rr.u32(0..10) == 0 {
            push_i64(out, e.ts);
        } else {
            self.ts_fmt.push(out, e.ts);
        }
        // Acting phone in the subject's preferred form (mostly).
        let region = s.region;
        let idd00 = REGIONS[usize::from(region)].idd00;
        let mut form = if rr.u32(0..100) < 85 { usize::from(s.style) } else { rr.usize(0..4) };
        if form == F_IDD && !idd00 {
            form = F_NATIONAL;
        }
        let line_country =
            if form == F_NATIONAL || form == F_IDD || e.kind == K_REGISTER { Some(region) } else { None };
        out.extend_from_slice(b",\"phone\":\"");
        out.extend_from_slice(form_bytes(&self.forms, s, form));
        out.push(b'"');
        if let Some(c) = line_country {
            out.extend_from_slice(b",\"country\":\"");
            out.extend_from_slice(REGIONS[usize::from(c)].code.as_bytes());
            out.push(b'"');
        }
        match e.kind {
            K_REGISTER | K_SESSION => {
                out.extend_from_slice(b",\"device\":\"d_");
                push_letters(out, s.device, 16);
                out.push(b'"');
                if e.kind == K_REGISTER {
                    out.extend_from_slice(b",\"platform\":\"");
                    out.extend_from_slice(PLATFORMS[usize::from(s.platform)].as_bytes());
                    out.push(b'"');
                }
            }
            K_MSG_TO | K_MSG_GROUP => {
                if e.kind == K_MSG_TO {
                    out.extend_from_slice(b",\"to\":\"");
                    push_other(out, rr, &self.forms, &self.subjects[e.a as usize], line_country);
                    out.push(b'"');
                } else {
                    out.extend_from_slice(b",\"group\":\"g_");
                    push_letters(out, mix(self.cfg.seed ^ 0x6772_6f75 ^ u64::from(e.a)), 12);
                    out.push(b'"');
                }
                out.extend_from_slice(b",\"kind\":\"");
                out.extend_from_slice(MSG_KINDS[(e.b & 0xf) as usize].as_bytes());
                out.push(b'"');
                let link = e.b >> 4;
                if link != 0 {
                    out.extend_from_slice(b",\"link_domain\":\"");
                    let dom = if link >= LINK_INVENTED_BASE {
                        let index = (link - LINK_INVENTED_BASE) as usize;
                        self.invented_domains.get(index).map_or("example.com", String::as_str)
                    } else if link >= LINK_PHISH_BASE {
                        PHISHING_DOMAINS[(link - LINK_PHISH_BASE) as usize % PHISHING_DOMAINS.len()]
                    } else {
                        BENIGN_DOMAINS[(link - 1) as usize % BENIGN_DOMAINS.len()]
                    };
                    out.extend_from_slice(dom.as_bytes());
                    out.push(b'"');
                }
            }
            K_CONTACTS => {
                let i = e.subj as usize;
                if e.b == 1 {
                    mutate_book(rr, &mut self.contacts[i], i, self.communities[s.community as usize], &self.subjects);
                }
                out.extend_from_slice(b",\"contacts\":[");
                for (k, &c) in self.contacts[i].iter().enumerate() {
                    if k > 0 {
                        out.push(b',');
                    }
                    out.push(b'"');
                    push_other(out, rr, &self.forms, &self.subjects[c as usize], line_country);
                    out.push(b'"');
                }
                out.push(b']');
            }
            K_BIZ => {
                out.extend_from_slice(b",\"business\":\"biz_");
                push_u64(out, u64::from(e.a));
                out.extend_from_slice(if e.b == 0 { b"\",\"direction\":\"out\"" } else { b"\",\"direction\":\"in\"" });
            }
            K_REPORT | K_BLOCK => {
                out.extend_from_slice(b",\"target\":\"");
                push_other(out, rr, &self.forms, &self.subjects[e.a as usize], line_country);
                out.push(b'"');
                if e.kind == K_REPORT {
                    out.extend_from_slice(b",\"reason\":\"");
                    out.extend_from_slice(REPORT_REASONS[e.b as usize % REPORT_REASONS.len()].as_bytes());
                    out.push(b'"');
                }
            }
            K_CONSENT => {
                out.extend_from_slice(if e.a == 0 { b",\"purpose\":\"product\"" } else { b",\"purpose\":\"ads\"" });
                out.extend_from_slice(if e.b == 0 { b",\"granted\":false" } else { b",\"granted\":true" });
            }
            K_PARTNER_ACCOUNT | K_PARTNER_FRIEND | K_PARTNER_FLAG => {
                out.extend_from_slice(b",\"partner_id\":\"p_");
                push_hex(out, s.partner, 16);
                out.push(b'"');
                if e.kind == K_PARTNER_FRIEND {
                    out.extend_from_slice(b",\"friend\":\"p_");
                    push_hex(out, self.subjects[e.a as usize].partner, 16);
                    out.extend_from_slice(if e.b == 0 {
                        b"\",\"state\":\"added\""
                    } else {
                        b"\",\"state\":\"removed\""
                    });
                } else if e.kind == K_PARTNER_FLAG {
                    out.extend_from_slice(b",\"reason\":\"");
                    out.extend_from_slice(FLAG_REASONS[e.b as usize % FLAG_REASONS.len()].as_bytes());
                    out.push(b'"');
                }
            }
            _ => {}
        }
        out.push(b'}');
    }
}

#[inline]
pub(super) fn form_bytes<'a>(forms: &'a [u8], s: &Subject, f: usize) -> &'a [u8] {
    let mut off = s.form_off as usize;
    for k in 0..f {
        off += usize::from(s.form_len[k]);
    }
    &forms[off..off + usize::from(s.form_len[f])]
}

/// Writes the number of `t` as seen from a line whose `country` is
/// `line_country`: national forms only when `t` is in that region, "00" forms
/// only where the line's region dials "00", else international.
#[inline]
fn push_other(out: &mut Vec<u8>, rr: &mut Rng, forms: &[u8], t: &Subject, line_country: Option<u8>) {
    let u = rr.u32(0..100);
    let f = match line_country {
        Some(c) if c == t.region => {
            if u < 50 {
                F_NATIONAL
            } else if u < 80 {
                F_E164
            } else if u < 95 || !REGIONS[usize::from(c)].idd00 {
                F_SPACED
            } else {
                F_IDD
            }
        }
        Some(c) if REGIONS[usize::from(c)].idd00 => {
            if u < 60 {
                F_E164
            } else if u < 90 {
                F_SPACED
            } else {
                F_IDD
            }
        }
        _ => {
            if u < 75 {
                F_E164
            } else {
                F_SPACED
            }
        }
    };
    out.extend_from_slice(form_bytes(forms, t, f));
}

/// Small change to an address book before a later snapshot: drop up to two
/// entries, add up to three community members.
fn mutate_book(rr: &mut Rng, book: &mut Vec<u32>, i: usize, community: (u32, u32), subjects: &[Subject]) {
    if book.len() > 5 {
        for _ in 0..rr.usize(0..=2) {
            let k = rr.usize(..book.len());
            book.remove(k);
        }
    }
    let (cs, ce) = community;
    if ce > cs {
        for _ in 0..rr.usize(1..=3) {
            let j = rr.u32(cs..ce);
            if j as usize != i && !subjects[j as usize].is_spam() {
                if let Err(pos) = book.binary_search(&j) {
                    book.insert(pos, j);
                }
            }
        }
    }
}
