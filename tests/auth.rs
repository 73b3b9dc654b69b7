//! End-to-end: every endpoint against every role.

mod common;

use common::{Server, ADMIN, ADVERTISER, ANALYST, INGEST, OTHER_PARTNER, PARTNER, REVIEWER, SUBJECT};
use proviso::outputs::api::auth::Role;
use proviso::outputs::api::ADMIN_ONLY;
use proviso::outputs::api::ROUTES;

/// A request to `path` (its placeholders filled with values proviso holds
/// nothing about) as a caller with `token` would send it, with a valid body.
fn call(server: &Server, method: &str, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let concrete = path
        .replace("{subject}", "s_00000000000000000000000000000000")
        .replace("{partner}", "friendnet")
        .replace("{partner_id}", "fn-none")
        .replace("{business}", "b_1")
        .replace("{purpose}", if path.starts_with("/v1/partners") { "security" } else { "ads" });
    let concrete = if concrete.starts_with("/v1/metrics") {
        format!("{concrete}?from=2026-01-01&to=2026-01-02")
    } else {
        concrete
    };
    if concrete.starts_with("/v1/live") {
        let status = server.get_status(&concrete, token);
        return if status == 200 { (status, serde_json::Value::Null) } else { server.get(&concrete, token) };
    }
    match method {
        "GET" => server.get(&concrete, token),
        "POST" if concrete == "/v1/events" => server.post(&concrete, token, "application/x-ndjson", b""),
        "POST" if concrete == "/v1/abuse/rules" => server.post(
            &concrete,
            token,
            "application/toml",
            b"[[rule]]\nname = \"x\"\nwhen = \"messages_sent[1m] > 5\"\neffects = [\"review\"]\nreason = \"spam\"\n",
        ),
        "POST" if concrete.ends_with("/decision") => {
            server.post(&concrete, token, "application/json", br#"{"action":"clear"}"#)
        }
        "POST" => server.post(&concrete, token, "application/json", br#"{"phone":"+919812345678"}"#),
        "PUT" => server.put(&concrete, token, &serde_json::json!({"granted": false})),
        other => panic!("unexpected method {other}"),
    }
}

fn token_of(role: Role) -> &'static str {
    match role {
        Role::Admin => ADMIN,
        Role::Ingest => INGEST,
        Role::Analyst => ANALYST,
        Role::SubjectService => SUBJECT,
        Role::Reviewer => REVIEWER,
        Role::Partner => PARTNER,
        Role::Advertiser => ADVERTISER,
    }
}

/// For each route in the router's table: no token gives 401, an unknown token
/// 401, a role not admitted 403, an admitted role (and admin) neither; public
/// routes answer 200 to anyone.
#[test]
fn every_endpoint_checks_every_role() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&temp.path().join("data"));
    for (method, path, admitted) in ROUTES {
        let call = |token: Option<&str>| call(&server, method, path, token);
        let admin_only = ADMIN_ONLY.contains(path);
        if admitted.is_empty() && !admin_only {
            for token in [None, Some("nonsense-token-value-123"), Some(INGEST)] {
                assert_eq!(call(token).0, 200, "{method} {path} is public");
            }
            continue;
        }
        let (status, body) = call(None);
        assert_eq!((status, body["code"].as_str()), (401, Some("missing_token")), "{method} {path} without token");
        let (status, body) = call(Some("nonsense-token-value-123"));
        assert_eq!((status, body["code"].as_str()), (401, Some("invalid_token")), "{method} {path} bad token");
        for role in Role::ALL {
            let (status, body) = call(Some(token_of(*role)));
            if *role == Role::Admin || admitted.contains(role) {
                assert!(status != 401 && status != 403, "{method} {path} as {role:?}: {status} {body}");
            } else {
                assert_eq!(status, 403, "{method} {path} as {role:?}: {body}");
                assert_eq!(body["code"], "forbidden");
                assert_eq!(body["type"], "auth");
            }
        }
    }
}

/// The OpenAPI document served by the binary names every route.
#[test]
fn openapi_json_is_served_and_lists_every_route() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&temp.path().join("data"));
    let (status, doc) = server.get("/openapi.json", None);
    assert_eq!(status, 200);
    for (method, path, _) in ROUTES {
        assert!(doc["paths"][path][method.to_ascii_lowercase()].is_object(), "{method} {path} documented");
    }
    let (status, body) = server.get("/v1/nothing", Some(ADMIN));
    assert_eq!((status, body["code"].as_str()), (404, Some("route_not_found")));
}

