//! End-to-end: friend suggestions and ad audiences from the real server
//! equal a brute-force computation over a simulated population with partner
//! links, friendships, blocks, bans and refusals.

mod common;

use std::collections::{HashMap, HashSet};

use common::{Server, ADVERTISER, PARTNER, REVIEWER, SUBJECT};
use proviso::edge::{Edge, PseudonymKey};
use proviso::sim::{SimConfig, Simulator};
use serde_json::Value;

const KEY_HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// What the brute force keeps, keyed by subject id (`s_…`).
#[derive(Default)]
struct World {
    books: HashMap<String, HashSet<String>>,
    account_of: HashMap<String, String>,
    subject_of: HashMap<String, String>,
    friends: HashSet<(String, String)>,
    blocks: HashSet<(String, String)>,
    /// Business -> subjects with a business message with it.
    customers: HashMap<String, HashSet<String>>,
}

impl World {
    fn apply(&mut self, edge: &Edge, event: &Value) {
        let country = event["country"].as_str();
        let id = |phone: &Value| {
            let (pseudonym, _) = edge.resolve_phone(phone.as_str().expect("phone"), country).expect("valid phone");
            pseudonym.subject_id()
        };
        let subject = id(&event["phone"]);
        match event["type"].as_str().expect("type") {
            "contacts" => {
                let book: HashSet<String> =
                    event["contacts"].as_array().expect("contacts").iter().map(id).filter(|c| *c != subject).collect();
                self.books.insert(subject, book);
            }
            // proviso erases a deleted account everywhere: its book, its
            // place in other books (the in-degree Adamic-Adar reads), its
            // partner links.
            "delete_account" => {
                self.books.remove(&subject);
                for book in self.books.values_mut() {
                    book.remove(&subject);
                }
                if let Some(account) = self.account_of.remove(&subject) {
                    self.subject_of.remove(&account);
                }
            }
            "business_message" => {
                let business = event["business"].as_str().expect("business").to_string();
                self.customers.entry(business).or_default().insert(subject);
            }
            "block" => {
                self.blocks.insert((subject, id(&event["target"])));
            }
            "partner_account" => {
                let account = event["partner_id"].as_str().expect("id").to_string();
                if event["state"].as_str() == Some("unlinked") {
                    if self.account_of.get(&subject) == Some(&account) {
                        self.account_of.remove(&subject);
                        self.subject_of.remove(&account);
                    }
                } else {
                    if let Some(previous) = self.account_of.insert(subject.clone(), account.clone()) {
                        if previous != account {
                            self.subject_of.remove(&previous);
                        }
                    }
                    if let Some(other) = self.subject_of.insert(account, subject.clone()) {
                        if other != subject {
                            self.account_of.remove(&other);
                        }
                    }
                }
            }
            "partner_friend" => {
                let (a, b) = (event["partner_id"].as_str().expect("a"), event["friend"].as_str().expect("b"));
                let key = if a <= b { (a.to_string(), b.to_string()) } else { (b.to_string(), a.to_string()) };
                if event["state"] == "added" {
                    self.friends.insert(key);
                } else {
                    self.friends.remove(&key);
                }
            }
            _ => {}
        }
    }
}

/// Product allowed now and not banned, asked through the API per subject.
struct Eligibility<'a> {
    server: &'a Server,
    purpose: &'static str,
    cache: HashMap<String, bool>,
}

impl Eligibility<'_> {
    fn eligible(&mut self, subject: &str) -> bool {
        if let Some(known) = self.cache.get(subject) {
            return *known;
        }
        let (status, consent) = self.server.get(&format!("/v1/subjects/{subject}/consent"), Some(SUBJECT));
        let allowed = status == 200 && consent["purposes"][self.purpose]["state"] == "granted";
        let (_, abuse) = self.server.get(&format!("/v1/abuse/subjects/{subject}"), Some(REVIEWER));
        let eligible = allowed && abuse["status"] != "banned";
        self.cache.insert(subject.to_string(), eligible);
        eligible
    }
}

