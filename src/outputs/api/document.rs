//! The served OpenAPI document: what utoipa generates from the handlers'
//! annotations, completed here with what the annotations cannot say, so
//! that every status an operation can answer is listed and every schema
//! describes exactly what the server accepts and sends.
//!
//! Owns: the answers every route shares (401/403 behind a token, 408/413
//! with a body, 500/503 anywhere), the shape of a `/v1/live` event, and
//! the either-or body of a partner feed.
//! Never: describes a route the router does not serve (the unit test in
//! `mod.rs` compares both).

use std::sync::OnceLock;

use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use super::ApiDoc;

/// The document served at `/openapi.json`, built once.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|_| json!({}));
        complete(&mut doc);
        doc
    })
}

const ERROR_BODY: &str = "#/components/schemas/ErrorBody";

/// Answers every operation may give, whatever its annotations list.
fn shared_answers(operation: &Map<String, Value>) -> Vec<(&'static str, &'static str)> {
    let mut answers = Vec::new();
    let secured = operation.get("security").and_then(Value::as_array).is_some_and(|s| !s.is_empty());
    if secured {
        answers.push(("401", "`missing_token` or `invalid_token`"));
        answers.push(("403", "`forbidden`: the token's role may not use this route"));
    }
    if operation
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|params| params.iter().any(|p| p.get("in").and_then(Value::as_str) == Some("query")))
    {
        answers.push(("400", "`invalid_query`: an unknown query parameter, or a value out of its range"));
    }
    if operation
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|params| params.iter().any(|p| p.get("in").and_then(Value::as_str) == Some("path")))
    {
        answers.push((
            "400",
            "`invalid_subject`, `unknown_purpose` or `malformed_request`: a path segment out of its pattern",
        ));
    }
    if operation.contains_key("requestBody") {
        answers.push(("400", "`invalid_body` or `malformed_request`: the body does not read as documented"));
        answers.push(("408", "`request_timeout`: the body stopped arriving; the connection is closed"));
        answers.push(("413", "`payload_too_large`"));
    }
    answers.push(("500", "`internal`: a fault inside proviso (the detail is in the server log)"));
    answers.push(("503", "`unavailable` (shutting down, or the pipeline failed) or `too_many_connections`"));
    answers
}

/// Completes the generated document in place.
pub(super) fn complete(doc: &mut Value) {
    error_codes(doc);
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for (method, operation) in item.iter_mut() {
            let Some(operation) = operation.as_object_mut() else { continue };
            non_null_parameters(operation);
            let answers = shared_answers(operation);
            let responses = operation.entry("responses").or_insert_with(|| json!({}));
            if let Some(responses) = responses.as_object_mut() {
                for (status, description) in answers {
                    responses.entry(status).or_insert_with(|| error_response(description));
                }
            }
            match (method.as_str(), path.as_str()) {
                ("get", "/v1/live") => live_events(operation),
                ("get", "/v1/partners/{partner}/feeds/{purpose}") => feed_pages(operation),
                ("post", "/v1/events") => text_body(operation, "application/x-ndjson", None),
                ("post", "/v1/abuse/rules") => text_body(operation, "application/toml", Some(1)),
                _ => {}
            }
        }
    }
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": ERROR_BODY}}}
    })
}

/// A parameter is never null on the wire: an absent optional parameter is
/// left out, not sent as `null`.
fn non_null_parameters(operation: &mut Map<String, Value>) {
    let Some(parameters) = operation.get_mut("parameters").and_then(Value::as_array_mut) else { return };
    for parameter in parameters {
        let Some(schema) = parameter.get_mut("schema").and_then(Value::as_object_mut) else { continue };
        let types = schema.get("type").and_then(Value::as_array).cloned();
        if let Some(types) = types {
            let kept: Vec<Value> = types.into_iter().filter(|t| t != "null").collect();
            let kept = if kept.len() == 1 { kept[0].clone() } else { Value::Array(kept) };
            schema.insert("type".to_string(), kept);
        }
        // A u64 comes out as `int64`, which is signed: its range says more.
        if schema.get("maximum").and_then(Value::as_u64).is_some_and(|max| max > i64::MAX as u64) {
            schema.remove("format");
        }
        // `Option<Enum>` comes out as `oneOf: [null, {$ref or enum}]`.
        if let Some(one_of) = schema.get("oneOf").and_then(Value::as_array).cloned() {
            let kept: Vec<Value> = one_of.into_iter().filter(|s| s.get("type") != Some(&json!("null"))).collect();
            if kept.len() == 1 {
                schema.remove("oneOf");
                if let Some(inner) = kept[0].as_object() {
                    for (key, value) in inner {
                        schema.insert(key.clone(), value.clone());
                    }
                }
            }
        }
    }
}

