//! Simulator: the deterministic workload generator. It owns the synthetic
//! population (subjects with valid phone numbers in several regions, their
//! communities, reciprocal contact books, groups, businesses, partner accounts,
//! spammers and hard negatives) and turns it into an NDJSON event stream under
//! event contract v1, plus a ground-truth labels stream. Output is a pure
//! function of [`SimConfig`] (same config => byte-identical output). It only
//! writes into caller-supplied buffers/strings: it never touches a data dir,
//! the file system, the network, the clock or thread-local randomness.
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

mod phones;
mod render;
#[cfg(test)]
mod tests;

use std::collections::HashSet;

use fastrand::Rng;

use phones::{F_E164, F_IDD, F_NATIONAL, F_SPACED, REGIONS};
use render::{mix, push_hex, push_i64, push_letters, push_u64, TsFmt, DAY_MS};

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

const PLATFORMS: [&str; 4] = ["android", "ios", "web", "other"];
const MSG_KINDS: [&str; 5] = ["text", "media", "voice", "call", "other"];
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

/// Accumulates planned (structural) events, dropping those outside the window.
struct Planner {
    ev: Vec<Ev>,
    start: i64,
    end: i64,
}

impl Planner {
    fn push(&mut self, ts: i64, subj: u32, kind: u8, a: u32, b: u32) -> bool {
        if ts < self.start || ts >= self.end {
            return false;
        }
        self.ev.push(Ev { key: ts, ts, subj, a, b, kind });
        true
    }
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

    fn local_ts(&self, rng: &mut Rng, day: u32, subj: usize) -> i64 {
        let tz = REGIONS[usize::from(self.subjects[subj].region)].tz_min;
        local_ts(rng, &self.cycle, self.start + i64::from(day) * DAY_MS, tz)
    }

    fn random_normal(&self, rng: &mut Rng) -> u32 {
        self.normal_ids[rng.usize(..self.normal_ids.len())]
    }

