//! Simulator: the deterministic workload generator.
//!
//! Owns: the synthetic population (subjects with valid phone numbers in
//! several regions, their communities, reciprocal contact books, groups,
//! businesses, partner accounts, spammers and hard negatives), the NDJSON
//! event stream it generates under event contract v1, and a ground-truth
//! labels stream. Output is a pure function of [`SimConfig`] (same config =>
//! byte-identical output).
//! Never: touches a data dir, the file system, the network, the clock or
//! thread-local randomness; it only writes into caller-supplied
//! buffers/strings.
//!
//! Generation is day by day: a precomputed plan of structural events
//! (registrations, contact snapshots, partner links, consents, abuse) is merged
//! with per-day activity (sessions, messages, business messages) scaled so the
//! total hits `target_events`; each day is sorted by emission key and about 1%
//! of lines are deliberately emitted late (up to 2 days after their `ts`).
//!
//! Numbers: regions IN, BR, US, ID, ES, GB, FR, MX, NG (mobile ranges), each
//! number checked once with `phonenumber`. Ranges avoid leading digits that
//! phonenumber 0.3 mangles when an international form is parsed *with* a
//! region (it strips the region's national prefix after the country code:
//! "+55 11 9..." read in US, "+91 90..." read in BR, and every German mobile
//! "+49 1..." read in US), so every written form reads back to the same
//! number from any region a line may carry and from the US default.
//!
//! Layout: this file draws who exists (regions, numbers, communities, roles,
//! address books, groups); `plan.rs` plans the structural events and
//! scales the daily activity; `day.rs` generates one day's events;
//! `render.rs` writes each event as a line; `phones.rs` holds the regions and
//! the written forms of a number. Each stage draws from its own seeded
//! generator, always in the same order.

mod day;
mod phones;
mod plan;
mod render;
#[cfg(test)]
mod tests;

use std::collections::HashSet;

use fastrand::Rng;

use phones::{F_E164, F_IDD, F_NATIONAL, F_SPACED, REGIONS};
use render::{form_bytes, mix, TsFmt, DAY_MS};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;

/// Configuration of a simulation run.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Number of subjects (accounts at the messaging service).
    pub subjects: u32,
    /// Length of the simulated window in days.
    pub days: u32,
    /// Epoch millis of day 0 start (UTC midnight).
    pub start_ms: i64,
    /// Approximate total number of event lines to emit.
    pub target_events: u64,
    /// Share of subjects that are spammers.
    pub spammer_share: f64,
    /// Share of subjects with a partner-network account.
    pub partner_share: f64,
    /// Share of subjects refusing ads processing.
    pub refusal_share: f64,
    /// Median contact-book size (capped to `subjects - 1`).
    pub median_contacts: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            subjects: 10_000,
            days: 30,
            // 2026-01-01T00:00:00Z
            start_ms: 1_767_225_600_000,
            target_events: 200_000,
            spammer_share: 0.01,
            partner_share: 0.4,
            refusal_share: 0.05,
            median_contacts: 100,
        }
    }
}

// Event kinds.
const K_REGISTER: u8 = 0;
const K_SESSION: u8 = 1;
const K_MSG_TO: u8 = 2;
const K_MSG_GROUP: u8 = 3;
const K_CONTACTS: u8 = 4;
const K_BIZ: u8 = 5;
const K_REPORT: u8 = 6;
const K_BLOCK: u8 = 7;
const K_CONSENT: u8 = 8;
const K_DELETE: u8 = 9;
const K_PARTNER_ACCOUNT: u8 = 10;
const K_PARTNER_FRIEND: u8 = 11;
const K_PARTNER_FLAG: u8 = 12;

// Behaviours (role codes). 0 = ordinary subject; 1..=4 spam; 5..=7 ham.
const B_NONE: u8 = 0;
const B_FRESH_BURST: u8 = 1;
const B_PHISHING: u8 = 2;
const B_MASS_REPORTED: u8 = 3;
const B_DEVICE_FARM: u8 = 4;
const B_BUSY_BIZ: u8 = 5;
const B_GROUP_ADMIN: u8 = 6;
const B_FESTIVE: u8 = 7;

