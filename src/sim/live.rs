//! Live: an open-ended, real-time continuation of a simulated run.
//!
//! Owns: live windows (the same people keep being active, scaled to a
//! steady rate of events per second), arrivals (new spammers of every kind,
//! with fresh numbers, and new episodes of the existing hard negatives,
//! planned by the same code as the catch-up's), and the queue of live events
//! in emission order.
//! Never: hands out an event before the caller's clock reaches its emission
//! time (so no event time is ever in the future), reads the clock itself, or
//! changes anything the catch-up (`next_line`) emits before going live.
//!
//! Time runs in windows of [`WINDOW_MS`]. Each window draws who is active in
//! it from their daily activity (probability scaled so the expected total
//! matches the rate) and queues their sessions and messages; messages may
//! fall after the window (up to 20 minutes after a session), so the first
//! windows start [`WARMUP_MS`] before the live start, with everything before
//! the start dropped: the rate is steady from the first second. Arrivals
//! come every [`ARRIVAL_GAP_MS`] on average, their kinds in rounds of every
//! kind in a shuffled order (the very first a burst sender); each plans its
//! whole career (over
//! [`SPAN_DAYS`] days from its arrival, plus what follows such as a second
//! burst or a partner's flag) at once. Burst senders act within minutes of
//! arriving, device farms within the hour, the slower kinds over hours.
//! The population grows by the accounts that arrive (about five a minute).

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashSet};

use fastrand::Rng;

use super::day::Slot;
use super::phones::F_E164;
use super::plan::{allowed_after_deletions, invent_domain, Planner, Span, SPAM_TLDS};
use super::population::{draw_fresh_number, draw_platform_and_style, draw_region};
use super::render::{mix, DAY_MS};
use super::{
    Ev, Label, Simulator, Subject, B_BUSY_BIZ, B_DEVICE_FARM, B_FESTIVE, B_FRESH_BURST, B_GROUP_ADMIN, B_LINK_SHARER,
    B_MASS_REPORTED, B_NONE, B_PHISHING, B_SHOP, B_SLOW_LINK, HOUR, K_DELETE, K_PARTNER_ACCOUNT, K_REGISTER, MINUTE,
};

/// Length of a live window.
pub(super) const WINDOW_MS: i64 = 10_000;
/// Windows start this long before the live start (messages follow their
/// session by up to 20 minutes).
pub(super) const WARMUP_MS: i64 = 20 * MINUTE;
/// Mean time between two arrivals.
pub(super) const ARRIVAL_GAP_MS: i64 = 20_000;
/// Days an arrival's career is drawn over.
pub(super) const SPAN_DAYS: u32 = 2;
/// Latest a live line is emitted after its event time (about 1% are late).
const LATE_MAX_MS: i64 = HOUR;

/// Every kind that arrives, abusers and legitimate heavy senders alike.
pub(super) const ARRIVAL_KINDS: [u8; 10] = [
    B_FRESH_BURST,
    B_PHISHING,
    B_MASS_REPORTED,
    B_DEVICE_FARM,
    B_SLOW_LINK,
    B_BUSY_BIZ,
    B_GROUP_ADMIN,
    B_FESTIVE,
    B_LINK_SHARER,
    B_SHOP,
];

/// One arrival: when, of which kind, and the subjects it brought (new
/// accounts) or woke (an existing hard negative). The tests read them.
#[derive(Clone, Debug)]
#[cfg_attr(not(test), allow(dead_code))]
pub(super) struct Arrival {
    pub(super) at: i64,
    pub(super) behaviour: u8,
    pub(super) subjects: Vec<u32>,
}

/// A queued live event; the queue orders by emission key, then subject,
/// kind and queueing order (deterministic ties).
struct Queued {
    ev: Ev,
    seq: u64,
}

impl Queued {
    fn order(&self) -> (i64, u32, u8, u64) {
        (self.ev.key, self.ev.subj, self.ev.kind, self.seq)
    }
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.order() == other.order()
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        self.order().cmp(&other.order())
    }
}