    /// Plans every structural event and all abuse / hard-negative activity.
    fn build_plan(&mut self, rng: &mut Rng, deleted: &[u32]) {
        let n = self.subjects.len();
        let days = self.cfg.days.max(1);
        let mut p = Planner { ev: Vec::with_capacity(n * 4), start: self.start, end: self.end };
        let mut link_ms = vec![i64::MAX; n];

        // Spammer registration times and device farms.
        let farm_ids: Vec<u32> =
            (0..n as u32).filter(|&i| self.subjects[i as usize].behaviour == B_DEVICE_FARM).collect();
        let mut at = 0usize;
        while at < farm_ids.len() {
            let mut size = rng.usize(5..=15).min(farm_ids.len() - at);
            if farm_ids.len() - at - size < 3 {
                size = farm_ids.len() - at;
            }
            let t0 = self.start + rng.i64(0..(i64::from(days) * DAY_MS - 6 * HOUR).max(1));
            let device = mix(self.cfg.seed ^ mix(0xfa70 ^ at as u64));
            for &id in &farm_ids[at..at + size] {
                let s = &mut self.subjects[id as usize];
                s.device = device;
                s.reg_ms = t0 + rng.i64(0..HOUR);
            }
            at += size;
        }
        for i in 0..n {
            let b = self.subjects[i].behaviour;
            let in_window = match b {
                B_FRESH_BURST => true,
                B_PHISHING | B_MASS_REPORTED => rng.bool(),
                _ => false,
            };
            if in_window {
                let span = (i64::from(days) * DAY_MS * 8 / 10).max(HOUR);
                self.subjects[i].reg_ms = self.start + rng.i64(0..span);
            }
        }

        // Per-subject structural events.
        for (i, link) in link_ms.iter_mut().enumerate() {
            let s = &self.subjects[i];
            let subj = i as u32;
            let reg = s.reg_ms;
            let reg_in = reg >= self.start;
            let spam = s.is_spam();
            let region = usize::from(s.region);
            if reg_in {
                p.push(reg, subj, K_REGISTER, 0, 0);
                p.push(reg + rng.i64(2_000..60_000), subj, K_SESSION, 0, 0);
            }
            let reg_day = if reg_in { ((reg - self.start) / DAY_MS) as u32 } else { 0 };
            if !spam || rng.bool() {
                let t = if reg_in { reg + rng.i64(MINUTE..10 * MINUTE) } else { self.local_ts(rng, 0, i) };
                p.push(t, subj, K_CONTACTS, 0, 0);
                if !spam && reg_day + 1 < days && rng.f64() < (f64::from(days) / 60.0).min(0.9) {
                    let d = rng.u32(reg_day + 1..days);
                    let t = self.local_ts(rng, d, i);
                    p.push(t, subj, K_CONTACTS, 0, 1);
                }
            }
            if s.partner != 0 {
                let t = if reg_in {
                    reg + rng.i64(HOUR..48 * HOUR)
                } else {
                    let d = rng.u32(0..days.min(3));
                    self.local_ts(rng, d, i)
                };
                if p.push(t, subj, K_PARTNER_ACCOUNT, 0, 0) {
                    *link = t;
                }
            }
            let after_reg = |rng: &mut Rng| -> i64 {
                let from = reg.max(self.start) + 10 * MINUTE;
                if from >= self.end {
                    return self.end;
                }
                let d = ((from - self.start) / DAY_MS) as u32;
                let d = rng.u32(d..days);
                let t = local_ts(rng, &self.cycle, self.start + i64::from(d) * DAY_MS, REGIONS[region].tz_min);
                t.max(from)
            };
            if !spam {
                let refusal = self.cfg.refusal_share;
                if rng.f64() < refusal {
                    let t = after_reg(rng);
                    p.push(t, subj, K_CONSENT, 1, 0);
                    if rng.f64() < 0.1 {
                        let t2 = t + rng.i64(HOUR..10 * DAY_MS);
                        p.push(t2, subj, K_CONSENT, 1, 1);
                    }
                }
                if rng.f64() < refusal * 0.4 {
                    p.push(after_reg(rng), subj, K_CONSENT, 0, 0);
                }
                if rng.f64() < 0.01 {
                    p.push(after_reg(rng), subj, K_CONSENT, 1, 1);
                }
                if rng.f64() < 0.005 {
                    p.push(after_reg(rng), subj, K_CONSENT, 0, 1);
                }
                // Background reports and blocks between acquaintances.
                let book = &self.contacts[i];
                if !book.is_empty() {
                    if rng.f64() < 0.01 {
                        let t = book[rng.usize(..book.len())];
                        p.push(after_reg(rng), subj, K_BLOCK, t, 0);
                    }
                    if rng.f64() < 0.003 {
                        let t = book[rng.usize(..book.len())];
                        p.push(after_reg(rng), subj, K_REPORT, t, rng.u32(0..REPORT_REASONS.len() as u32));
                    }
                }
            }
        }

        // Partner friendships among partner-linked mutual contacts.
        for i in 0..n {
            if link_ms[i] == i64::MAX || self.subjects[i].is_spam() {
                continue;
            }
            for &j in &self.contacts[i] {
                let ju = j as usize;
                if ju <= i || link_ms[ju] == i64::MAX || self.contacts[ju].binary_search(&(i as u32)).is_err() {
                    continue;
                }
                if rng.f32() >= 0.3 {
                    continue;
                }
                let from = link_ms[i].max(link_ms[ju]);
                let t = from + rng.i64(MINUTE..(self.end - from).max(MINUTE + 1));
                let (a, b) = if rng.bool() { (i as u32, j) } else { (j, i as u32) };
                if p.push(t, a, K_PARTNER_FRIEND, b, 0) && rng.f32() < 0.05 {
                    let t2 = t + rng.i64(HOUR..(self.end - t).max(HOUR + 1));
                    p.push(t2, a, K_PARTNER_FRIEND, b, 1);
                }
            }
        }

        // Abuse and hard negatives.
        let mut labels = Vec::new();
        for i in 0..n {
            let b = self.subjects[i].behaviour;
            if b == B_NONE {
                continue;
            }
            let first = self.plan_behaviour(rng, &mut p, i, &link_ms);
            labels.push(Label { subj: i as u32, spam: self.subjects[i].is_spam(), behaviour: b, first_abuse: first });
        }
        self.labels = labels;

        // Rare account deletions near the end.
        for &d in deleted {
            let i = d as usize;
            let day = days.saturating_sub(1 + rng.u32(0..2));
            let t = self.local_ts(rng, day, i);
            if t > self.subjects[i].reg_ms + HOUR && p.push(t, d, K_DELETE, 0, 0) {
                self.subjects[i].del_ms = t;
            }
        }
        let subjects = &self.subjects;
        // Nothing about a deleted account after its deletion: neither its own
        // events nor a partner friendship naming it (proviso refuses
        // friendships with accounts no longer linked).
        p.ev.retain(|e| {
            e.kind == K_DELETE
                || (e.ts < subjects[e.subj as usize].del_ms
                    && (e.kind != K_PARTNER_FRIEND || e.ts < subjects[e.a as usize].del_ms))
        });
        p.ev.sort_unstable_by_key(|e| (e.ts, e.subj, e.kind));
        self.plan = p.ev;
    }

