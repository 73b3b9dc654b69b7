//! Phone-number generation for the simulator: regions, mobile ranges and the
//! human-written forms of each number (E.164, spaced international, IDD "00",
//! national).

use fastrand::Rng;

/// A region the simulator draws subjects from.
pub(crate) struct Region {
    /// ISO 3166-1 alpha-2 code (also the `country` field value).
    pub code: &'static str,
    /// Country calling code digits.
    pub cc: &'static str,
    /// Share of the population.
    pub weight: f64,
    /// Local offset from UTC in minutes (used for the daily cycle).
    pub tz_min: i32,
    /// Whether the region's international dialling prefix is "00", so that a
    /// line carrying this `country` may write other numbers as "00<cc> ...".
    pub idd00: bool,
}

pub(crate) const REGIONS: [Region; 9] = [
    Region { code: "IN", cc: "91", weight: 0.30, tz_min: 330, idd00: true },
    Region { code: "BR", cc: "55", weight: 0.15, tz_min: -180, idd00: false },
    Region { code: "US", cc: "1", weight: 0.15, tz_min: -300, idd00: false },
    Region { code: "ID", cc: "62", weight: 0.10, tz_min: 420, idd00: false },
    Region { code: "ES", cc: "34", weight: 0.08, tz_min: 60, idd00: true },
    Region { code: "GB", cc: "44", weight: 0.08, tz_min: 0, idd00: true },
    Region { code: "FR", cc: "33", weight: 0.06, tz_min: 60, idd00: true },
    Region { code: "MX", cc: "52", weight: 0.04, tz_min: -360, idd00: true },
    Region { code: "NG", cc: "234", weight: 0.04, tz_min: 60, idd00: false },
];

/// Index of a form inside a subject's precomputed forms.
pub(crate) const F_E164: usize = 0;
pub(crate) const F_SPACED: usize = 1;
pub(crate) const F_NATIONAL: usize = 2;
pub(crate) const F_IDD: usize = 3;

fn pick<'a>(rng: &mut Rng, xs: &[&'a str]) -> &'a str {
    xs[rng.usize(..xs.len())]
}

fn push_digits(rng: &mut Rng, s: &mut String, n: usize) {
    for _ in 0..n {
        s.push(char::from(b'0' + rng.u8(0..10)));
    }
}

/// Draws a national significant number (digits only) in a mobile range of
/// `region`. Not guaranteed valid: the caller checks with `phonenumber`.
pub(crate) fn draw_nsn(rng: &mut Rng, region: usize) -> String {
    let mut s = String::with_capacity(12);
    match REGIONS[region].code {
        "IN" => {
            // Never "90": Brazil's parsing prefix would swallow it.
            s.push_str(pick(rng, &["9", "9", "9", "8", "7", "6"]));
            if s == "9" {
                s.push(char::from(b'0' + rng.u8(1..10)));
                push_digits(rng, &mut s, 8);
            } else {
                push_digits(rng, &mut s, 9);
            }
        }
        "BR" => {
            s.push_str(pick(
                rng,
                &["21", "21", "31", "41", "51", "61", "71", "81", "85", "27", "48", "62", "92", "47", "43"],
            ));
            s.push('9');
            s.push_str(pick(rng, &["6", "7", "8", "9"]));
            push_digits(rng, &mut s, 7);
        }
        "US" => {
            s.push_str(pick(
                rng,
                &["212", "415", "646", "312", "213", "305", "617", "206", "512", "702", "404", "713"],
            ));
            s.push(char::from(b'0' + rng.u8(2..10)));
            push_digits(rng, &mut s, 6);
        }
        "ID" => {
            s.push_str(pick(rng, &["811", "812", "813", "821", "822", "852", "853", "857", "878"]));
            push_digits(rng, &mut s, 8);
        }
        "ES" => {
            s.push_str(pick(rng, &["6", "6", "6", "7"]));
            push_digits(rng, &mut s, 8);
        }
        "GB" => {
            s.push('7');
            s.push(char::from(b'0' + rng.u8(4..10)));
            push_digits(rng, &mut s, 8);
        }
        "FR" => {
            s.push_str(pick(rng, &["6", "6", "6", "7"]));
            push_digits(rng, &mut s, 8);
        }
        "MX" => {
            s.push_str(pick(rng, &["55", "55", "33", "81"]));
            push_digits(rng, &mut s, 8);
        }
        _ => {
            // NG
            s.push_str(pick(rng, &["803", "806", "813", "816", "703", "706", "805", "807", "810", "802"]));
            push_digits(rng, &mut s, 7);
        }
    }
    s
}

/// Splits `nsn` into groups of the given lengths, the last group taking the
/// rest; separators between groups are given by `seps`.
fn grouped(nsn: &str, lens: &[usize], seps: &[&str]) -> String {
    let mut out = String::with_capacity(nsn.len() + lens.len() + 2);
    let mut at = 0;
    for (i, len) in lens.iter().enumerate() {
        let end = (at + len).min(nsn.len());
        out.push_str(&nsn[at..end]);
        at = end;
        if at < nsn.len() {
            out.push_str(seps.get(i).copied().unwrap_or(" "));
        }
    }
    out.push_str(&nsn[at..]);
    out
}

/// The four written forms of a number: E.164, spaced international, national
/// and IDD ("00" prefix; only readable where the IDD is "00").
pub(crate) fn forms(region: usize, nsn: &str) -> [String; 4] {
    let r = &REGIONS[region];
    let (intl_body, national) = match r.code {
        "IN" => (grouped(nsn, &[5], &[" "]), format!("0{}", grouped(nsn, &[5], &[" "]))),
        "BR" => (grouped(nsn, &[2, 5], &[" ", "-"]), format!("({}) {}-{}", &nsn[..2], &nsn[2..7], &nsn[7..])),
        "US" => (grouped(nsn, &[3, 3], &["-", "-"]), format!("({}) {}-{}", &nsn[..3], &nsn[3..6], &nsn[6..])),
        "ID" => (grouped(nsn, &[3, 4], &["-", "-"]), format!("0{}", grouped(nsn, &[3, 4], &["-", "-"]))),
        "ES" => (grouped(nsn, &[3, 3], &[" ", " "]), grouped(nsn, &[3, 3], &[" ", " "])),
        "GB" => (grouped(nsn, &[4], &[" "]), format!("0{}", grouped(nsn, &[4], &[" "]))),
        "FR" => (
            grouped(nsn, &[1, 2, 2, 2], &[" ", " ", " ", " "]),
            format!("0{}", grouped(nsn, &[1, 2, 2, 2], &[" ", " ", " ", " "])),
        ),
        "MX" => (grouped(nsn, &[2, 4], &[" ", " "]), grouped(nsn, &[2, 4], &[" ", " "])),
        _ => (grouped(nsn, &[3, 3], &[" ", " "]), format!("0{}", grouped(nsn, &[3, 3], &[" ", " "]))),
    };
    [format!("+{}{}", r.cc, nsn), format!("+{} {}", r.cc, intl_body), national, format!("00{} {}", r.cc, intl_body)]
}

/// Whether `e164` is a valid number according to the `phonenumber` crate and
/// belongs to `region` (not, say, to Jersey sharing +44).
pub(crate) fn is_valid_e164(e164: &str, region: usize) -> bool {
    match phonenumber::parse(None, e164) {
        Ok(n) => phonenumber::is_valid(&n) && n.country().id().is_some_and(|id| id.as_ref() == REGIONS[region].code),
        Err(_) => false,
    }
}
