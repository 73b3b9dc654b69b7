//! Plan: what happens when, decided before the first day is generated.
//!
//! Owns: registration times of spammers (device farms register together),
//! every structural event (registrations, contact snapshots, partner links and
//! friendships, consents, reports and blocks, deletions), each spammer's and
//! hard negative's activity with its ground-truth label, and the scaling of
//! daily activity so the total hits `target_events`. A live arrival is
//! planned by the same code over a [`Span`] of days from its arrival.
//! Never: plans anything outside the window (for a live arrival: before it
//! arrives), or anything by a deleted account after its deletion.

use std::collections::{HashMap, HashSet};

use fastrand::Rng;

use super::phones::REGIONS;
use super::render::{mix, DAY_MS};
use super::{
    local_ts, msg_kind, sround, Ev, Label, Simulator, Subject, BENIGN_DOMAINS, B_BUSY_BIZ, B_DEVICE_FARM, B_FESTIVE,
    B_FRESH_BURST, B_GROUP_ADMIN, B_LINK_SHARER, B_MASS_REPORTED, B_NONE, B_PHISHING, B_SHOP, B_SLOW_LINK,
    FLAG_REASONS, HOUR, K_BIZ, K_BLOCK, K_CONSENT, K_CONTACTS, K_DELETE, K_MSG_GROUP, K_MSG_TO, K_PARTNER_ACCOUNT,
    K_PARTNER_FLAG, K_PARTNER_FRIEND, K_REGISTER, K_REPORT, K_SESSION, LINK_INVENTED_BASE, LINK_PHISH_BASE, MINUTE,
    PHISHING_DOMAINS, REPORT_REASONS,
};

/// Words and endings of invented domains: spam domains look like the
/// throwaway domains of real campaigns, shops and popular links like
/// ordinary sites. None is on the built-in phishing list (a number is
/// always part of the name).
const DOMAIN_WORDS: [&str; 24] = [
    "secure", "deal", "promo", "gift", "win", "bonus", "cash", "prize", "offer", "vip", "club", "best", "fast", "free",
    "lucky", "smart", "daily", "mega", "easy", "top", "gold", "star", "go", "my",
];
pub(super) const SPAM_TLDS: [&str; 10] =
    ["top", "xyz", "click", "shop", "live", "site", "online", "icu", "buzz", "info"];
const PLAIN_TLDS: [&str; 4] = ["com", "net", "co", "store"];

/// A fresh domain such as `lucky-gift482.top`.
pub(super) fn invent_domain(rng: &mut Rng, tlds: &[&str]) -> String {
    let first = DOMAIN_WORDS[rng.usize(..DOMAIN_WORDS.len())];
    let second = DOMAIN_WORDS[rng.usize(..DOMAIN_WORDS.len())];
    format!("{first}-{second}{}.{}", rng.u32(10..10_000), tlds[rng.usize(..tlds.len())])
}

/// Link payload bits of a message linking invented domain `index`.
fn invented_link(index: u32) -> u32 {
    (LINK_INVENTED_BASE + index) << 4
}

/// Accumulates planned (structural) events, dropping those outside the window.
pub(super) struct Planner {
    pub(super) ev: Vec<Ev>,
    pub(super) start: i64,
    pub(super) end: i64,
}

/// The days a plan draws its times from: `days` whole days from `start`
/// (the catch-up window, or the days after a live arrival), never before
/// `from` (a live arrival's time; the window's start otherwise).
#[derive(Clone, Copy, Debug)]
pub(super) struct Span {
    pub(super) start: i64,
    pub(super) days: u32,
    pub(super) from: i64,
}

impl Span {
    fn end(&self) -> i64 {
        self.start + i64::from(self.days) * DAY_MS
    }
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

/// Nothing about a deleted account after its deletion: neither its own
/// events nor a partner friendship naming it (proviso refuses friendships
/// with accounts no longer linked).
pub(super) fn allowed_after_deletions(subjects: &[Subject], e: &Ev) -> bool {
    e.kind == K_DELETE
        || (e.ts < subjects[e.subj as usize].del_ms
            && (e.kind != K_PARTNER_FRIEND || e.ts < subjects[e.a as usize].del_ms))
}

impl Simulator {
    fn local_ts(&self, rng: &mut Rng, day: u32, subj: usize) -> i64 {
        self.span_ts(rng, &self.window(), day, subj)
    }