/// The live state of a simulator (see the module docs).
pub(super) struct Live {
    /// Live start: nothing before it is emitted.
    from: i64,
    /// Start of the next window to build.
    next_window: i64,
    /// Factors on each person's daily activity probability and mean events
    /// that make a window's expected total match the rate.
    p_scale: f64,
    mean_scale: f64,
    queue: BinaryHeap<Reverse<Queued>>,
    seq: u64,
    /// Draws arrivals and plans them.
    rng: Rng,
    next_arrival: i64,
    /// Kinds left in the current round of arrivals.
    round: Vec<u8>,
    pub(super) arrivals: Vec<Arrival>,
    /// Every number in use (digits of the E.164 form), so arrivals get fresh ones.
    numbers: HashSet<u64>,
    /// Existing hard negatives of each kind (by behaviour code) and how many
    /// episodes each kind has had.
    hams: [Vec<u32>; 11],
    ham_turns: [usize; 11],
}

impl Live {
    fn push(&mut self, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Queued { ev, seq: self.seq }));
    }
}

impl Simulator {
    /// Continues the run in real time from `start_ms` (epoch millis, at or
    /// after the catch-up window's end; call once `next_line` has returned
    /// `None`): the same people keep being active at about `rate` events per
    /// second in all, and now and then an abuser of one of the kinds the
    /// simulator knows, or a legitimate heavy sender, arrives and acts. Read
    /// the lines with [`Simulator::next_live_line`]. The live lines are a
    /// pure function of the config, `start_ms` and `rate`.
    pub fn go_live(&mut self, start_ms: i64, rate: u64) {
        let seed = self.cfg.seed ^ (start_ms as u64).rotate_left(17);
        self.day_rng = Rng::with_seed(mix(seed ^ 0x5eed_0005));
        self.render_rng = Rng::with_seed(mix(seed ^ 0x5eed_0006));
        let numbers: HashSet<u64> = self
            .subjects
            .iter()
            .filter_map(|s| {
                let e164 = super::render::form_bytes(&self.forms, s, F_E164);
                std::str::from_utf8(e164.get(1..)?).ok()?.parse().ok()
            })
            .collect();
        let mut hams: [Vec<u32>; 11] = Default::default();
        for (i, s) in self.subjects.iter().enumerate() {
            if s.behaviour != B_NONE && !s.is_spam() && s.del_ms == i64::MAX {
                hams[usize::from(s.behaviour)].push(i as u32);
            }
        }
        let (p_scale, mean_scale) = self.live_scales(start_ms, rate);
        let mut rng = Rng::with_seed(mix(seed ^ 0x5eed_0007));
        let next_arrival = start_ms + rng.i64(0..5_000);
        self.live = Some(Box::new(Live {
            from: start_ms,
            next_window: start_ms - WARMUP_MS,
            p_scale,
            mean_scale,
            queue: BinaryHeap::new(),
            seq: 0,
            rng,
            next_arrival,
            round: Vec::new(),
            arrivals: Vec::new(),
            numbers,
            hams,
            ham_turns: [0; 11],
        }));
    }

    /// Appends the next live line (without trailing newline) to `line` and
    /// returns its event time, if one is due at `now_ms`; `None` when none
    /// is due yet (or the simulator is not live). Times only move forward:
    /// pass the wall clock.
    pub fn next_live_line(&mut self, now_ms: i64, line: &mut Vec<u8>) -> Option<i64> {
        while self.live.as_ref()?.next_window <= now_ms {
            self.build_live_window();
        }
        let live = self.live.as_mut()?;
        if live.queue.peek().is_none_or(|Reverse(q)| q.ev.key > now_ms) {
            return None;
        }
        let Reverse(Queued { ev, .. }) = live.queue.pop()?;
        self.render(&ev, line);
        Some(ev.ts)
    }

    /// Arrivals so far in the live run: abusers (new accounts) and hard
    /// negatives (existing ones) alike.
    pub fn live_arrivals(&self) -> usize {
        self.live.as_ref().map_or(0, |live| live.arrivals.len())
    }