    /// Plans the events of one spammer / hard negative; returns the first
    /// abusive timestamp for spammers.
    fn plan_behaviour(&self, rng: &mut Rng, p: &mut Planner, i: usize, link_ms: &[i64]) -> Option<i64> {
        let s = &self.subjects[i];
        let subj = i as u32;
        let days = self.cfg.days.max(1);
        let reg = s.reg_ms.max(self.start);
        let reg_day = ((reg - self.start) / DAY_MS) as u32;
        let mut first: Option<i64> = None;
        let mut note = |t: i64, ok: bool| {
            if ok && first.is_none_or(|f| t < f) {
                first = Some(t);
            }
        };
        if self.normal_ids.is_empty() {
            return None;
        }
        match s.behaviour {
            B_FRESH_BURST => {
                let mut t = reg + rng.i64(MINUTE..10 * MINUTE);
                let bursts = if rng.bool() { 2 } else { 1 };
                for k in 0..bursts {
                    let count = if k == 0 { rng.u32(100..=300) } else { rng.u32(50..=150) };
                    p.push(t - rng.i64(1_000..30_000), subj, K_SESSION, 0, 0);
                    for _ in 0..count {
                        t += rng.i64(50..1_500);
                        let to = self.random_normal(rng);
                        let kind = if rng.f32() < 0.9 { 0 } else { 1 };
                        note(t, p.push(t, subj, K_MSG_TO, to, kind));
                        let u = rng.f32();
                        if u < 0.04 {
                            p.push(t + rng.i64(MINUTE..60 * MINUTE), to, K_BLOCK, subj, 0);
                        } else if u < 0.055 {
                            p.push(t + rng.i64(MINUTE..60 * MINUTE), to, K_REPORT, subj, 0);
                        }
                    }
                    t += rng.i64(20 * HOUR..30 * HOUR);
                }
            }
            B_PHISHING => {
                let active_days = rng.u32(3..=8);
                for _ in 0..active_days {
                    let d = rng.u32(reg_day..days);
                    let mut t = self.local_ts(rng, d, i).max(reg + MINUTE);
                    p.push(t - rng.i64(1_000..60_000), subj, K_SESSION, 0, 0);
                    for _ in 0..rng.u32(20..=60) {
                        t += rng.i64(30_000..300_000);
                        let to = self.random_normal(rng);
                        let phish = rng.f32() < 0.7;
                        let link = if phish { LINK_PHISH_BASE + rng.u32(0..PHISHING_DOMAINS.len() as u32) } else { 0 };
                        let ok = p.push(t, subj, K_MSG_TO, to, link << 4);
                        note(t, ok && phish);
                        if ok && rng.f32() < 0.02 {
                            p.push(t + rng.i64(MINUTE..HOUR), to, K_REPORT, subj, 1);
                        }
                    }
                }
            }
            B_MASS_REPORTED => {
                let k = rng.usize(30..=80);
                let day0 = rng.u32(reg_day..days);
                let span_days = rng.u32(1..=4);
                let reporters = (k * 6 / 10).max(20).min(k);
                let mut sent = HashSet::new();
                let mut t_sess = i64::MIN / 2;
                for r in 0..k {
                    let to = self.random_normal(rng);
                    if !sent.insert(to) {
                        continue;
                    }
                    let d = (day0 + rng.u32(0..span_days)).min(days - 1);
                    let t = self.local_ts(rng, d, i).max(reg + MINUTE);
                    if t - t_sess > 6 * HOUR {
                        p.push(t - rng.i64(1_000..60_000), subj, K_SESSION, 0, 0);
                        t_sess = t;
                    }
                    let ok = p.push(t, subj, K_MSG_TO, to, 0);
                    note(t, ok);
                    if ok && rng.f32() < 0.3 {
                        p.push(t + rng.i64(5_000..600_000), subj, K_MSG_TO, to, 1);
                    }
                    if ok && r < reporters {
                        let tr = t + rng.i64(2 * MINUTE..120 * MINUTE);
                        let reason = if rng.f32() < 0.7 { 0 } else { rng.u32(1..3) };
                        p.push(tr, to, K_REPORT, subj, reason);
                        if rng.f32() < 0.7 {
                            p.push(tr + rng.i64(1_000..60_000), to, K_BLOCK, subj, 0);
                        }
                    }
                }
            }
            B_DEVICE_FARM => {
                let mut t = s.reg_ms + rng.i64(5 * MINUTE..120 * MINUTE);
                p.push(t - rng.i64(1_000..30_000), subj, K_SESSION, 0, 0);
                for _ in 0..rng.u32(30..=80) {
                    t += rng.i64(1_000..20_000);
                    let to = self.random_normal(rng);
                    let link =
                        if rng.f32() < 0.3 { LINK_PHISH_BASE + rng.u32(0..PHISHING_DOMAINS.len() as u32) } else { 0 };
                    note(t, p.push(t, subj, K_MSG_TO, to, link << 4));
                }
            }
            B_BUSY_BIZ => {
                for d in reg_day..days {
                    if rng.f32() >= 0.6 {
                        continue;
                    }
                    let mut t = self.local_ts(rng, d, i);
                    p.push(t - rng.i64(1_000..60_000), subj, K_SESSION, 0, 0);
                    for _ in 0..rng.u32(10..=30) {
                        let biz = rng.u32(0..self.n_biz);
                        t += rng.i64(10_000..600_000);
                        p.push(t, subj, K_BIZ, biz, 1);
                        t += rng.i64(5_000..120_000);
                        p.push(t, subj, K_BIZ, biz, 0);
                    }
                }
            }
            B_GROUP_ADMIN => {
                let groups = &self.groups_of[i];
                if !groups.is_empty() {
                    for d in reg_day..days {
                        if rng.f32() >= 0.5 {
                            continue;
                        }
                        for _ in 0..rng.u32(10..=30) {
                            let g = groups[rng.usize(..groups.len())];
                            let t = self.local_ts(rng, d, i);
                            p.push(t, subj, K_MSG_GROUP, g, msg_kind(rng));
                        }
                    }
                }
            }
            B_FESTIVE => {
                let mut book = self.contacts[i].clone();
                rng.shuffle(&mut book);
                book.truncate(rng.usize(60..=180));
                let d = rng.u32(reg_day..days);
                let mut t = self.local_ts(rng, d, i);
                p.push(t - rng.i64(1_000..60_000), subj, K_SESSION, 0, 0);
                for to in book {
                    t += rng.i64(5_000..60_000);
                    p.push(t, subj, K_MSG_TO, to, if rng.f32() < 0.6 { 0 } else { 1 });
                }
            }
            _ => {}
        }
        if s.is_spam() && s.partner != 0 && link_ms[i] != i64::MAX && rng.f32() < 0.4 {
            if let Some(f) = first {
                let t = f.max(link_ms[i]) + rng.i64(HOUR..3 * DAY_MS);
                p.push(t, subj, K_PARTNER_FLAG, 0, rng.u32(0..FLAG_REASONS.len() as u32));
            }
        }
        if s.is_spam() {
            first
        } else {
            None
        }
    }

