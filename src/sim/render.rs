//! Hand-written NDJSON rendering helpers (no serde on the hot path).

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
