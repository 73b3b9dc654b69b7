//! Population: who exists in a simulated run and whom they know.
//!
//! Owns: regions, unique valid phone numbers and their written forms,
//! communities, roles (spammers, hard negatives, accounts deleted later),
//! per-subject attributes, address books (and their small changes between
//! snapshots), groups and the number of businesses.
//! Never: plans an event (the plan also refines spammers' registration
//! times), or draws from a generator other than the one it is handed.

use std::collections::HashSet;

use fastrand::Rng;

use super::phones::{self, F_E164, F_IDD, F_NATIONAL, F_SPACED, REGIONS};
use super::render::{mix, DAY_MS};
use super::{
    is_spam_behaviour, sround, SimConfig, Subject, B_BUSY_BIZ, B_DEVICE_FARM, B_FESTIVE, B_FRESH_BURST, B_GROUP_ADMIN,
    B_LINK_SHARER, B_MASS_REPORTED, B_NONE, B_PHISHING, B_SHOP, B_SLOW_LINK,
};

/// Everyone in a run, drawn once before the plan.
pub(super) struct Population {
    pub(super) subjects: Vec<Subject>,
    /// Every subject's written forms back to back (see `Subject::form_off`).
    pub(super) forms: Vec<u8>,
    /// Each subject's address book: sorted ids, no duplicates.
    pub(super) contacts: Vec<Vec<u32>>,
    /// The groups each subject belongs to: sorted ids, no duplicates.
    pub(super) groups_of: Vec<Vec<u32>>,
    /// Id range `[start, end)` of each community.
    pub(super) communities: Vec<(u32, u32)>,
    /// Id range `[start, end)` of each region (ids are sorted by region).
    pub(super) region_ranges: Vec<(u32, u32)>,
    /// Ids of every subject who is not a spammer.
    pub(super) normal_ids: Vec<u32>,
    /// Number of businesses people message.
    pub(super) n_biz: u32,
    /// Accounts that will delete themselves near the end (the plan decides when).
    pub(super) deleted: Vec<u32>,
}

impl Population {
    /// Draws the population step by step. Every step draws from `rng` in
    /// turn, so their order is part of the output: moving one changes every run.
    pub(super) fn generate(cfg: &SimConfig, rng: &mut Rng) -> Population {
        let n = cfg.subjects as usize;
        let (region_of, region_ranges) = assign_regions(rng, n);
        let (forms, form_meta) = draw_numbers(rng, &region_of);
        let median = cfg.median_contacts.min(cfg.subjects.saturating_sub(1));
        let (communities, community_of) = build_communities(rng, &region_ranges, n, median);
        let (behaviour, deleted) = assign_roles(rng, cfg);
        let subjects = build_subjects(rng, cfg, &region_of, &behaviour, &form_meta, &community_of);
        let normal_ids: Vec<u32> = (0..cfg.subjects).filter(|&i| !subjects[i as usize].is_spam()).collect();
        let contacts = build_contacts(rng, &subjects, &normal_ids, &communities, &region_ranges, median);
        let groups_of = build_groups(rng, &subjects, &normal_ids, &communities);
        let n_biz = (cfg.subjects / 200).max(10);
        Population { subjects, forms, contacts, groups_of, communities, region_ranges, normal_ids, n_biz, deleted }
    }
}

/// Region of each subject id, with ids sorted so that each region is one
/// contiguous range: (region of each id, range of each region).
fn assign_regions(rng: &mut Rng, n: usize) -> (Vec<u8>, Vec<(u32, u32)>) {
    let mut region_of: Vec<u8> = (0..n).map(|_| draw_region(rng)).collect();
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
    (region_of, region_ranges)
}

/// A region, by the regions' weights.
pub(super) fn draw_region(rng: &mut Rng) -> u8 {
    let total_w: f64 = REGIONS.iter().map(|r| r.weight).sum();
    let mut u = rng.f64() * total_w;
    let mut r = 0;
    while r + 1 < REGIONS.len() && u >= REGIONS[r].weight {
        u -= REGIONS[r].weight;
        r += 1;
    }
    r as u8
}

/// A unique valid number per subject, in its region: (all written forms back
/// to back, each subject's offset and form lengths in them).
fn draw_numbers(rng: &mut Rng, region_of: &[u8]) -> (Vec<u8>, Vec<(u32, [u8; 4])>) {
    let n = region_of.len();
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
                let nsn = phones::draw_nsn(rng, r);
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
    (forms, form_meta)
}