    /// Sets per-subject daily activity so the total hits `target_events`.
    fn scale_activity(&mut self) {
        let days = self.cfg.days.max(1);
        let mut exposure = 0.0f64;
        for s in &self.subjects {
            exposure += f64::from(s.weight) * f64::from(self.active_days(s, days));
        }
        let fixed = self.plan.len() as u64;
        let variable = self.cfg.target_events.saturating_sub(fixed) as f64;
        let lambda = if exposure > 0.0 { variable / exposure } else { 0.0 };
        for s in &mut self.subjects {
            let e = lambda * f64::from(s.weight);
            let a = -(-e / 3.0).exp_m1();
            if a > 0.0 && !s.is_spam() {
                s.active_p = a as f32;
                s.mean_active = (e / a) as f32;
            }
        }
        self.estimated = fixed + variable.round() as u64;
    }

    /// Days with variable activity: after the registration day and before
    /// the deletion day.
    fn active_days(&self, s: &Subject, days: u32) -> u32 {
        if s.is_spam() {
            return 0;
        }
        let first = if s.reg_ms >= self.start { ((s.reg_ms - self.start) / DAY_MS) as u32 + 1 } else { 0 };
        let last = if s.del_ms == i64::MAX { days } else { ((s.del_ms - self.start) / DAY_MS) as u32 };
        last.saturating_sub(first)
    }

