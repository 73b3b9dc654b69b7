//! Ad audiences: who exchanged messages with which business, by day.
//!
//! Owns: per-business, per-day sets of subjects (`day_set.rs`) with a
//! `business_message` (either direction; on a cluster node, only the
//! people of the partitions it covers: the asker sums the nodes' counts
//! before k and noise, and gathers a partner's members by pseudonym), and the daily privacy budget each
//! advertiser has spent on each business's noisy sizes (from `BudgetSpent`
//! control records, so a restart never refills a budget).
//! Never: releases anything: sizes go out through `outputs/api` after the
//! gate's per-subject check, suppression below k, rounding and noise.

use std::collections::{BTreeMap, HashMap};

use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};

use crate::contract::day_of;

mod day_set;
use day_set::DaySet;

#[derive(Default, Serialize, Deserialize)]
pub struct Audiences {
    /// Business id -> day -> subjects.
    by_business: HashMap<String, BTreeMap<i32, DaySet>>,
    /// (business, UTC day) -> epsilon spent, in millionths, by charges that
    /// name no advertiser (logged before budgets were per advertiser); they
    /// count against every advertiser.
    spent: HashMap<(String, i32), u64>,
    /// (advertiser, business, UTC day) -> epsilon spent, in millionths.
    spent_by_advertiser: HashMap<(String, String, i32), u64>,
}

impl Audiences {
    /// Records a business message of `subject` with `business` at `ts_ms`.
    pub fn record(&mut self, business: &str, subject: u32, ts_ms: i64) {
        let days = match self.by_business.get_mut(business) {
            Some(days) => days,
            None => self.by_business.entry(business.to_string()).or_default(),
        };
        days.entry(day_of(ts_ms)).or_default().insert(subject);
    }

    /// Subjects with a business message with `business` on days
    /// `last_day - days + 1 ..= last_day`.
    pub fn members(&self, business: &str, last_day: i32, days: u32) -> RoaringBitmap {
        let mut members = RoaringBitmap::new();
        if let Some(by_day) = self.by_business.get(business) {
            let first = last_day - days as i32 + 1;
            for (_, bitmap) in by_day.range(first..=last_day) {
                bitmap.union_into(&mut members);
            }
        }
        members
    }

    /// Drops every member of `people` from every business and day (a
    /// cluster node's snapshot written before audiences followed its
    /// cover held everyone's).
    pub fn forget_members(&mut self, people: &RoaringBitmap) {
        for days in self.by_business.values_mut() {
            days.retain(|_, members| !members.remove_all(people));
        }
        self.by_business.retain(|_, days| !days.is_empty());
    }

    /// Swaps who is in which audience with `other`'s, budgets staying (a
    /// cluster node taking a new cover: the members come from its replay,
    /// the budgets are everyone's and stay as applied).
    pub fn swap_members(&mut self, other: &mut Audiences) {
        std::mem::swap(&mut self.by_business, &mut other.by_business);
    }

    /// Forgets an erased subject.
    pub fn remove_subject(&mut self, subject: u32) {
        for days in self.by_business.values_mut() {
            for bitmap in days.values_mut() {
                bitmap.remove(subject);
            }
        }
    }

    /// Businesses `subject` exchanged messages with, and on how many days.
    pub fn businesses_of(&self, subject: u32) -> Vec<(&str, usize)> {
        let mut found: Vec<(&str, usize)> = self
            .by_business
            .iter()
            .map(|(business, days)| (business.as_str(), days.values().filter(|b| b.contains(subject)).count()))
            .filter(|(_, days)| *days > 0)
            .collect();
        found.sort();
        found
    }

    /// Epsilon `advertiser` already spent on `business` on UTC day `day`
    /// (charges naming no advertiser included).
    pub fn spent(&self, advertiser: &str, business: &str, day: i32) -> f64 {
        let shared = self.spent.get(&(business.to_string(), day)).copied().unwrap_or(0);
        let own =
            self.spent_by_advertiser.get(&(advertiser.to_string(), business.to_string(), day)).copied().unwrap_or(0);
        (shared + own) as f64 / 1e6
    }

    /// Records a noisy release (from a `BudgetSpent` control record); `None`
    /// charges every advertiser.
    pub fn spend(&mut self, advertiser: Option<&str>, business: &str, day: i32, epsilon_micros: u64) {
        let spent = match advertiser {
            Some(advertiser) => {
                self.spent_by_advertiser.entry((advertiser.to_string(), business.to_string(), day)).or_default()
            }
            None => self.spent.entry((business.to_string(), day)).or_default(),
        };
        *spent += epsilon_micros;
    }

    pub fn heap_bytes(&self) -> usize {
        self.by_business.values().flat_map(|days| days.values()).map(|b| b.heap_bytes() + 16).sum::<usize>()
            + self.by_business.len() * 64
    }
}

/// Laplace noise with scale `scale` from a uniform draw in (0, 1).
pub fn laplace(scale: f64, uniform: f64) -> f64 {
    let centred = uniform - 0.5;
    -scale * centred.signum() * (1.0 - 2.0 * centred.abs()).max(f64::MIN_POSITIVE).ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::DAY_MS;

    /// Members are the union over the span; days outside it do not count.
    #[test]
    fn members_cover_exactly_the_span() {
        let mut audiences = Audiences::default();
        audiences.record("shop", 1, 10 * DAY_MS);
        audiences.record("shop", 2, 12 * DAY_MS);
        audiences.record("shop", 3, 20 * DAY_MS);
        audiences.record("other", 4, 12 * DAY_MS);
        let members: Vec<u32> = audiences.members("shop", 12, 3).iter().collect();
        assert_eq!(members, vec![1, 2]);
        assert_eq!(audiences.members("shop", 20, 1).len(), 1);
        assert!(audiences.members("nobody", 20, 30).is_empty());
    }

    /// Each advertiser spends its own budget per business and day; a charge
    /// naming no advertiser (an old log) counts against all of them.
    #[test]
    fn budgets_are_per_advertiser_business_and_day() {
        let mut audiences = Audiences::default();
        audiences.spend(Some("acme"), "shop", 20, 500_000);
        audiences.spend(Some("acme"), "shop", 20, 250_000);
        audiences.spend(Some("beta"), "shop", 20, 100_000);
        assert!((audiences.spent("acme", "shop", 20) - 0.75).abs() < 1e-9);
        assert!((audiences.spent("beta", "shop", 20) - 0.1).abs() < 1e-9);
        assert_eq!(audiences.spent("acme", "shop", 21), 0.0);
        assert_eq!(audiences.spent("acme", "other", 20), 0.0);
        audiences.spend(None, "shop", 20, 1_000_000);
        assert!((audiences.spent("acme", "shop", 20) - 1.75).abs() < 1e-9);
        assert!((audiences.spent("gamma", "shop", 20) - 1.0).abs() < 1e-9);
    }

    /// Laplace draws are symmetric with mean absolute value equal to the scale.
    #[test]
    fn laplace_noise_has_the_documented_scale() {
        let mut rng = fastrand::Rng::with_seed(5);
        let draws: Vec<f64> = (0..200_000).map(|_| laplace(2.0, rng.f64())).collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        let mean_abs = draws.iter().map(|d| d.abs()).sum::<f64>() / draws.len() as f64;
        assert!(mean.abs() < 0.05, "{mean}");
        assert!((mean_abs - 2.0).abs() < 0.05, "{mean_abs}");
    }
}