/// Communities: contiguous chunks inside each region, sized from the median
/// book: (range of each community, community of each subject).
fn build_communities(
    rng: &mut Rng,
    region_ranges: &[(u32, u32)],
    n: usize,
    median: u32,
) -> (Vec<(u32, u32)>, Vec<u32>) {
    let m = median.max(5);
    let mut communities: Vec<(u32, u32)> = Vec::new();
    let mut community_of = vec![0u32; n];
    for &(s, e) in region_ranges {
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
    (communities, community_of)
}

/// Behaviour of each subject (spammers, hard negatives, the rest ordinary),
/// and the few ordinary accounts to delete, from one shuffle of the ids.
fn assign_roles(rng: &mut Rng, cfg: &SimConfig) -> (Vec<u8>, Vec<u32>) {
    let n = cfg.subjects as usize;
    let mut perm: Vec<u32> = (0..cfg.subjects).collect();
    rng.shuffle(&mut perm);
    let n_spam = ((cfg.spammer_share.clamp(0.0, 0.5) * n as f64).round() as usize).min(n);
    let n_ham = if n >= 200 { ((n as f64 * 0.005).round() as usize).max(5) } else { 0 };
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
        let phish_n = (n_spam as f64 * 0.2).round() as usize;
        let slow_n = (n_spam as f64 * 0.2).round() as usize;
        for (k, &id) in perm[..n_spam].iter().enumerate() {
            behaviour[id as usize] = if k < farm_n {
                B_DEVICE_FARM
            } else if k < farm_n + mass_n {
                B_MASS_REPORTED
            } else if k < farm_n + mass_n + phish_n {
                B_PHISHING
            } else if k < farm_n + mass_n + phish_n + slow_n {
                B_SLOW_LINK
            } else {
                B_FRESH_BURST
            };
        }
        const HARD_NEGATIVES: [u8; 5] = [B_BUSY_BIZ, B_GROUP_ADMIN, B_FESTIVE, B_LINK_SHARER, B_SHOP];
        for (k, &id) in perm[n_spam..n_spam + n_ham].iter().enumerate() {
            behaviour[id as usize] = HARD_NEGATIVES[k % HARD_NEGATIVES.len()];
        }
    }
    let del_candidates = &perm[n_spam + n_ham..];
    let n_del = (sround(rng, n as f64 * 0.0001) as usize).max(usize::from(n >= 1_000));
    let deleted: Vec<u32> = del_candidates.iter().take(n_del).copied().collect();
    (behaviour, deleted)
}

/// The platform a subject registers on (device farms all on one) and the
/// written form it prefers for its own number.
pub(super) fn draw_platform_and_style(rng: &mut Rng, behaviour: u8) -> (u8, u8) {
    let pu = rng.f32();
    let platform = if behaviour == B_DEVICE_FARM || pu < 0.70 {
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
    (platform, style)
}

/// A valid number in `region` not in `numbers` (which then holds it), for
/// an account arriving after the population was drawn: its written forms.
pub(super) fn draw_fresh_number(rng: &mut Rng, region: u8, numbers: &mut HashSet<u64>) -> [String; 4] {
    let r = usize::from(region);
    loop {
        let nsn = phones::draw_nsn(rng, r);
        let written = phones::forms(r, &nsn);
        let Ok(key) = format!("{}{}", REGIONS[r].cc, nsn).parse::<u64>() else { continue };
        if phones::is_valid_e164(&written[F_E164], r) && numbers.insert(key) {
            return written;
        }
    }
}

/// Each subject's attributes: platform, written style, registration time,
/// activity weight, partner account, device, business use.
fn build_subjects(
    rng: &mut Rng,
    cfg: &SimConfig,
    region_of: &[u8],
    behaviour: &[u8],
    form_meta: &[(u32, [u8; 4])],
    community_of: &[u32],
) -> Vec<Subject> {
    let n = cfg.subjects as usize;
    let days = cfg.days.max(1);
    let start = cfg.start_ms;
    let mut subjects: Vec<Subject> = Vec::with_capacity(n);
    for i in 0..n {
        let region = region_of[i];
        let b = behaviour[i];
        let is_spam = is_spam_behaviour(b);
        let (platform, style) = draw_platform_and_style(rng, b);
        let reg_ms = if is_spam {
            // Refined per behaviour by the plan.
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
    subjects
}

/// Address books: clustered in communities and mostly reciprocal.
fn build_contacts(
    rng: &mut Rng,
    subjects: &[Subject],
    normal_ids: &[u32],
    communities: &[(u32, u32)],
    region_ranges: &[(u32, u32)],
    median: u32,
) -> Vec<Vec<u32>> {
    let n = subjects.len();
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
            let d = (f64::from(median) * (0.5 * std_normal(rng)).exp()).clamp(1.0, (n - 1) as f64);
            let picks = sround(rng, d * 0.56);
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
    contacts
}

/// Groups drawn from communities, plus many more for group admins.
fn build_groups(rng: &mut Rng, subjects: &[Subject], normal_ids: &[u32], communities: &[(u32, u32)]) -> Vec<Vec<u32>> {
    let n = subjects.len();
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
    groups_of
}

fn std_normal(rng: &mut Rng) -> f64 {
    let u1 = rng.f64().max(1e-12);
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}