const BEHAVIOUR_NAMES: [&str; 8] = [
    "none",
    "fresh_burst",
    "phishing",
    "mass_reported",
    "device_farm",
    "busy_business_replier",
    "group_admin",
    "festive_sender",
];

const BENIGN_DOMAINS: [&str; 10] = [
    "youtube.com",
    "instagram.com",
    "wikipedia.org",
    "amazon.com",
    "maps.google.com",
    "bbc.co.uk",
    "github.com",
    "spotify.com",
    "tiktok.com",
    "example.com",
];
const PHISHING_DOMAINS: [&str; 6] = [
    "secure-login-verify.top",
    "account-update-alert.xyz",
    "free-prize-claim.click",
    "bank-verify-now.info",
    "parcel-redelivery-fee.top",
    "wallet-unlock-support.live",
];
const REPORT_REASONS: [&str; 5] = ["spam", "scam", "harassment", "abuse", "fake_account"];
const FLAG_REASONS: [&str; 3] = ["spam", "fake_account", "scam"];

/// Message `b` payload: bits 0..4 kind, bits 4.. link (0 none, 1..=10 benign,
/// 64.. phishing).
const LINK_PHISH_BASE: u32 = 64;

/// One event before rendering. `key` orders emission (== `ts` except late
/// lines); `a`/`b` are kind-specific payloads.
#[derive(Clone, Copy, Debug)]
struct Ev {
    key: i64,
    ts: i64,
    subj: u32,
    a: u32,
    b: u32,
    kind: u8,
}

struct Subject {
    reg_ms: i64,
    del_ms: i64,
    device: u64,
    /// 0 = no partner account.
    partner: u64,
    /// Mean variable events on an active day.
    mean_active: f32,
    /// Probability of being active on a given day.
    active_p: f32,
    /// Pareto activity weight.
    weight: f32,
    form_off: u32,
    form_len: [u8; 4],
    community: u32,
    region: u8,
    platform: u8,
    /// Preferred written form of the own number.
    style: u8,
    behaviour: u8,
    biz_user: bool,
}

impl Subject {
    fn is_spam(&self) -> bool {
        (B_FRESH_BURST..=B_DEVICE_FARM).contains(&self.behaviour)
    }
}

struct Label {
    subj: u32,
    spam: bool,
    behaviour: u8,
    first_abuse: Option<i64>,
}

/// The deterministic workload simulator. See the module docs.
pub struct Simulator {
    cfg: SimConfig,
    start: i64,
    end: i64,
    subjects: Vec<Subject>,
    forms: Vec<u8>,
    contacts: Vec<Vec<u32>>,
    groups_of: Vec<Vec<u32>>,
    communities: Vec<(u32, u32)>,
    region_ranges: Vec<(u32, u32)>,
    normal_ids: Vec<u32>,
    n_biz: u32,
    cycle: Vec<u8>,
    plan: Vec<Ev>,
    plan_pos: usize,
    carry: Vec<Ev>,
    buf: Vec<Ev>,
    pos: usize,
    day: u32,
    sessions_tmp: Vec<i64>,
    day_rng: Rng,
    render_rng: Rng,
    ts_fmt: TsFmt,
    labels: Vec<Label>,
    estimated: u64,
}

/// Local-time hourly activity weights (daily cycle).
const HOURLY: [f64; 24] = [
    2.0, 1.0, 0.6, 0.4, 0.4, 0.6, 1.5, 3.0, 4.5, 5.5, 6.0, 6.0, 6.5, 6.0, 5.5, 5.5, 5.5, 6.0, 6.5, 7.0, 7.5, 7.0, 5.5,
    3.5,
];

fn build_cycle() -> Vec<u8> {
    let total: f64 = HOURLY.iter().sum();
    let mut table = Vec::with_capacity(1024);
    let mut acc = 0.0;
    let mut h = 0usize;
    for i in 0..1024 {
        let q = (i as f64 + 0.5) / 1024.0 * total;
        while h < 23 && acc + HOURLY[h] < q {
            acc += HOURLY[h];
            h += 1;
        }
        table.push(h as u8);
    }
    table
}