    /// Queues an event into the current day, possibly as a late line.
    #[inline]
    fn enqueue(&mut self, mut e: Ev, day_end: i64, last_day: bool) {
        // Registrations, deletions and partner links are never late: the
        // partner's flags and friendships that follow a link need it first.
        if !matches!(e.kind, K_REGISTER | K_DELETE | K_PARTNER_ACCOUNT) && self.day_rng.u32(0..1000) < 10 {
            e.key = e.ts + self.day_rng.i64(MINUTE..=2 * DAY_MS);
            if e.key >= day_end && !last_day {
                self.carry.push(e);
                return;
            }
        }
        self.buf.push(e);
    }

    /// Builds the buffer of day `self.day`.
    fn build_day(&mut self) {
        let d = self.day;
        let days = self.cfg.days.max(1);
        let last_day = d + 1 >= days;
        let day_start = self.start + i64::from(d) * DAY_MS;
        let day_end = day_start + DAY_MS;
        self.buf.clear();
        self.pos = 0;
        // Late lines from earlier days whose emission falls in this day.
        let mut k = 0;
        while k < self.carry.len() {
            if last_day || self.carry[k].key < day_end {
                let e = self.carry.swap_remove(k);
                self.buf.push(e);
            } else {
                k += 1;
            }
        }
        while self.plan_pos < self.plan.len() && self.plan[self.plan_pos].ts < day_end {
            let e = self.plan[self.plan_pos];
            self.plan_pos += 1;
            self.enqueue(e, day_end, last_day);
        }
        // Variable activity.
        for i in 0..self.subjects.len() {
            let s = &self.subjects[i];
            if s.active_p <= 0.0 || s.del_ms < day_end {
                continue;
            }
            if s.reg_ms >= self.start && (s.reg_ms - self.start) / DAY_MS >= i64::from(d) {
                continue;
            }
            if self.day_rng.f32() >= s.active_p {
                continue;
            }
            let (mean, tz, biz_user, region) =
                (f64::from(s.mean_active), REGIONS[usize::from(s.region)].tz_min, s.biz_user, s.region);
            let rng = &mut self.day_rng;
            let x = mean * (0.5 + rng.f64());
            let n_ev = sround(rng, x).max(1);
            let ns = 1 + (n_ev - 1) / 15;
            let mut sessions = std::mem::take(&mut self.sessions_tmp);
            sessions.clear();
            for _ in 0..ns {
                let t = local_ts(&mut self.day_rng, &self.cycle, day_start, tz);
                sessions.push(t);
                self.enqueue(Ev { key: t, ts: t, subj: i as u32, a: 0, b: 0, kind: K_SESSION }, day_end, last_day);
            }
            let mut remaining = n_ev - ns;
            while remaining > 0 {
                let rng = &mut self.day_rng;
                let base = sessions[rng.usize(..sessions.len())];
                let mut t = base + rng.i64(1_000..20 * MINUTE);
                if t >= day_end {
                    t = day_end - 1 - rng.i64(0..MINUTE);
                }
                let subj = i as u32;
                if biz_user && rng.f32() < 0.1 {
                    let biz = (f64::from(self.n_biz) * rng.f64().powi(3)) as u32;
                    self.enqueue(Ev { key: t, ts: t, subj, a: biz, b: 0, kind: K_BIZ }, day_end, last_day);
                    remaining -= 1;
                    if remaining > 0 && self.day_rng.f32() < 0.7 {
                        let t2 = (t + self.day_rng.i64(2_000..600_000)).min(day_end - 1);
                        self.enqueue(Ev { key: t2, ts: t2, subj, a: biz, b: 1, kind: K_BIZ }, day_end, last_day);
                        remaining -= 1;
                    }
                    continue;
                }
                let (kind, a, b) = self.pick_message(i, region);
                self.enqueue(Ev { key: t, ts: t, subj, a, b, kind }, day_end, last_day);
                remaining -= 1;
            }
            self.sessions_tmp = sessions;
        }
        self.buf.sort_unstable_by_key(|e| (e.key, e.subj, e.kind));
        self.day += 1;
    }

