//! The feeds against a model: a list of records a feed, rebuilt by rule, with
//! no ledger, no offsets and no files. Random disclosures, revocations,
//! compactions and reopenings; after each step every feed reads back as the
//! model's, whole and page by page, and the live adds are the model's.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

const PARTNERS: [&str; 2] = ["net", "other"];
const PURPOSES: [Purpose; 2] = [Purpose::Product, Purpose::Ads];

fn person(n: u8) -> String {
    format!("r_{n:032x}")
}

#[derive(Clone, Debug)]
enum Step {
    Disclose { partner: usize, purpose: usize, about: u8, items: Vec<(u8, u8, Vec<u8>)> },
    Revoke { revocations: Vec<(u8, Vec<usize>, Option<usize>)> },
    Compact,
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    let item = (0..4u8, 0..6u8, proptest::collection::vec(0..6u8, 1..4));
    let revocation = (0..6u8, proptest::sample::subsequence(vec![0usize, 1], 1..=2), proptest::option::of(0..2usize));
    prop_oneof![
        6 => (0..2usize, 0..2usize, 0..2u8, proptest::collection::vec(item, 0..6))
            .prop_map(|(partner, purpose, about, items)| Step::Disclose { partner, purpose, about, items }),
        3 => proptest::collection::vec(revocation, 1..3).prop_map(|revocations| Step::Revoke { revocations }),
        1 => Just(Step::Compact),
        1 => Just(Step::Reopen),
    ]
}

/// What a feed should hold: every record, as written (before redaction).
#[derive(Default)]
struct Model {
    feeds: BTreeMap<(String, Purpose), Vec<FeedRecord>>,
}

impl Model {
    fn is_live(records: &[FeedRecord], cursor: u64) -> bool {
        records[cursor as usize].op == "add" && !records.iter().any(|r| r.retracts == Some(cursor))
    }

    fn disclose(&mut self, partner: &str, purpose: Purpose, about: &str, items: &[Disclosed], at_ms: i64) -> usize {
        let records = self.feeds.entry((partner.to_string(), purpose)).or_default();
        let mut fresh = 0;
        for (partner_id, suggested, business, subjects) in items {
            let record = FeedRecord {
                cursor: records.len() as u64,
                op: "add".into(),
                about: about.into(),
                partner_id: partner_id.clone(),
                suggested: suggested.clone(),
                business: business.clone(),
                retracts: None,
                reason: None,
                at_ms,
                subjects: subjects.clone(),
            };
            let live = (0..records.len() as u64)
                .any(|cursor| Model::is_live(records, cursor) && key_of(&records[cursor as usize]) == key_of(&record));
            if !live {
                records.push(record);
                fresh += 1;
            }
        }
        if records.is_empty() {
            self.feeds.remove(&(partner.to_string(), purpose));
        }
        fresh
    }

    /// Per feed: for each revocation in turn, each live add naming the
    /// person, in cursor order, retracted once.
    fn revoke(&mut self, revocations: &[Revocation], at_ms: i64) -> usize {
        let mut count = 0;
        for ((partner, purpose), records) in self.feeds.iter_mut() {
            let mut pending: Vec<FeedRecord> = Vec::new();
            for revocation in revocations {
                if !revocation.purposes.contains(purpose) || revocation.partner.as_ref().is_some_and(|p| p != partner) {
                    continue;
                }
                for cursor in 0..records.len() as u64 {
                    let added = &records[cursor as usize];
                    if Model::is_live(records, cursor)
                        && added.subjects.contains(&revocation.subject)
                        && !pending.iter().any(|r| r.retracts == Some(cursor))
                    {
                        pending.push(FeedRecord {
                            op: "retract".into(),
                            retracts: Some(cursor),
                            reason: Some(revocation.reason.to_string()),
                            at_ms,
                            ..added.clone()
                        });
                    }
                }
            }
            count += pending.len();
            for mut record in pending {
                record.cursor = records.len() as u64;
                records.push(record);
            }
        }
        count
    }