/// `/v1/live` sends server-sent events, each either `figures` with a
/// LiveFigures object as JSON data, or `error` with a short text. The
/// schema describes one event (the OpenAPI 3.2 reading of
/// `text/event-stream`, which 3.1 tools take as each event's schema).
fn live_events(operation: &mut Map<String, Value>) {
    let event = json!({
        "oneOf": [
            {
                "type": "object",
                "required": ["event", "data"],
                "properties": {
                    "event": {"const": "figures"},
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": {"$ref": "#/components/schemas/LiveFigures"}
                    }
                }
            },
            {
                "type": "object",
                "required": ["event", "data"],
                "properties": {"event": {"const": "error"}, "data": {"type": "string"}}
            }
        ]
    });
    if let Some(media) = operation.get_mut("responses").and_then(|r| r.pointer_mut("/200/content/text~1event-stream")) {
        media["schema"] = event;
    }
}

/// A feed page is a SecurityFeedPage for `security` and a PurposeFeedPage
/// for `product` and `ads` (an empty page is both, hence `anyOf`).
fn feed_pages(operation: &mut Map<String, Value>) {
    if let Some(media) = operation.get_mut("responses").and_then(|r| r.pointer_mut("/200/content/application~1json")) {
        media["schema"] = json!({
            "anyOf": [
                {"$ref": "#/components/schemas/SecurityFeedPage"},
                {"$ref": "#/components/schemas/PurposeFeedPage"}
            ]
        });
    }
}