    /// Factors on daily activity for one window's expected events to be
    /// `rate` per second: first more people active (each at most once per
    /// window), then more events each.
    fn live_scales(&self, start_ms: i64, rate: u64) -> (f64, f64) {
        let target = rate as f64 * WINDOW_MS as f64 / 1000.0;
        let active: Vec<(f64, f64)> = self
            .subjects
            .iter()
            .filter(|s| s.active_p > 0.0 && s.del_ms == i64::MAX && s.reg_ms < start_ms)
            .map(|s| (f64::from(s.active_p), f64::from(s.mean_active).max(1.0)))
            .collect();
        let expected = |k: f64| active.iter().map(|&(p, m)| (k * p).min(1.0) * m).sum::<f64>();
        let all = expected(f64::INFINITY);
        if all <= 0.0 || target <= 0.0 {
            return (0.0, 1.0);
        }
        if target >= all {
            return (f64::INFINITY, target / all);
        }
        let (mut lo, mut hi) = (0.0f64, 1.0f64);
        while expected(hi) < target {
            hi *= 2.0;
        }
        for _ in 0..60 {
            let mid = (lo + hi) / 2.0;
            if expected(mid) < target {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        (hi, 1.0)
    }

    /// Builds the next live window: its people's activity and its arrivals.
    fn build_live_window(&mut self) {
        let Some(mut live) = self.live.take() else { return };
        let start = live.next_window;
        let end = start + WINDOW_MS;
        live.next_window = end;
        let slot = Slot::Window { start, len: WINDOW_MS };
        for i in 0..self.subjects.len() {
            let s = &self.subjects[i];
            if s.active_p <= 0.0 || s.del_ms < end || s.reg_ms >= start {
                continue;
            }
            let p = (f64::from(s.active_p) * live.p_scale).min(1.0);
            if self.day_rng.f64() >= p {
                continue;
            }
            let mean = f64::from(s.mean_active) * live.mean_scale;
            self.subject_activity(i, mean, slot);
        }
        while end > live.from && live.next_arrival < end {
            let at = live.next_arrival.max(live.from);
            self.arrive(&mut live, at);
            let gap = -(1.0 - live.rng.f64()).ln() * ARRIVAL_GAP_MS as f64;
            live.next_arrival = at + (gap as i64).max(1);
        }
        self.drain_live_out(&mut live);
        self.live = Some(live);
    }

    /// Moves what the window queued into the live queue: nothing before the
    /// live start, about 1% of lines late (never a registration, deletion
    /// or partner link: what follows them needs them first).
    fn drain_live_out(&mut self, live: &mut Live) {
        for mut e in self.live_out.drain(..) {
            if e.ts < live.from {
                continue;
            }
            if !matches!(e.kind, K_REGISTER | K_DELETE | K_PARTNER_ACCOUNT) && self.day_rng.u32(0..1000) < 10 {
                e.key = e.ts + self.day_rng.i64(MINUTE..=LATE_MAX_MS);
            }
            live.push(e);
        }
    }

    /// One arrival at `at`: the next kind of the round, its accounts (new
    /// ones for abusers; an existing hard negative for the others) and its
    /// whole plan.
    fn arrive(&mut self, live: &mut Live, at: i64) {
        if live.round.is_empty() {
            live.round = ARRIVAL_KINDS.to_vec();
            live.rng.shuffle(&mut live.round);
            if live.arrivals.is_empty() {
                // The first arrival is a burst sender: it is caught within
                // minutes, so the review queue moves early in a demo.
                live.round.retain(|&kind| kind != B_FRESH_BURST);
                live.round.push(B_FRESH_BURST);
            }
        }
        let Some(kind) = live.round.pop() else { return };
        let rng = &mut live.rng;
        let span = Span { start: at, days: SPAN_DAYS, from: at };
        let mut p = Planner { ev: Vec::new(), start: at, end: i64::MAX };
        let mut subjects = Vec::new();
        let mut links: Vec<u32> = Vec::new();
        let old = |rng: &mut Rng| at - rng.i64(DAY_MS..3 * 365 * DAY_MS);
        match kind {
            B_DEVICE_FARM => {
                let device = mix(self.cfg.seed ^ mix(0xfa70_0001 ^ live.arrivals.len() as u64));
                for _ in 0..rng.usize(5..=15) {
                    let reg = at + rng.i64(0..HOUR);
                    subjects.push(self.new_spammer(rng, &mut live.numbers, kind, reg, Some(device)));
                }
            }
            B_SLOW_LINK => {
                for _ in 0..rng.u32(1..=3) {
                    self.invented_domains.push(invent_domain(rng, &SPAM_TLDS));
                    links.push((self.invented_domains.len() - 1) as u32);
                }
                for _ in 0..rng.usize(1..=4) {
                    let reg = if rng.f32() < 0.85 { at + rng.i64(0..HOUR) } else { old(rng) };
                    subjects.push(self.new_spammer(rng, &mut live.numbers, kind, reg, None));
                }
            }
            B_FRESH_BURST => subjects.push(self.new_spammer(rng, &mut live.numbers, kind, at, None)),
            B_PHISHING | B_MASS_REPORTED => {
                let reg = if rng.bool() { at } else { old(rng) };
                subjects.push(self.new_spammer(rng, &mut live.numbers, kind, reg, None));
            }
            _ => {
                let hams = &live.hams[usize::from(kind)];
                if hams.is_empty() {
                    return;
                }
                let turn = &mut live.ham_turns[usize::from(kind)];
                subjects.push(hams[*turn % hams.len()]);
                *turn += 1;
            }
        }
        for &subj in &subjects {
            let i = subj as usize;
            let spam = self.subjects[i].is_spam();
            if spam {
                let link = self.plan_structure(rng, &mut p, i, &span);
                let first = self.plan_behaviour(rng, &mut p, i, &span, link, &links);
                self.labels.push(Label { subj, spam, behaviour: kind, first_abuse: first });
            } else {
                let own = self.links_of.get(&i).map_or(&[][..], Vec::as_slice);
                self.plan_behaviour(rng, &mut p, i, &span, i64::MAX, own);
            }
        }
        let kept = p.ev.into_iter().filter(|e| allowed_after_deletions(&self.subjects, e));
        self.live_out.extend(kept);
        live.arrivals.push(Arrival { at, behaviour: kind, subjects });
    }

    /// A new account of spammer kind `behaviour`, registered at `reg_ms`,
    /// with a fresh number: its id. Appended to the population; never
    /// anyone's contact, never active beyond its plan.
    fn new_spammer(
        &mut self,
        rng: &mut Rng,
        numbers: &mut HashSet<u64>,
        behaviour: u8,
        reg_ms: i64,
        device: Option<u64>,
    ) -> u32 {
        let id = self.subjects.len() as u32;
        let region = draw_region(rng);
        let written = draw_fresh_number(rng, region, numbers);
        let form_off = self.forms.len() as u32;
        let mut form_len = [0u8; 4];
        for (k, form) in written.iter().enumerate() {
            form_len[k] = form.len() as u8;
            self.forms.extend_from_slice(form.as_bytes());
        }
        let (platform, style) = draw_platform_and_style(rng, behaviour);
        let seed = self.cfg.seed;
        let partner = if rng.f64() < 0.3 { mix(seed ^ mix(u64::from(id) ^ 0x7061_7274)) | 1 } else { 0 };
        let device = device.unwrap_or_else(|| mix(seed.wrapping_mul(31) ^ mix(u64::from(id) ^ 0x6465_7669)));
        let mut book: Vec<u32> = if self.normal_ids.is_empty() {
            Vec::new()
        } else {
            (0..rng.usize(0..=8)).map(|_| self.normal_ids[rng.usize(..self.normal_ids.len())]).collect()
        };
        book.sort_unstable();
        book.dedup();
        self.subjects.push(Subject {
            reg_ms,
            del_ms: i64::MAX,
            device,
            partner,
            mean_active: 0.0,
            active_p: 0.0,
            weight: 1.0,
            form_off,
            form_len,
            community: 0,
            region,
            platform,
            style,
            behaviour,
            biz_user: false,
        });
        self.contacts.push(book);
        self.groups_of.push(Vec::new());
        id
    }
}