    /// A feed as a partner reads it: withdrawn adds and retracts redacted.
    fn read(&self, feed: &(String, Purpose)) -> Vec<FeedRecord> {
        let Some(records) = self.feeds.get(feed) else { return Vec::new() };
        records
            .iter()
            .map(|record| {
                if record.op != "add" || !Model::is_live(records, record.cursor) {
                    record.redacted()
                } else {
                    record.clone()
                }
            })
            .collect()
    }

    fn live(&self) -> BTreeSet<(String, String, u64)> {
        let mut live = BTreeSet::new();
        for ((partner, purpose), records) in &self.feeds {
            for cursor in 0..records.len() as u64 {
                if Model::is_live(records, cursor) {
                    live.insert((partner.clone(), purpose.as_str().to_string(), cursor));
                }
            }
        }
        live
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_feeds_answer_as_the_model(steps in proptest::collection::vec(step(), 1..40)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut feeds = Feeds::open(dir.path()).expect("open");
        let mut model = Model::default();
        for (at_ms, step) in (1..).zip(steps) {
            match step {
                Step::Disclose { partner, purpose, about, items } => {
                    let about = ["suggestion", "audience_member"][about as usize];
                    // A disclosure names each item once (as the callers'
                    // lists do): two equal items in one call would both be
                    // written, with the ledger keeping the later.
                    let mut seen = BTreeSet::new();
                    let items: Vec<Disclosed> = items
                        .into_iter()
                        .filter(|(asker, other, _)| seen.insert((*asker, *other)))
                        .map(|(asker, other, subjects)| {
                            let (suggested, business) = if about == "suggestion" {
                                (Some(format!("p{other}")), None)
                            } else {
                                (None, Some(format!("b{other}")))
                            };
                            (format!("p{asker}"), suggested, business, subjects.into_iter().map(person).collect())
                        })
                        .collect();
                    let (partner, purpose) = (PARTNERS[partner], PURPOSES[purpose]);
                    let want = model.disclose(partner, purpose, about, &items, at_ms);
                    let released = crate::gate::Gated::released_in_a_test(purpose, items);
                    prop_assert_eq!(feeds.disclose(partner, about, released, at_ms).expect("disclose"), want);
                }
                Step::Revoke { revocations } => {
                    let revocations: Vec<Revocation> = revocations
                        .into_iter()
                        .map(|(subject, purposes, partner)| Revocation {
                            subject: person(subject),
                            purposes: purposes.into_iter().map(|p| PURPOSES[p]).collect(),
                            partner: partner.map(|p| PARTNERS[p].to_string()),
                            reason: "refused",
                        })
                        .collect();
                    let want = model.revoke(&revocations, at_ms);
                    prop_assert_eq!(feeds.revoke(&revocations, at_ms).expect("revoke"), want);
                }
                Step::Compact => {
                    feeds.compact().expect("compact");
                }
                Step::Reopen => {
                    drop(feeds);
                    feeds = Feeds::open(dir.path()).expect("reopen");
                }
            }
            for (partner, purpose) in PARTNERS.iter().flat_map(|p| PURPOSES.iter().map(move |q| (*p, *q))) {
                let feed = (partner.to_string(), purpose);
                let want = model.read(&feed);
                let all = feeds.read(partner, purpose, None, 10_000).expect("read");
                prop_assert_eq!(&all, &want, "{} {:?} whole", partner, purpose);
                // Pages of 7 from every start (the offsets are sampled every
                // 16th record: pages start and end anywhere between).
                for after in 0..want.len() {
                    let page = feeds.read(partner, purpose, Some(after as u64), 7).expect("page");
                    let end = (after + 1 + 7).min(want.len());
                    prop_assert_eq!(&page[..], &want[after + 1..end], "{} {:?} after {}", partner, purpose, after);
                }
            }
            let live: BTreeSet<(String, String, u64)> = feeds
                .live()
                .expect("live")
                .into_iter()
                .map(|(partner, purpose, record)| (partner, purpose.as_str().to_string(), record.cursor))
                .collect();
            prop_assert_eq!(live, model.live());
        }
    }
}