/// A timestamp inside the UTC day starting at `day_start`, following the local
/// daily cycle of a region with offset `tz_min`.
#[inline]
fn local_ts(rng: &mut Rng, cycle: &[u8], day_start: i64, tz_min: i32) -> i64 {
    let hour = i64::from(cycle[rng.usize(..cycle.len())]);
    let local = hour * HOUR + rng.i64(0..HOUR);
    day_start + (local - i64::from(tz_min) * MINUTE).rem_euclid(DAY_MS)
}

/// Stochastic rounding: `floor(x)` plus one with probability `frac(x)`.
#[inline]
fn sround(rng: &mut Rng, x: f64) -> u32 {
    let f = x.floor();
    f as u32 + u32::from(rng.f64() < x - f)
}

fn std_normal(rng: &mut Rng) -> f64 {
    let u1 = rng.f64().max(1e-12);
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn msg_kind(rng: &mut Rng) -> u32 {
    let u = rng.f32();
    if u < 0.70 {
        0
    } else if u < 0.85 {
        1
    } else if u < 0.92 {
        2
    } else if u < 0.98 {
        3
    } else {
        4
    }
}

impl Simulator {
    /// Builds the population and the plan of structural events.
    pub fn new(config: SimConfig) -> Simulator {
        let cfg = config;
        let n = cfg.subjects as usize;
        let days = cfg.days.max(1);
        let start = cfg.start_ms;
        let end = start + i64::from(days) * DAY_MS;
        let mut rng = Rng::with_seed(mix(cfg.seed ^ 0x5eed_0001));
        let cycle = build_cycle();

        // --- Regions: contiguous id ranges per region.
        let total_w: f64 = REGIONS.iter().map(|r| r.weight).sum();
        let mut region_of: Vec<u8> = (0..n)
            .map(|_| {
                let mut u = rng.f64() * total_w;
                let mut r = 0;
                while r + 1 < REGIONS.len() && u >= REGIONS[r].weight {
                    u -= REGIONS[r].weight;
                    r += 1;
                }
                r as u8
            })
            .collect();
        region_of.sort_unstable();
        let mut region_ranges = vec![(0u32, 0u32); REGIONS.len()];
        {
            let mut i = 0usize;
            for (r, range) in region_ranges.iter_mut().enumerate() {
                let s = i;
                while i < n && usize::from(region_of[i]) == r {
                    i += 1;
                }
                *range = (s as u32, i as u32);
            }
        }

        // --- Phone numbers: unique, valid, with precomputed written forms.
        // Candidates are drawn serially (deterministic); the slow validity
        // check runs on a few threads; acceptance is decided in order, so the
        // result does not depend on the thread count.
        let mut seen: HashSet<u64> = HashSet::with_capacity(n);
        let mut forms: Vec<u8> = Vec::with_capacity(n * 64);
        let mut form_sets: Vec<Option<[String; 4]>> = vec![None; n];
        let mut pending: Vec<usize> = (0..n).collect();
        let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).clamp(1, 4);
        while !pending.is_empty() {
            let candidates: Vec<(usize, u64, [String; 4])> = pending
                .iter()
                .map(|&i| {
                    let r = usize::from(region_of[i]);
                    let nsn = phones::draw_nsn(&mut rng, r);
                    let key: u64 = format!("{}{}", REGIONS[r].cc, nsn).parse().expect("digits fit in u64");
                    (i, key, phones::forms(r, &nsn))
                })
                .collect();
            let mut valid = vec![false; candidates.len()];
            let chunk = candidates.len().div_ceil(threads).max(1);
            std::thread::scope(|scope| {
                for (cands, out) in candidates.chunks(chunk).zip(valid.chunks_mut(chunk)) {
                    let region_of = &region_of;
                    scope.spawn(move || {
                        for ((i, _, f), v) in cands.iter().zip(out.iter_mut()) {
                            *v = phones::is_valid_e164(&f[F_E164], usize::from(region_of[*i]));
                        }
                    });
                }
            });
            pending.clear();
            for ((i, key, f), ok) in candidates.into_iter().zip(valid) {
                if ok && seen.insert(key) {
                    form_sets[i] = Some(f);
                } else {
                    pending.push(i);
                }
            }
        }
        let mut form_meta: Vec<(u32, [u8; 4])> = Vec::with_capacity(n);
        for f in form_sets {
            let f = f.expect("every subject got a number");
            let off = forms.len() as u32;
            let mut lens = [0u8; 4];
            for (k, s) in f.iter().enumerate() {
                lens[k] = s.len() as u8;
                forms.extend_from_slice(s.as_bytes());
            }
            form_meta.push((off, lens));
        }

        // --- Communities: contiguous chunks inside each region.
        let median = cfg.median_contacts.min(cfg.subjects.saturating_sub(1));
        let m = median.max(5);
        let mut communities: Vec<(u32, u32)> = Vec::new();
        let mut community_of = vec![0u32; n];
        for &(s, e) in &region_ranges {
            let mut at = s;
            while at < e {
                let size = rng.u32(2 * m..=6 * m);
                let mut stop = (at + size).min(e);
                if e - stop < m {
                    stop = e;
                }
                for c in &mut community_of[at as usize..stop as usize] {
                    *c = communities.len() as u32;
                }
                communities.push((at, stop));
                at = stop;
            }
        }

        // --- Roles.
        let mut perm: Vec<u32> = (0..cfg.subjects).collect();
        rng.shuffle(&mut perm);
        let n_spam = ((cfg.spammer_share.clamp(0.0, 0.5) * n as f64).round() as usize).min(n);
        let n_ham = if n >= 200 { ((n as f64 * 0.003).round() as usize).max(3) } else { 0 };
        let n_ham = n_ham.min(n - n_spam);
        let mut behaviour = vec![B_NONE; n];
        {
            let farm_n = {
                let f = (n_spam as f64 * 0.2).round() as usize;
                if f >= 3 {
                    f
                } else {
                    0
                }
            };
            let mass_n = (n_spam as f64 * 0.2).round() as usize;
            let phish_n = (n_spam as f64 * 0.25).round() as usize;
            for (k, &id) in perm[..n_spam].iter().enumerate() {
                behaviour[id as usize] = if k < farm_n {
                    B_DEVICE_FARM
                } else if k < farm_n + mass_n {
                    B_MASS_REPORTED
                } else if k < farm_n + mass_n + phish_n {
                    B_PHISHING
                } else {
                    B_FRESH_BURST
                };
            }
            for (k, &id) in perm[n_spam..n_spam + n_ham].iter().enumerate() {
                behaviour[id as usize] = B_BUSY_BIZ + (k % 3) as u8;
            }
        }
        let del_candidates = &perm[n_spam + n_ham..];
        let n_del = (sround(&mut rng, n as f64 * 0.0001) as usize).max(usize::from(n >= 1_000));
        let deleted: Vec<u32> = del_candidates.iter().take(n_del).copied().collect();

        // --- Per-subject attributes.
        let mut subjects: Vec<Subject> = Vec::with_capacity(n);
        for i in 0..n {
            let region = region_of[i];
            let b = behaviour[i];
            let is_spam = (B_FRESH_BURST..=B_DEVICE_FARM).contains(&b);
            let pu = rng.f32();
            let platform = if b == B_DEVICE_FARM || pu < 0.70 {
                0
            } else if pu < 0.95 {
                1
            } else if pu < 0.99 {
                2
            } else {
                3
            };
            let su = rng.f32();
            let style = if su < 0.5 {
                F_E164
            } else if su < 0.7 {
                F_SPACED
            } else if su < 0.95 {
                F_NATIONAL
            } else {
                F_IDD
            } as u8;
            let reg_ms = if is_spam {
                // Refined below per behaviour.
                start - rng.i64(DAY_MS..3 * 365 * DAY_MS)
            } else if rng.f32() < 0.03 {
                start + rng.i64(0..i64::from(days) * DAY_MS)
            } else {
                start - rng.i64(DAY_MS..5 * 365 * DAY_MS)
            };
            let weight = (rng.f64().max(1e-9).powf(-1.0 / 1.3)).min(300.0) as f32;
            let partner_p = if is_spam { 0.3 } else { cfg.partner_share };
            let partner = if rng.f64() < partner_p { mix(cfg.seed ^ mix(i as u64 ^ 0x7061_7274)) | 1 } else { 0 };
            let (form_off, form_len) = form_meta[i];
            subjects.push(Subject {
                reg_ms,
                del_ms: i64::MAX,
                device: mix(cfg.seed.wrapping_mul(31) ^ mix(i as u64 ^ 0x6465_7669)),
                partner,
                mean_active: 0.0,
                active_p: 0.0,
                weight,
                form_off,
                form_len,
                community: community_of[i],
                region,
                platform,
                style,
                behaviour: b,
                biz_user: rng.f32() < 0.35,
            });
        }
        let normal_ids: Vec<u32> = (0..cfg.subjects).filter(|&i| !subjects[i as usize].is_spam()).collect();

        // --- Contact books: clustered and mostly reciprocal.
        let mut contacts: Vec<Vec<u32>> = vec![Vec::new(); n];
        if n >= 2 {
            for i in 0..n {
                if subjects[i].is_spam() {
                    let k = rng.usize(0..=8).min(normal_ids.len());
                    for _ in 0..k {
                        let j = normal_ids[rng.usize(..normal_ids.len())];
                        if j as usize != i {
                            contacts[i].push(j);
                        }
                    }
                    continue;
                }
                let d = (f64::from(median) * (0.5 * std_normal(&mut rng)).exp()).clamp(1.0, (n - 1) as f64);
                let picks = sround(&mut rng, d * 0.56);
                let (cs, ce) = communities[subjects[i].community as usize];
                let (rs, re) = region_ranges[usize::from(subjects[i].region)];
                for _ in 0..picks {
                    let mut j = None;
                    for _ in 0..4 {
                        let u = rng.f32();
                        let c = if u < 0.85 && ce - cs > 1 {
                            rng.u32(cs..ce)
                        } else if u < 0.95 && re - rs > 1 {
                            rng.u32(rs..re)
                        } else {
                            rng.u32(0..n as u32)
                        };
                        if c as usize != i && !subjects[c as usize].is_spam() {
                            j = Some(c);
                            break;
                        }
                    }
                    let Some(j) = j else { continue };
                    let u = rng.f32();
                    if u < 0.88 {
                        contacts[i].push(j);
                        contacts[j as usize].push(i as u32);
                    } else if u < 0.94 {
                        contacts[i].push(j);
                    } else {
                        contacts[j as usize].push(i as u32);
                    }
                }
            }
            for c in &mut contacts {
                c.sort_unstable();
                c.dedup();
            }
        }

        // --- Groups: drawn from communities.
        let mut groups_of: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut n_groups = 0u32;
        if normal_ids.len() >= 3 {
            let base_groups = (n / 8).max(1);
            for _ in 0..base_groups {
                let s = normal_ids[rng.usize(..normal_ids.len())] as usize;
                let (cs, ce) = communities[subjects[s].community as usize];
                let size = 3 + (47.0 * rng.f64().powi(3)) as u32;
                let g = n_groups;
                n_groups += 1;
                groups_of[s].push(g);
                for _ in 1..size {
                    let j = rng.u32(cs..ce) as usize;
                    if !subjects[j].is_spam() {
                        groups_of[j].push(g);
                    }
                }
            }
            for i in 0..n {
                if subjects[i].behaviour == B_GROUP_ADMIN {
                    let (cs, ce) = communities[subjects[i].community as usize];
                    for _ in 0..rng.u32(15..=30) {
                        let g = n_groups;
                        n_groups += 1;
                        groups_of[i].push(g);
                        for _ in 0..rng.u32(2..=12) {
                            let j = rng.u32(cs..ce) as usize;
                            if !subjects[j].is_spam() {
                                groups_of[j].push(g);
                            }
                        }
                    }
                }
            }
            for g in &mut groups_of {
                g.sort_unstable();
                g.dedup();
            }
        }
        let n_biz = (cfg.subjects / 200).max(10);

        let mut sim = Simulator {
            start,
            end,
            subjects,
            forms,
            contacts,
            groups_of,
            communities,
            region_ranges,
            normal_ids,
            n_biz,
            cycle,
            plan: Vec::new(),
            plan_pos: 0,
            carry: Vec::new(),
            buf: Vec::new(),
            pos: 0,
            day: 0,
            sessions_tmp: Vec::new(),
            day_rng: Rng::with_seed(mix(cfg.seed ^ 0x5eed_0003)),
            render_rng: Rng::with_seed(mix(cfg.seed ^ 0x5eed_0004)),
            ts_fmt: TsFmt::new(),
            labels: Vec::new(),
            estimated: 0,
            cfg,
        };
        let mut plan_rng = Rng::with_seed(mix(sim.cfg.seed ^ 0x5eed_0002));
        sim.build_plan(&mut plan_rng, &deleted);
        sim.scale_activity();
        sim
    }

    /// Appends the next NDJSON line (without trailing newline) to `line` and
    /// returns its event-time `ts` in epoch millis, or `None` when done.
    pub fn next_line(&mut self, line: &mut Vec<u8>) -> Option<i64> {
        loop {
            if self.pos < self.buf.len() {
                let e = self.buf[self.pos];
                self.pos += 1;
                self.render(&e, line);
                return Some(e.ts);
            }
            if self.day >= self.cfg.days.max(1) {
                return None;
            }
            self.build_day();
        }
    }

    /// Numbers (written `+cc …`) of up to `n` of the most active ordinary
    /// people who have a partner account and keep theirs to the end: for
    /// `proviso demo` to suggest in its privacy center. Simulated numbers
    /// from the regions' mobile ranges, not anyone's.
    pub fn sample_people(&self, n: usize) -> Vec<String> {
        let mut people: Vec<&Subject> = self
            .subjects
            .iter()
            .filter(|s| s.behaviour == B_NONE && s.partner != 0 && s.del_ms == i64::MAX && s.reg_ms < self.start)
            .collect();
        people.sort_by(|a, b| b.active_p.total_cmp(&a.active_p).then(b.biz_user.cmp(&a.biz_user)));
        people
            .into_iter()
            .take(n)
            .map(|s| String::from_utf8_lossy(form_bytes(&self.forms, s, F_SPACED)).into_owned())
            .collect()
    }

    /// Total lines expected (an estimate for progress bars).
    pub fn estimated_lines(&self) -> u64 {
        self.estimated
    }

    /// Ground-truth labels as NDJSON lines (one per labelled subject).
    pub fn labels_ndjson(&self) -> String {
        let mut out = String::with_capacity(self.labels.len() * 100);
        for l in &self.labels {
            let s = &self.subjects[l.subj as usize];
            out.push_str("{\"phone\":\"");
            out.push_str(self.form_str(s, F_E164));
            out.push_str("\",\"label\":\"");
            out.push_str(if l.spam { "spam" } else { "ham" });
            out.push_str("\",\"behaviour\":\"");
            out.push_str(BEHAVIOUR_NAMES[usize::from(l.behaviour)]);
            out.push_str("\",\"region\":\"");
            out.push_str(REGIONS[usize::from(s.region)].code);
            out.push_str("\",\"registered_in_window\":");
            out.push_str(if s.reg_ms >= self.start { "true" } else { "false" });
            out.push_str(",\"first_abuse_ts\":");
            match l.first_abuse {
                Some(t) => out.push_str(&t.to_string()),
                None => out.push_str("null"),
            }
            out.push_str("}\n");
        }
        out
    }

    fn form_str(&self, s: &Subject, f: usize) -> &str {
        let bytes = form_bytes(&self.forms, s, f);
        std::str::from_utf8(bytes).expect("forms are ASCII")
    }
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