/// The closed lists of an error body's `code` and `type`, and of a
/// rejected line's `reason`.
fn error_codes(doc: &mut Value) {
    use super::error::Code;
    let codes: Vec<&str> = Code::ALL.iter().map(|code| code.name()).collect();
    let mut kinds: Vec<&str> = Code::ALL.iter().map(|code| code.kind()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    if let Some(properties) = doc.pointer_mut("/components/schemas/ErrorBody/properties") {
        properties["code"]["enum"] = json!(codes);
        properties["type"]["enum"] = json!(kinds);
    }
    let reasons: Vec<&str> = crate::edge::RejectReason::ALL.iter().map(|reason| reason.as_str()).collect();
    if let Some(reason) = doc.pointer_mut("/components/schemas/Rejection/properties/reason") {
        reason["enum"] = json!(reasons);
    }
}

/// A text body: the schema describes the text, not a JSON value. NDJSON
/// events take any text (each line is judged on its own, so no body is
/// refused as a whole): no constraint. A rules file must not be empty.
fn text_body(operation: &mut Map<String, Value>, media_type: &str, min_length: Option<u64>) {
    let Some(body) = operation.get_mut("requestBody") else { return };
    let Some(media) = body.get_mut("content").and_then(|content| content.get_mut(media_type)) else { return };
    media["schema"] = match min_length {
        Some(min) => json!({"type": "string", "minLength": min}),
        None => json!({}),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{Pseudonym, Purpose};

    fn operations() -> Vec<(String, String, &'static Map<String, Value>)> {
        let mut all = Vec::new();
        for (path, item) in document()["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("item") {
                all.push((method.clone(), path.clone(), operation.as_object().expect("operation")));
            }
        }
        all
    }

    fn parameters(operation: &Map<String, Value>) -> Vec<&Value> {
        operation.get("parameters").and_then(Value::as_array).map(|p| p.iter().collect()).unwrap_or_default()
    }

    /// Path parameters are exactly the path's `{names}` (a query struct
    /// without `parameter_in = Query` once came out as required path
    /// parameters), and no parameter is ever `null`.
    #[test]
    fn parameters_sit_where_they_are_read() {
        for (method, path, operation) in operations() {
            let mut in_path: Vec<&str> = parameters(operation)
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().expect("name"))
                .collect();
            in_path.sort_unstable();
            let mut template: Vec<&str> =
                path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect();
            template.sort_unstable();
            assert_eq!(in_path, template, "{method} {path}");
            for parameter in parameters(operation) {
                let schema = parameter["schema"].to_string();
                assert!(!schema.contains("\"null\""), "{method} {path}: {parameter}");
                if parameter["in"] == "path" {
                    assert_eq!(parameter["required"], true, "{method} {path}: {parameter}");
                }
            }
        }
    }

    /// Every 4xx and 5xx an operation lists carries the standard body (but
    /// the health probe's 503, which is its `Health` answer), and
    /// every operation lists the answers any route can give.
    #[test]
    fn every_error_answer_is_the_standard_body() {
        for (method, path, operation) in operations() {
            let responses = operation["responses"].as_object().expect("responses");
            for (status, response) in responses {
                // A probe's 503 is its health (`storage_failed`, with the
                // message), which a balancer reads like its 200.
                let probe = path == "/healthz" && status == "503";
                if status.as_str() >= "400" && !probe {
                    assert_eq!(
                        response.pointer("/content/application~1json/schema/$ref"),
                        Some(&json!(ERROR_BODY)),
                        "{method} {path} {status}"
                    );
                }
            }
            let secured = operation.get("security").is_some();
            let with_body = operation.contains_key("requestBody");
            for (status, expected) in [
                ("401", secured),
                ("403", secured),
                ("408", with_body),
                ("413", with_body),
                ("500", true),
                ("503", true),
            ] {
                assert_eq!(responses.contains_key(status), expected, "{method} {path} {status}");
            }
        }
    }

    /// The error body's `code` lists every code.
    #[test]
    fn error_codes_are_listed() {
        let codes = &document()["components"]["schemas"]["ErrorBody"]["properties"]["code"]["enum"];
        let names: Vec<&str> = super::super::error::Code::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(codes, &json!(names));
    }

    /// Every `{subject}` carries the pattern the parser accepts: `s_` and
    /// 32 lowercase hex digits.
    #[test]
    fn subject_ids_carry_the_parsers_pattern() {
        let mut seen = 0;
        for (method, path, operation) in operations() {
            for parameter in parameters(operation).into_iter().filter(|p| p["name"] == "subject") {
                assert_eq!(parameter["schema"]["pattern"], "^s_[0-9a-f]{32}$", "{method} {path}");
                seen += 1;
            }
        }
        assert_eq!(seen, 6);
        let hex = "0123456789abcdef0123456789abcdef";
        assert!(Pseudonym::from_subject_id(&format!("s_{hex}")).is_some());
        for refused in [
            format!("s_{}", hex.to_uppercase()),
            format!("s_{}", &hex[1..]),
            format!("s_{hex}0"),
            format!("S_{hex}"),
            format!("s_{}g", &hex[1..]),
            hex.to_string(),
        ] {
            assert!(Pseudonym::from_subject_id(&refused).is_none(), "{refused}");
        }
    }

    /// Enumerated path values are the ones the handlers take.
    #[test]
    fn purposes_are_the_handlers() {
        let values = |path: &str, method: &str| -> Vec<String> {
            let operation = &document()["paths"][path][method];
            let purpose = parameters(operation.as_object().expect("operation"))
                .into_iter()
                .find(|p| p["name"] == "purpose")
                .expect("purpose");
            purpose["schema"]["enum"]
                .as_array()
                .expect("enum")
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        };
        let refusable: Vec<String> =
            Purpose::ALL.iter().filter(|p| !p.is_essential()).map(|p| p.as_str().to_string()).collect();
        assert_eq!(values("/v1/subjects/{subject}/consent/{purpose}", "put"), refusable);
        let feeds = values("/v1/partners/{partner}/feeds/{purpose}", "get");
        assert_eq!(feeds, ["security", "product", "ads"]);
    }

    /// A `/v1/live` event is described as an event, its data as JSON
    /// LiveFigures.
    #[test]
    fn live_events_are_described_as_events() {
        let schema = document()
            .pointer("/paths/~1v1~1live/get/responses/200/content/text~1event-stream/schema")
            .expect("live schema");
        assert_eq!(schema["oneOf"][0]["properties"]["event"]["const"], "figures");
        assert_eq!(
            schema["oneOf"][0]["properties"]["data"]["contentSchema"]["$ref"],
            "#/components/schemas/LiveFigures"
        );
    }
}