    /// Chooses the recipient and payload of an ordinary message.
    #[inline]
    fn pick_message(&mut self, i: usize, region: u8) -> (u8, u32, u32) {
        let rng = &mut self.day_rng;
        let kind = msg_kind(rng);
        let link = if (kind == 0 || kind == 4) && rng.u32(0..100) < 3 {
            1 + rng.u32(0..BENIGN_DOMAINS.len() as u32)
        } else {
            0
        };
        let b = kind | (link << 4);
        let u = rng.f32();
        let groups = &self.groups_of[i];
        if u < 0.12 && !groups.is_empty() {
            let idx = (groups.len() as f64 * rng.f64().powi(2)) as usize;
            return (K_MSG_GROUP, groups[idx.min(groups.len() - 1)], b);
        }
        let book = &self.contacts[i];
        if u < 0.97 && !book.is_empty() {
            let idx = ((book.len() as f64 * rng.f64().powi(2)) as usize + i * 7919) % book.len();
            return (K_MSG_TO, book[idx], b);
        }
        let (rs, re) = self.region_ranges[usize::from(region)];
        let mut to = rng.u32(rs..re.max(rs + 1));
        if to as usize == i {
            to = self.normal_ids[rng.usize(..self.normal_ids.len())];
        }
        (K_MSG_TO, to, b)
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

    /// Renders one event as a JSON object.
    fn render(&mut self, e: &Ev, out: &mut Vec<u8>) {
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
                    let dom = if link >= LINK_PHISH_BASE {
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
fn form_bytes<'a>(forms: &'a [u8], s: &Subject, f: usize) -> &'a [u8] {
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
