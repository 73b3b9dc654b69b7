//! Day: the events of one simulated day, in emission order.
//!
//! Owns: merging the plan's events of the day with the day's variable
//! activity (sessions, messages, business messages), late lines (about 1%,
//! emitted up to 2 days after their `ts`) and the emission order; one
//! person's active stretch, in a day or in a live window.
//! Never: emits a registration, deletion or partner link late (what follows
//! them needs them first), or changes the plan or the population.

use super::phones::REGIONS;
use super::render::DAY_MS;
use super::{
    local_ts, msg_kind, sround, Ev, Simulator, BENIGN_DOMAINS, K_BIZ, K_DELETE, K_MSG_GROUP, K_MSG_TO,
    K_PARTNER_ACCOUNT, K_REGISTER, K_SESSION, MINUTE,
};

/// Where an active stretch's events go.
#[derive(Clone, Copy, Debug)]
pub(super) enum Slot {
    /// A catch-up day `[start, end)`: sessions follow the local daily
    /// cycle, nothing past the day's end.
    Day { start: i64, end: i64, last: bool },
    /// A live window of `len` ms from `start`: sessions spread evenly over
    /// it; messages may follow after it.
    Window { start: i64, len: i64 },
}

impl Simulator {
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
    pub(super) fn build_day(&mut self) {
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
        let slot = Slot::Day { start: day_start, end: day_end, last: last_day };
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
            let mean = f64::from(s.mean_active);
            self.subject_activity(i, mean, slot);
        }
        self.buf.sort_unstable_by_key(|e| (e.key, e.subj, e.kind));
        self.day += 1;
    }

    /// Queues the events of one active stretch of subject `i` (`mean`
    /// events on average: sessions, then messages and business messages
    /// within 20 minutes of a session) into `slot`.
    pub(super) fn subject_activity(&mut self, i: usize, mean: f64, slot: Slot) {
        let s = &self.subjects[i];
        let (tz, biz_user, region) = (REGIONS[usize::from(s.region)].tz_min, s.biz_user, s.region);
        let rng = &mut self.day_rng;
        let x = mean * (0.5 + rng.f64());
        let n_ev = sround(rng, x).max(1);
        let ns = 1 + (n_ev - 1) / 15;
        let mut sessions = std::mem::take(&mut self.sessions_tmp);
        sessions.clear();
        // Past a day's end a time is pulled back into the day; a live
        // window's messages may follow after it.
        let last_ms = match slot {
            Slot::Day { end, .. } => end - 1,
            Slot::Window { .. } => i64::MAX,
        };
        for _ in 0..ns {
            let t = match slot {
                Slot::Day { start, .. } => local_ts(&mut self.day_rng, &self.cycle, start, tz),
                Slot::Window { start, len } => start + self.day_rng.i64(0..len.max(1)),
            };
            sessions.push(t);
            self.emit(Ev { key: t, ts: t, subj: i as u32, a: 0, b: 0, kind: K_SESSION }, slot);
        }
        let mut remaining = n_ev - ns;
        while remaining > 0 {
            let rng = &mut self.day_rng;
            let base = sessions[rng.usize(..sessions.len())];
            let mut t = base + rng.i64(1_000..20 * MINUTE);
            if t > last_ms {
                t = last_ms - rng.i64(0..MINUTE);
            }
            let subj = i as u32;
            if biz_user && rng.f32() < 0.1 {
                let biz = (f64::from(self.n_biz) * rng.f64().powi(3)) as u32;
                self.emit(Ev { key: t, ts: t, subj, a: biz, b: 0, kind: K_BIZ }, slot);
                remaining -= 1;
                if remaining > 0 && self.day_rng.f32() < 0.7 {
                    let t2 = (t + self.day_rng.i64(2_000..600_000)).min(last_ms);
                    self.emit(Ev { key: t2, ts: t2, subj, a: biz, b: 1, kind: K_BIZ }, slot);
                    remaining -= 1;
                }
                continue;
            }
            let (kind, a, b) = self.pick_message(i, region);
            self.emit(Ev { key: t, ts: t, subj, a, b, kind }, slot);
            remaining -= 1;
        }
        self.sessions_tmp = sessions;
    }

    /// Queues an event into a catch-up day, or (a live window) for the live
    /// queue.
    #[inline]
    fn emit(&mut self, e: Ev, slot: Slot) {
        match slot {
            Slot::Day { end, last, .. } => self.enqueue(e, end, last),
            Slot::Window { .. } => self.live_out.push(e),
        }
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
}