/// Suggestions for 60 linked accounts equal the brute force: same accounts,
/// same order (reciprocal, mutual, Adamic-Adar, id), same reasons.
#[test]
fn suggestions_equal_brute_force_over_a_simulated_population() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(
        &temp.path().join("data"),
        &[("PROVISO_PSEUDONYM_KEY", KEY_HEX), ("PROVISO_AUDIENCE_K", "10")],
    );
    let edge = Edge::new(PseudonymKey::from_hex(KEY_HEX).expect("key"), proviso::contract::Region(*b"US"));
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    // History that ended 45 days ago: opt-out notice periods are over.
    let config = SimConfig {
        seed: 99,
        subjects: 3_000,
        days: 10,
        start_ms: now_ms - 55 * proviso::contract::DAY_MS,
        target_events: 60_000,
        median_contacts: 40,
        ..SimConfig::default()
    };
    let mut simulator = Simulator::new(config);
    let mut world = World::default();
    let mut line = Vec::new();
    let mut batch = String::new();
    while {
        line.clear();
        simulator.next_line(&mut line).is_some()
    } {
        let text = std::str::from_utf8(&line).expect("utf8").trim_end().to_string();
        world.apply(&edge, &serde_json::from_str(&text).expect("sim json"));
        batch.push_str(&text);
        batch.push('\n');
        if batch.len() > 2_000_000 {
            assert_eq!(server.ingest(&batch)["rejected"], serde_json::json!([]));
            batch.clear();
        }
    }
    assert_eq!(server.ingest(&batch)["rejected"], serde_json::json!([]));

    let mut eligibility = Eligibility { server: &server, purpose: "product", cache: HashMap::new() };
    let mut in_degree: HashMap<&str, u32> = HashMap::new();
    for book in world.books.values() {
        for contact in book {
            *in_degree.entry(contact.as_str()).or_default() += 1;
        }
    }
    let mut askers: Vec<(&String, &String)> =
        world.account_of.iter().filter(|(subject, _)| world.books.contains_key(*subject)).collect();
    askers.sort();
    let (mut checked, mut non_empty) = (0, 0);
    for (subject, account) in askers.into_iter().take(60) {
        let mut expected: Vec<(bool, usize, f64, String)> = Vec::new();
        if eligibility.eligible(subject) {
            let book = &world.books[subject];
            for contact in book {
                let Some(contact_account) = world.account_of.get(contact) else { continue };
                let pair = if account <= contact_account {
                    (account.clone(), contact_account.clone())
                } else {
                    (contact_account.clone(), account.clone())
                };
                if world.friends.contains(&pair)
                    || world.blocks.contains(&(subject.clone(), contact.clone()))
                    || world.blocks.contains(&(contact.clone(), subject.clone()))
                    || !eligibility.eligible(contact)
                {
                    continue;
                }
                let theirs = world.books.get(contact);
                let reciprocal = theirs.is_some_and(|b| b.contains(subject));
                let common: Vec<&String> = theirs.map(|b| book.intersection(b).collect()).unwrap_or_default();
                let adamic_adar: f64 = common.iter().map(|z| 1.0 / f64::from(in_degree[z.as_str()].max(2)).ln()).sum();
                expected.push((reciprocal, common.len(), adamic_adar, contact_account.clone()));
            }
        }
        expected.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(b.2.total_cmp(&a.2)).then(a.3.cmp(&b.3)));
        expected.truncate(20);
        let (status, got) =
            server.get(&format!("/v1/partners/friendnet/suggestions/{account}?limit=20"), Some(PARTNER));
        assert_eq!(status, 200, "{got}");
        let got = got.as_array().expect("array");
        let got_ids: Vec<&str> = got.iter().map(|s| s["partner_id"].as_str().expect("id")).collect();
        let expected_ids: Vec<&str> = expected.iter().map(|e| e.3.as_str()).collect();
        assert_eq!(got_ids, expected_ids, "suggestions for {account}");
        for (item, (reciprocal, mutual, adamic_adar, _)) in got.iter().zip(&expected) {
            let reasons: Vec<&str> =
                item["reasons"].as_array().expect("reasons").iter().filter_map(Value::as_str).collect();
            assert_eq!(reasons.contains(&"has you in their contacts"), *reciprocal, "{item}");
            let mutual_reason = match mutual {
                0 => None,
                1 => Some("1 mutual contact".to_string()),
                n => Some(format!("{n} mutual contacts")),
            };
            assert_eq!(reasons.iter().find(|r| r.contains("mutual")).map(|r| r.to_string()), mutual_reason);
            assert!((item["score"].as_f64().expect("score") - adamic_adar).abs() < 1e-3, "{item}");
        }
        checked += 1;
        non_empty += usize::from(!expected.is_empty());
    }
    assert_eq!(checked, 60);
    assert!(non_empty >= 20, "the sample must exercise real suggestions, got {non_empty} non-empty lists");

    // Audiences: every business, size for the advertiser, ids for the partner.
    let mut ads = Eligibility { server: &server, purpose: "ads", cache: HashMap::new() };
    let mut businesses: Vec<&String> = world.customers.keys().collect();
    businesses.sort();
    let (mut released, mut suppressed) = (0, 0);
    for business in businesses {
        let consenting: Vec<&String> = {
            let mut members: Vec<&String> = world.customers[business].iter().collect();
            members.sort();
            members.into_iter().filter(|subject| ads.eligible(subject)).collect()
        };
        let (status, size) = server.get(&format!("/v1/audiences/{business}?days=90"), Some(ADVERTISER));
        assert_eq!(status, 200, "{size}");
        let (_, partner) = server.get(&format!("/v1/partners/friendnet/audiences/{business}?days=90"), Some(PARTNER));
        if consenting.len() < 10 {
            assert_eq!((size["suppressed"].as_bool(), &size["size"]), (Some(true), &Value::Null), "{size}");
            assert_eq!(partner["members"], serde_json::json!([]), "{partner}");
            suppressed += 1;
            continue;
        }
        released += 1;
        let rounded = (consenting.len() as u64 + 5) / 10 * 10;
        assert_eq!(size["size"].as_u64(), Some(rounded), "{business}: {size}");
        let text = size.to_string();
        assert!(!text.contains("s_") && !text.contains("p_"), "no identifier reaches an advertiser: {text}");
        let mut expected: Vec<&str> =
            consenting.iter().filter_map(|subject| world.account_of.get(*subject).map(String::as_str)).collect();
        expected.sort();
        let got: Vec<&str> = partner["members"].as_array().expect("members").iter().filter_map(Value::as_str).collect();
        assert_eq!(got, expected, "{business}");
    }
    assert!(released >= 3, "released {released}, suppressed {suppressed}");

    // A business only a few people wrote to is suppressed for everyone.
    let lines: Vec<String> = (0..5)
        .map(|k| {
            format!(
                r#"{{"type":"business_message","ts":{},"phone":"+9198700{k:05}","business":"b_tiny","direction":"out"}}"#,
                now_ms - 1_000
            )
        })
        .collect();
    server.ingest(&lines.join("\n"));
    let (_, size) = server.get("/v1/audiences/b_tiny?days=1", Some(ADVERTISER));
    assert_eq!((size["suppressed"].as_bool(), &size["size"]), (Some(true), &Value::Null), "{size}");

    // Noisy sizes spend the business's daily budget (2.0 at 0.5 each), then
    // are refused; the spend survives a restart.
    let business = world.customers.keys().max_by_key(|b| world.customers[*b].len()).expect("a business").clone();
    for left in [1.5, 1.0, 0.5, 0.0] {
        let (status, size) = server.get(&format!("/v1/audiences/{business}?days=90&noise=true"), Some(ADVERTISER));
        assert_eq!(status, 200, "{size}");
        assert_eq!(size["budget_left"].as_f64(), Some(left), "{size}");
        assert!(size["size"].as_u64().is_none_or(|n| n % 10 == 0), "{size}");
    }
    let data = server.data.clone();
    server.stop();
    let server = Server::start_with(&data, &[("PROVISO_PSEUDONYM_KEY", KEY_HEX), ("PROVISO_AUDIENCE_K", "10")]);
    let (status, body) = server.get(&format!("/v1/audiences/{business}?days=90&noise=true"), Some(ADVERTISER));
    assert_eq!((status, body["code"].as_str()), (429, Some("budget_spent")), "{body}");
}