/// Callers, in the order of a [`MATRIX`] row's columns.
const CALLERS: &[(&str, Option<&str>)] = &[
    ("none", None),
    ("bad", Some("nonsense-token-value-123")),
    ("admin", Some(ADMIN)),
    ("ingest", Some(INGEST)),
    ("analyst", Some(ANALYST)),
    ("subject", Some(SUBJECT)),
    ("reviewer", Some(REVIEWER)),
    ("partner", Some(PARTNER)),
    ("other_partner", Some(OTHER_PARTNER)),
    ("advertiser", Some(ADVERTISER)),
];

/// The authorization matrix, written down: for every route, the status each
/// caller gets (columns as in [`CALLERS`]; the partner routes name
/// `friendnet`, so `other_partner` is the other network's token; subject ids,
/// accounts and businesses are ones proviso holds nothing about). A route
/// added to the router without a row here fails the test, and so does a
/// row for a route that is gone.
#[rustfmt::skip]
const MATRIX: &[(&str, &str, &str)] = &[
    //                                                  none bad admin ingest analyst subject reviewer partner other advertiser
    ("POST", "/v1/events", "401 401 200 200 403 403 403 200 200 403"),
    ("GET", "/v1/metrics/active", "401 401 200 403 200 403 403 403 403 403"),
    ("GET", "/v1/metrics/messages", "401 401 200 403 200 403 403 403 403 403"),
    ("GET", "/v1/live", "401 401 200 403 200 403 403 403 403 403"),
    ("POST", "/v1/subjects/resolve", "401 401 404 403 403 404 403 403 403 403"),
    ("GET", "/v1/subjects/{subject}/consent", "401 401 404 403 403 404 403 403 403 403"),
    ("PUT", "/v1/subjects/{subject}/consent/{purpose}", "401 401 404 403 403 404 403 403 403 403"),
    ("GET", "/v1/subjects/{subject}/report", "401 401 404 403 403 404 403 403 403 403"),
    ("POST", "/v1/subjects/{subject}/erase", "401 401 404 403 403 404 403 403 403 403"),
    ("GET", "/v1/abuse/actions", "401 401 200 403 403 403 200 403 403 403"),
    ("GET", "/v1/abuse/subjects/{subject}", "401 401 404 403 403 403 404 403 403 403"),
    ("POST", "/v1/abuse/subjects/{subject}/decision", "401 401 404 403 403 403 404 403 403 403"),
    ("POST", "/v1/abuse/rules", "401 401 200 403 403 403 403 403 403 403"),
    ("POST", "/v1/admin/backup", "401 401 400 403 403 403 403 403 403 403"),
    ("GET", "/v1/partners/{partner}/feeds/{purpose}", "401 401 200 403 403 403 403 200 403 403"),
    ("GET", "/v1/partners/{partner}/suggestions/{partner_id}", "401 401 404 403 403 403 403 404 403 403"),
    ("GET", "/v1/partners/{partner}/audiences/{business}", "401 401 200 403 403 403 403 200 403 403"),
    ("GET", "/v1/audiences/{business}", "401 401 200 403 403 403 403 403 403 200"),
    ("GET", "/healthz", "200 200 200 200 200 200 200 200 200 200"),
    ("GET", "/metrics", "200 200 200 200 200 200 200 200 200 200"),
    ("GET", "/openapi.json", "200 200 200 200 200 200 200 200 200 200"),
];

#[test]
fn the_authorization_matrix_is_written_down() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&temp.path().join("data"));
    let mut observed = Vec::new();
    for (method, path, _) in ROUTES {
        let statuses: Vec<String> =
            CALLERS.iter().map(|(_, token)| call(&server, method, path, *token).0.to_string()).collect();
        observed.push(format!("    (\"{method}\", \"{path}\", \"{}\"),", statuses.join(" ")));
    }
    let written: Vec<String> = MATRIX
        .iter()
        .map(|(method, path, statuses)| format!("    (\"{method}\", \"{path}\", \"{statuses}\"),"))
        .collect();
    assert_eq!(
        written,
        observed,
        "the matrix differs from the server (callers: {}); observed:\n{}",
        CALLERS.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(" "),
        observed.join("\n")
    );
}