    /// A time on day `day` of `span`, following `subj`'s local daily cycle.
    fn span_ts(&self, rng: &mut Rng, span: &Span, day: u32, subj: usize) -> i64 {
        let tz = REGIONS[usize::from(self.subjects[subj].region)].tz_min;
        local_ts(rng, &self.cycle, span.start + i64::from(day) * DAY_MS, tz)
    }

    /// The catch-up window as a span.
    fn window(&self) -> Span {
        Span { start: self.start, days: self.cfg.days.max(1), from: self.start }
    }

    fn random_normal(&self, rng: &mut Rng) -> u32 {
        self.normal_ids[rng.usize(..self.normal_ids.len())]
    }

    /// Plans every structural event and all abuse / hard-negative activity.
    pub(super) fn build_plan(&mut self, rng: &mut Rng, deleted: &[u32]) {
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
        let links_of = self.plan_link_actors(rng);
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
        let window = self.window();
        for (i, link) in link_ms.iter_mut().enumerate() {
            *link = self.plan_structure(rng, &mut p, i, &window);
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
        for (i, &link) in link_ms.iter().enumerate() {
            let b = self.subjects[i].behaviour;
            if b == B_NONE {
                continue;
            }
            let links = links_of.get(&i).map_or(&[][..], Vec::as_slice);
            let first = self.plan_behaviour(rng, &mut p, i, &window, link, links);
            labels.push(Label { subj: i as u32, spam: self.subjects[i].is_spam(), behaviour: b, first_abuse: first });
        }
        self.labels = labels;
        self.links_of = links_of;

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
        p.ev.retain(|e| allowed_after_deletions(subjects, e));
        p.ev.sort_unstable_by_key(|e| (e.ts, e.subj, e.kind));
        self.plan = p.ev;
    }

    /// Plans subject `i`'s structural events within `span`: registration
    /// (when in the span), contact snapshots, the partner link, and for
    /// people who are not spammers consents and background blocks and
    /// reports. Returns the partner link's time (`i64::MAX` without one).
    pub(super) fn plan_structure(&self, rng: &mut Rng, p: &mut Planner, i: usize, span: &Span) -> i64 {
        let days = span.days;
        let mut link = i64::MAX;
        let s = &self.subjects[i];
        let subj = i as u32;
        let reg = s.reg_ms;
        let reg_in = reg >= span.from;
        let spam = s.is_spam();
        let region = usize::from(s.region);
        if reg_in {
            p.push(reg, subj, K_REGISTER, 0, 0);
            p.push(reg + rng.i64(2_000..60_000), subj, K_SESSION, 0, 0);
        }
        let reg_day = if reg_in { ((reg - span.start) / DAY_MS) as u32 } else { 0 };
        if !spam || rng.bool() {
            // An account older than the window already had its book on
            // file: its snapshot comes in the window's first hour, so
            // day one is not a cold start where everyone is a stranger.
            let t = if reg_in { reg + rng.i64(MINUTE..10 * MINUTE) } else { span.start + rng.i64(0..HOUR) };
            p.push(t, subj, K_CONTACTS, 0, 0);
            if !spam && reg_day + 1 < days && rng.f64() < (f64::from(days) / 60.0).min(0.9) {
                let d = rng.u32(reg_day + 1..days);
                let t = self.span_ts(rng, span, d, i);
                p.push(t, subj, K_CONTACTS, 0, 1);
            }
        }
        if s.partner != 0 {
            let t = if reg_in {
                reg + rng.i64(HOUR..48 * HOUR)
            } else {
                let d = rng.u32(0..days.min(3));
                self.span_ts(rng, span, d, i)
            };
            if p.push(t, subj, K_PARTNER_ACCOUNT, 0, 0) {
                link = t;
            }
        }
        let after_reg = |rng: &mut Rng| -> i64 {
            let from = reg.max(span.start) + 10 * MINUTE;
            if from >= span.end() {
                return span.end();
            }
            let d = ((from - span.start) / DAY_MS) as u32;
            let d = rng.u32(d..days);
            let t = local_ts(rng, &self.cycle, span.start + i64::from(d) * DAY_MS, REGIONS[region].tz_min);
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
        link
    }

    /// Invents the link domains of slow link spammers (rings of one to four
    /// sharing one to three fresh domains, most registered in the window,
    /// some old accounts), shops (one own domain each), link sharers (a few
    /// popular new links, half of them new accounts) and festive senders (one
    /// e-card site). Returns each one's invented domain indexes.
    fn plan_link_actors(&mut self, rng: &mut Rng) -> HashMap<usize, Vec<u32>> {
        let n = self.subjects.len();
        let days = i64::from(self.cfg.days.max(1));
        let mut links_of: HashMap<usize, Vec<u32>> = HashMap::new();
        let invent = |rng: &mut Rng, tlds: &[&str], domains: &mut Vec<String>| -> u32 {
            domains.push(invent_domain(rng, tlds));
            (domains.len() - 1) as u32
        };
        let mut domains = std::mem::take(&mut self.invented_domains);
        let slow: Vec<usize> = (0..n).filter(|&i| self.subjects[i].behaviour == B_SLOW_LINK).collect();
        let mut at = 0usize;
        while at < slow.len() {
            let size = rng.usize(1..=4).min(slow.len() - at);
            let ring: Vec<u32> = (0..rng.u32(1..=3)).map(|_| invent(rng, &SPAM_TLDS, &mut domains)).collect();
            let t0 = self.start + rng.i64(0..(days * DAY_MS * 8 / 10).max(HOUR));
            for &i in &slow[at..at + size] {
                if rng.f32() < 0.85 {
                    self.subjects[i].reg_ms = t0 + rng.i64(0..2 * DAY_MS);
                }
                links_of.insert(i, ring.clone());
            }
            at += size;
        }
        let popular: Vec<u32> = (0..3).map(|_| invent(rng, &PLAIN_TLDS, &mut domains)).collect();
        let ecard = invent(rng, &PLAIN_TLDS, &mut domains);
        for i in 0..n {
            match self.subjects[i].behaviour {
                B_SHOP => {
                    links_of.insert(i, vec![invent(rng, &PLAIN_TLDS, &mut domains)]);
                }
                B_LINK_SHARER => {
                    if rng.bool() {
                        self.subjects[i].reg_ms = self.start + rng.i64(0..(days * DAY_MS / 2).max(HOUR));
                    }
                    links_of.insert(i, vec![popular[rng.usize(..popular.len())]]);
                }
                B_FESTIVE => {
                    links_of.insert(i, vec![ecard]);
                }
                _ => {}
            }
        }
        self.invented_domains = domains;
        links_of
    }

    /// Plans the events of one spammer / hard negative; returns the first
    /// abusive timestamp for spammers.
    ///
    /// Times come from the days of `span` (a live arrival's span starts at
    /// its arrival); `link` is the subject's partner link time (`i64::MAX`
    /// without one) and `links` its invented domains.
    pub(super) fn plan_behaviour(
        &self,
        rng: &mut Rng,
        p: &mut Planner,
        i: usize,
        span: &Span,
        link: i64,
        links: &[u32],
    ) -> Option<i64> {
        let s = &self.subjects[i];
        let subj = i as u32;
        let days = span.days;
        let reg = s.reg_ms.max(span.from);
        let reg_day = ((reg - span.start) / DAY_MS) as u32;
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
                    let mut t = self.span_ts(rng, span, d, i).max(reg + MINUTE);
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
                    let t = self.span_ts(rng, span, d, i).max(reg + MINUTE);
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
                    let mut t = self.span_ts(rng, span, d, i);
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
                            let t = self.span_ts(rng, span, d, i);
                            // Announcements often carry a link.
                            let link =
                                if rng.f32() < 0.3 { (1 + rng.u32(0..BENIGN_DOMAINS.len() as u32)) << 4 } else { 0 };
                            p.push(t, subj, K_MSG_GROUP, g, msg_kind(rng) | link);
                        }
                    }
                }
            }
            B_FESTIVE => {
                let mut book = self.contacts[i].clone();
                rng.shuffle(&mut book);
                book.truncate(rng.usize(60..=180));
                let d = rng.u32(reg_day..days);
                let mut t = self.span_ts(rng, span, d, i);
                p.push(t - rng.i64(1_000..60_000), subj, K_SESSION, 0, 0);
                for to in book {
                    t += rng.i64(5_000..60_000);
                    let kind = if rng.f32() < 0.6 { 0 } else { 1 };
                    // Some greetings carry an e-card link.
                    let link = match links.first() {
                        Some(&ecard) if rng.f32() < 0.4 => invented_link(ecard),
                        _ => 0,
                    };
                    p.push(t, subj, K_MSG_TO, to, kind | link);
                }
            }
            B_SLOW_LINK if !links.is_empty() => {
                // A few messages an hour to strangers for a few hours a day,
                // on a few days: far below any burst threshold. Most carry
                // a link to one of the ring's fresh domains.
                let mut d = reg_day;
                for _ in 0..rng.u32(2..=5) {
                    if d >= days {
                        break;
                    }
                    let mut t = self.span_ts(rng, span, d, i).max(reg + 30 * MINUTE);
                    p.push(t - rng.i64(1_000..60_000), subj, K_SESSION, 0, 0);
                    let per_hour = 1.5 + rng.f64() * 3.5;
                    let hours = f64::from(rng.u32(3..=8));
                    let count = sround(rng, per_hour * hours).max(2);
                    let gap = (3_600_000.0 / per_hour) as i64;
                    for _ in 0..count {
                        t += gap / 2 + rng.i64(0..gap.max(1));
                        let to = self.random_normal(rng);
                        let link = if rng.f32() < 0.85 { invented_link(links[rng.usize(..links.len())]) } else { 0 };
                        let ok = p.push(t, subj, K_MSG_TO, to, link);
                        note(t, ok && link != 0);
                        let u = rng.f32();
                        if ok && u < 0.04 {
                            p.push(t + rng.i64(5 * MINUTE..120 * MINUTE), to, K_BLOCK, subj, 0);
                        } else if ok && u < 0.055 {
                            p.push(t + rng.i64(5 * MINUTE..120 * MINUTE), to, K_REPORT, subj, 0);
                        }
                    }
                    d += rng.u32(1..=2);
                }
            }
            B_LINK_SHARER if !links.is_empty() && !self.contacts[i].is_empty() => {
                // A popular link, sent to many of their own contacts on a
                // few days.
                for _ in 0..rng.u32(1..=3) {
                    let d = rng.u32(reg_day..days);
                    let mut book = self.contacts[i].clone();
                    rng.shuffle(&mut book);
                    book.truncate(rng.usize(25..=70));
                    let mut t = self.span_ts(rng, span, d, i).max(reg + HOUR);
                    p.push(t - rng.i64(1_000..60_000), subj, K_SESSION, 0, 0);
                    for to in book {
                        t += rng.i64(20_000..300_000);
                        let link = if rng.f32() < 0.9 { invented_link(links[0]) } else { 0 };
                        p.push(t, subj, K_MSG_TO, to, link);
                    }
                }
            }
            B_SHOP if !links.is_empty() => {
                // Customers write first; the shop answers with its own site.
                for d in reg_day..days {
                    if rng.f32() >= 0.5 {
                        continue;
                    }
                    for _ in 0..rng.u32(8..=30) {
                        let customer = self.random_normal(rng);
                        if customer == subj {
                            continue;
                        }
                        let t = self.span_ts(rng, span, d, i);
                        p.push(t, customer, K_MSG_TO, subj, 0);
                        let reply = t + rng.i64(MINUTE..30 * MINUTE);
                        p.push(reply, subj, K_MSG_TO, customer, invented_link(links[0]));
                        if rng.bool() {
                            p.push(
                                reply + rng.i64(MINUTE..10 * MINUTE),
                                subj,
                                K_MSG_TO,
                                customer,
                                invented_link(links[0]),
                            );
                        }
                    }
                }
            }
            _ => {}
        }
        if s.is_spam() && s.partner != 0 && link != i64::MAX && rng.f32() < 0.4 {
            if let Some(f) = first {
                let t = f.max(link) + rng.i64(HOUR..3 * DAY_MS);
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
    pub(super) fn scale_activity(&mut self) {
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
}
