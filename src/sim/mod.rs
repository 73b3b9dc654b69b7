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
//! After the window, [`Simulator::go_live`] continues the run in real time
//! (`live.rs`): the same people at a steady rate, and abusers of every kind
//! and legitimate heavy senders arriving now and then, handed out by
//! [`Simulator::next_live_line`] only once the caller's clock reaches them.
//!
//! Layout: `population.rs` draws who exists (regions, numbers, communities,
//! roles, address books, groups); `plan.rs` plans the structural events and
//! scales the daily activity; `day.rs` generates one day's events;
//! `live.rs` the live windows and arrivals; `render.rs` writes each event as
//! a line; `phones.rs` holds the regions and the written forms of a number.
//! Each stage draws from its own seeded generator, always in the same order.

mod day;
mod live;
mod phones;
mod plan;
mod population;
mod render;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use fastrand::Rng;

use phones::{F_E164, F_SPACED, REGIONS};
use population::Population;
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

// Behaviours (role codes). 0 = ordinary subject; 1..=4 and 8 spam; 5..=7,
// 9 and 10 ham (hard negatives).
const B_NONE: u8 = 0;
const B_FRESH_BURST: u8 = 1;
const B_PHISHING: u8 = 2;
const B_MASS_REPORTED: u8 = 3;
const B_DEVICE_FARM: u8 = 4;
const B_BUSY_BIZ: u8 = 5;
const B_GROUP_ADMIN: u8 = 6;
const B_FESTIVE: u8 = 7;
/// Link spam from freshly invented domains no list holds, a few messages an
/// hour to strangers (alone or in a small ring sharing domains).
const B_SLOW_LINK: u8 = 8;
/// Shares a popular (new, unlisted) link with many of their own contacts.
const B_LINK_SHARER: u8 = 9;
/// A shop answering customers who wrote first with links to its own domain.
const B_SHOP: u8 = 10;

const BEHAVIOUR_NAMES: [&str; 11] = [
    "none",
    "fresh_burst",
    "phishing",
    "mass_reported",
    "device_farm",
    "busy_business_replier",
    "group_admin",
    "festive_sender",
    "slow_link_unlisted",
    "popular_link_sharer",
    "shop_own_domain",
];

/// Whether a behaviour code is abuse.
const fn is_spam_behaviour(behaviour: u8) -> bool {
    matches!(behaviour, B_FRESH_BURST | B_PHISHING | B_MASS_REPORTED | B_DEVICE_FARM | B_SLOW_LINK)
}

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
/// 64.. phishing, 128.. a domain invented for this run, see
/// `Simulator::invented_domains`).
const LINK_PHISH_BASE: u32 = 64;
const LINK_INVENTED_BASE: u32 = 128;

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
        is_spam_behaviour(self.behaviour)
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
    /// Link domains invented for this run (fresh spam domains, shops' own
    /// domains, popular links): no list holds them.
    invented_domains: Vec<String>,
    /// The invented domains each link actor sends (slow link spammers,
    /// shops, link sharers, festive senders).
    links_of: HashMap<usize, Vec<u32>>,
    /// The live continuation, once [`Simulator::go_live`] was called.
    live: Option<Box<live::Live>>,
    /// Events a live window queued, before they enter the live queue.
    live_out: Vec<Ev>,
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
    /// Builds the population and the plan of structural events, then scales
    /// the daily activity to `target_events`. Population, plan, days and
    /// rendering each draw from their own generator seeded from `cfg.seed`.
    pub fn new(config: SimConfig) -> Simulator {
        let cfg = config;
        let days = cfg.days.max(1);
        let start = cfg.start_ms;
        let end = start + i64::from(days) * DAY_MS;
        let mut rng = Rng::with_seed(mix(cfg.seed ^ 0x5eed_0001));
        let cycle = build_cycle();
        let Population { subjects, forms, contacts, groups_of, communities, region_ranges, normal_ids, n_biz, deleted } =
            Population::generate(&cfg, &mut rng);

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
            invented_domains: Vec::new(),
            links_of: HashMap::new(),
            live: None,
            live_out: Vec::new(),
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
