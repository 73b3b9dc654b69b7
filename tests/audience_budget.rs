//! End-to-end: the privacy budget for audience sizes is kept per advertiser
//! (a token's configured name) and business, so one advertiser cannot spend
//! another's; and with `audience_epsilon` configured every advertiser answer
//! is noised and charged, whatever the request says.

mod common;

use common::{Server, ADVERTISER};
use serde_json::Value;

const DAY_MS: i64 = 86_400_000;
const ACME: &str = "test-advertiser-acme-0123456789";
const BETA: &str = "test-advertiser-beta-0123456789";

/// Noise configured (ε 0.5 per answer, 1.0 per advertiser, business and
/// UTC day), and two advertisers with a token each.
const NOISE_CONFIG: &str = r#"
audience_epsilon = 0.5
audience_daily_epsilon = 1.0

[[tokens]]
name = "acme"
role = "advertiser"
token = "test-advertiser-acme-0123456789"

[[tokens]]
name = "beta"
role = "advertiser"
token = "test-advertiser-beta-0123456789"
"#;

/// 30 people in India (opt-out, notice over) wrote to `shop` a minute ago;
/// 3 wrote to `tiny`.
fn ingest_audiences(server: &Server) {
    let long_ago = common::now_ms() - 40 * DAY_MS;
    let recent = common::now_ms() - 60_000;
    let mut lines = Vec::new();
    for k in 0..33u32 {
        let phone = format!("+9198767{k:05}");
        let business = if k < 30 { "shop" } else { "tiny" };
        lines.push(format!(r#"{{"type":"session","ts":{long_ago},"phone":"{phone}","device":"d{k}"}}"#));
        lines.push(format!(
            r#"{{"type":"business_message","ts":{recent},"phone":"{phone}","business":"{business}","direction":"out"}}"#
        ));
    }
    assert_eq!(server.ingest(&lines.join("\n"))["rejected"], serde_json::json!([]));
}

fn size(server: &Server, token: &str, query: &str) -> (u16, Value) {
    server.get(&format!("/v1/audiences/shop?days=7{query}"), Some(token))
}

/// Asserts a noised, charged answer leaving `left` of the budget.
fn assert_charged(answer: &(u16, Value), left: f64) {
    let (status, body) = answer;
    assert_eq!(*status, 200, "{body}");
    assert_eq!(body["epsilon"].as_f64(), Some(0.5), "charged: {body}");
    assert_eq!(body["budget_left"].as_f64(), Some(left), "{body}");
}

fn assert_spent(answer: &(u16, Value)) {
    let (status, body) = answer;
    assert_eq!((*status, body["code"].as_str()), (429, Some("budget_spent")), "{body}");
}

/// Acme spends its whole budget on `shop` (with and without `noise=true`);
/// Beta still gets its own answers for `shop`; both budgets survive a restart.
#[test]
fn each_advertiser_has_its_own_budget_and_every_answer_is_charged() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let env = [("PROVISO_AUDIENCE_K", "10")];
    let server = Server::start_with_config(&data, &env, NOISE_CONFIG);
    ingest_audiences(&server);

    // Asked without `noise=true`: still noised and charged.
    assert_charged(&size(&server, ACME, ""), 0.5);
    assert_charged(&size(&server, ACME, "&noise=true"), 0.0);
    assert_spent(&size(&server, ACME, ""));
    assert_spent(&size(&server, ACME, "&noise=true"));
    // An explicit request for an exact size is refused, not answered exactly.
    let (status, body) = size(&server, BETA, "&noise=false");
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_query")), "{body}");

    // Beta's budget for the same business is untouched by Acme's spending.
    assert_charged(&size(&server, BETA, ""), 0.5);
    // The env token is an advertiser of its own too.
    assert_charged(&size(&server, ADVERTISER, ""), 0.5);
    // A suppressed answer (fewer than k people) is charged like any other.
    let (status, tiny) = server.get("/v1/audiences/tiny?days=7", Some(BETA));
    assert_eq!(
        (status, tiny["suppressed"].as_bool(), tiny["epsilon"].as_f64()),
        (200, Some(true), Some(0.5)),
        "{tiny}"
    );

    // A restart refills nobody's budget, and keeps them apart.
    server.stop();
    let server = Server::start_with_config(&data, &env, NOISE_CONFIG);
    assert_spent(&size(&server, ACME, ""));
    assert_charged(&size(&server, BETA, ""), 0.0);
    assert_spent(&size(&server, BETA, ""));
    assert_charged(&size(&server, ADVERTISER, ""), 0.0);
}

/// Without `audience_epsilon` in the config, noise stays opt-in: exact
/// (rounded) sizes are free and `noise=true` is charged per advertiser.
#[test]
fn without_noise_configured_exact_sizes_are_free_and_noise_is_per_advertiser() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let tokens = NOISE_CONFIG.split_once("[[tokens]]").map(|(_, rest)| format!("[[tokens]]{rest}")).expect("tokens");
    let server = Server::start_with_config(&data, &[("PROVISO_AUDIENCE_K", "10")], &tokens);
    ingest_audiences(&server);
    let (status, exact) = size(&server, ACME, "");
    assert_eq!((status, exact["size"].as_u64(), exact["epsilon"].as_f64()), (200, Some(30), Some(0.0)), "{exact}");
    assert_eq!(exact["budget_left"].as_f64(), Some(2.0), "{exact}");
    for left in [1.5, 1.0, 0.5, 0.0] {
        assert_charged(&size(&server, ACME, "&noise=true"), left);
    }
    assert_spent(&size(&server, ACME, "&noise=true"));
    assert_charged(&size(&server, BETA, "&noise=true"), 1.5);
}
