//! End-to-end: connection and body limits on the real binary, spoken to over
//! raw loopback sockets (header and body timeouts, the connection cap, the
//! per-token cap on live streams, authentication before any body is read),
//! and error messages that never echo what the caller sent.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Server, ADMIN, ADVERTISER, ANALYST, INGEST, PARTNER, REVIEWER, SUBJECT};

/// A number no error message may ever contain, in part or whole.
const CANARY: &str = "4155552671";

fn addr(server: &Server) -> SocketAddr {
    server.base.trim_start_matches("http://").parse().expect("server address")
}

fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(addr(server)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    stream
}

/// How a connection ended while we waited on it.
#[derive(Debug, PartialEq)]
enum Ending {
    /// The server closed it (EOF or reset).
    Closed,
    /// Still open when we gave up waiting.
    StillOpen,
}

/// Reads until the server closes the connection or `wait` passes; returns
/// what was read, how it ended and when.
fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> (Vec<u8>, Ending, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        let left = wait.saturating_sub(started.elapsed());
        if left.is_zero() {
            return (received, Ending::StillOpen, started.elapsed());
        }
        stream.set_read_timeout(Some(left)).expect("read timeout");
        match stream.read(&mut buffer) {
            Ok(0) => return (received, Ending::Closed, started.elapsed()),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (received, Ending::StillOpen, started.elapsed())
            }
            Err(_) => return (received, Ending::Closed, started.elapsed()),
        }
    }
}

/// One response read off a raw connection: status, and the body when it
/// has a Content-Length (a stream's body is left unread).
struct RawResponse {
    status: u16,
    body: String,
}

impl RawResponse {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::String(self.body.clone()))
    }
}

/// Reads one response head and its Content-Length body from `stream`.
fn read_response(stream: &mut TcpStream) -> Option<RawResponse> {
    let mut received = Vec::new();
    let mut byte = [0u8; 1];
    while !received.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => received.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&received).to_string();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    Some(RawResponse { status, body: String::from_utf8_lossy(&body).to_string() })
}

/// Parses the response at the start of `bytes` (as read until close).
fn parse_response(bytes: &[u8]) -> Option<RawResponse> {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some(RawResponse { status, body: body.to_string() })
}

fn get_request(path: &str, token: Option<&str>) -> String {
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\nHost: proviso\r\n{auth}\r\n")
}

/// Asserts `body` is the standard error body with `code`.
fn assert_error_body(body: &serde_json::Value, code: &str, context: &str) {
    assert_eq!(body["code"], code, "{context}: {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{context}: {body}");
    assert!(
        ["invalid_request", "auth", "internal"].contains(&body["type"].as_str().unwrap_or("")),
        "{context}: {body}"
    );
}

/// A client that sends half a request head and stalls is disconnected once
/// the header timeout (1 s here) passes; a whole request is still served.
#[test]
fn half_a_header_is_disconnected_after_the_header_timeout() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(&temp.path().join("data"), &[("PROVISO_HEADER_TIMEOUT_SECONDS", "1")]);
    let mut stalled = connect(&server);
    stalled.write_all(b"GET /healthz HTTP/1.1\r\nHost: proviso\r\nX-Slow: ").expect("write half a head");
    let (received, ending, after) = read_until_closed(&mut stalled, Duration::from_secs(6));
    assert_eq!(ending, Ending::Closed, "a stalled head kept the connection open for {after:?}");
    assert!(after >= Duration::from_millis(800), "closed too early: {after:?}");
    assert!(after < Duration::from_secs(4), "closed after {after:?}, not about 1 s");
    assert!(parse_response(&received).is_none_or(|r| r.status != 200), "{}", String::from_utf8_lossy(&received));

    let mut whole = connect(&server);
    whole.write_all(get_request("/healthz", None).as_bytes()).expect("write");
    assert_eq!(read_response(&mut whole).expect("response").status, 200);
}

/// A client that sends a request head and stalls partway through the body
/// gets 408 `request_timeout` and is disconnected once the idle-body
/// timeout (1 s here) passes, on a streamed body (events) and a buffered
/// one (rules).
#[test]
fn a_body_that_stalls_is_cut_after_the_idle_body_timeout() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(&temp.path().join("data"), &[("PROVISO_BODY_IDLE_TIMEOUT_SECONDS", "1")]);
    for (path, token, content_type) in
        [("/v1/events", INGEST, "application/x-ndjson"), ("/v1/abuse/rules", ADMIN, "application/toml")]
    {
        let mut stalled = connect(&server);
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: proviso\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: {content_type}\r\nContent-Length: 1000\r\n\r\n{{\"type\":"
        );
        stalled.write_all(head.as_bytes()).expect("write head and part of the body");
        let (received, ending, after) = read_until_closed(&mut stalled, Duration::from_secs(6));
        assert_eq!(ending, Ending::Closed, "{path}: a stalled body kept the connection open for {after:?}");
        assert!(after >= Duration::from_millis(800), "{path}: closed too early: {after:?}");
        assert!(after < Duration::from_secs(4), "{path}: closed after {after:?}, not about 1 s");
        let response = parse_response(&received).expect("a response before the close");
        assert_eq!(response.status, 408, "{path}: {}", response.body);
        assert_error_body(&response.json(), "request_timeout", path);
    }
    assert_eq!(server.get("/healthz", None).1["events"], 0);
}

/// With a cap of 4 connections, connections beyond the cap get 503
/// `too_many_connections` (standard error body) and are closed, while the
/// ones within the cap stay open and keep being served; closing one frees
/// its place. (The test harness's own client holds one pooled connection
/// from the start-up health check, so 3 or 4 raw ones fit.)
#[test]
fn connections_over_the_cap_get_503_while_the_cap_stay_open() {
    let temp = tempfile::tempdir().expect("tempdir");
    let cap = 4;
    let server = Server::start_with(
        &temp.path().join("data"),
        &[("PROVISO_MAX_CONNECTIONS", "4"), ("PROVISO_HEADER_TIMEOUT_SECONDS", "30")],
    );
    let mut held = Vec::new();
    let mut refused = None;
    for _ in 0..10 {
        let mut stream = connect(&server);
        stream.write_all(get_request("/healthz", None).as_bytes()).expect("write");
        let response = read_response(&mut stream).expect("a response");
        if response.status == 200 {
            held.push(stream);
        } else {
            refused = Some((response, stream));
            break;
        }
    }
    let (response, mut refused_stream) = refused.expect("no connection was refused over the cap");
    assert_eq!(response.status, 503, "{}", response.body);
    assert_error_body(&response.json(), "too_many_connections", "over the cap");
    assert!(held.len() == cap - 1 || held.len() == cap, "{} connections fit under a cap of {cap}", held.len());
    let (_, ending, _) = read_until_closed(&mut refused_stream, Duration::from_secs(3));
    assert_eq!(ending, Ending::Closed, "the refused connection stays open");

    // The ones within the cap are still open and served.
    for stream in &mut held {
        stream.write_all(get_request("/healthz", None).as_bytes()).expect("write");
        assert_eq!(read_response(stream).expect("response").status, 200);
    }
    // Closing one frees a place.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut stream = connect(&server);
        stream.write_all(get_request("/healthz", None).as_bytes()).expect("write");
        let status = read_response(&mut stream).map(|r| r.status);
        if status == Some(200) {
            break;
        }
        assert!(Instant::now() < deadline, "no place freed after closing a connection: {status:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// With at most 2 live streams per token, the third `/v1/live` stream of one
/// token gets 429 `too_many_streams` while another token still gets a
/// stream; ending a stream frees its place.
#[test]
fn one_token_gets_at_most_its_cap_of_live_streams_and_another_token_still_gets_one() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(&temp.path().join("data"), &[("PROVISO_MAX_LIVE_STREAMS_PER_TOKEN", "2")]);
    let path = "/v1/live?interval_ms=200";
    let mut first = server.stream(path, ANALYST);
    let mut second = server.stream(path, ANALYST);
    common::next_event_data(&mut first);
    common::next_event_data(&mut second);

    let mut third = connect(&server);
    third.write_all(get_request(path, Some(ANALYST)).as_bytes()).expect("write");
    let response = read_response(&mut third).expect("response");
    assert_eq!(response.status, 429, "third stream of one token: {}", response.body);
    assert_error_body(&response.json(), "too_many_streams", "third stream");

    let mut other = server.stream(path, ADMIN);
    common::next_event_data(&mut other);

    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = connect(&server);
        again.write_all(get_request(path, Some(ANALYST)).as_bytes()).expect("write");
        let status = read_response(&mut again).map(|r| r.status);
        if status == Some(200) {
            break;
        }
        assert!(Instant::now() < deadline, "ending a stream freed no place: {status:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(second);
}

/// Sends `method path` with a declared and streamed 3 MB body and returns
/// the response the server gives before (or instead of) reading it.
fn send_large_body(server: &Server, method: &str, path: &str, token: Option<&str>) -> RawResponse {
    const SIZE: usize = 3 << 20;
    let mut stream = connect(server);
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: proviso\r\n{auth}Content-Type: application/json\r\nContent-Length: {SIZE}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("write head");
    let mut writer = stream.try_clone().expect("clone");
    let sending = std::thread::spawn(move || {
        let chunk = vec![b' '; 64 << 10];
        for _ in 0..SIZE / chunk.len() {
            if writer.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let response = read_response(&mut stream).expect("a response");
    drop(stream);
    let _ = sending.join();
    response
}

/// A 3 MB body without a token gets 401 on every route that takes a body:
/// the token is checked before any of the body is read.
#[test]
fn unauthenticated_large_bodies_get_401_not_413() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&temp.path().join("data"));
    let subject = "s_00000000000000000000000000000000";
    let routes = [
        ("POST", "/v1/abuse/rules".to_string()),
        ("POST", "/v1/events".to_string()),
        ("PUT", format!("/v1/subjects/{subject}/consent/ads")),
        ("POST", "/v1/subjects/resolve".to_string()),
        ("POST", format!("/v1/abuse/subjects/{subject}/decision")),
    ];
    for (method, path) in &routes {
        let response = send_large_body(&server, method, path, None);
        assert_eq!(response.status, 401, "{method} {path}: {}", response.body);
        assert_error_body(&response.json(), "missing_token", path);
    }
    // A token of the wrong role is refused before the body too.
    let response = send_large_body(&server, "POST", "/v1/abuse/rules", Some(ANALYST));
    assert_eq!(response.status, 403, "{}", response.body);
    assert_error_body(&response.json(), "forbidden", "/v1/abuse/rules as analyst");
}

/// Unknown query keys, bad values, bad path segments and unknown body
/// fields are answered with the standard error body, whose message never
/// contains what the caller sent.
#[test]
fn error_messages_never_echo_the_callers_keys_or_values() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&temp.path().join("data"));
    let subject = "s_00000000000000000000000000000000";
    let range = "from=2026-01-01&to=2026-01-02";
    let gets: Vec<(String, &str)> = vec![
        (format!("/v1/metrics/active?{range}&%2B14155552671=1"), ANALYST),
        (format!("/v1/metrics/active?{range}&window=%2B14155552671"), ANALYST),
        (format!("/v1/metrics/active?{range}&window=14155552671"), ANALYST),
        ("/v1/metrics/active?from=%2B14155552671&to=2026-01-02".to_string(), ANALYST),
        (format!("/v1/metrics/messages?{range}&%2B14155552671=1"), ANALYST),
        (format!("/v1/metrics/messages?{range}&by=%2B14155552671"), ANALYST),
        ("/v1/live?%2B14155552671=1".to_string(), ANALYST),
        ("/v1/live?interval_ms=%2B14155552671".to_string(), ANALYST),
        ("/v1/abuse/actions?%2B14155552671=1".to_string(), REVIEWER),
        ("/v1/abuse/actions?after=%2B14155552671x".to_string(), REVIEWER),
        ("/v1/abuse/actions?status=%2B14155552671".to_string(), REVIEWER),
        ("/v1/audiences/b_1?%2B14155552671=1".to_string(), ADVERTISER),
        ("/v1/partners/friendnet/feeds/security?after=%2B14155552671x".to_string(), PARTNER),
        ("/v1/subjects/%2B14155552671/consent".to_string(), SUBJECT),
        ("/v1/subjects/%FF%2B14155552671/consent".to_string(), SUBJECT),
        ("/v1/abuse/subjects/%FF%2B14155552671".to_string(), REVIEWER),
        ("/v1/%2B14155552671".to_string(), ANALYST),
    ];
    for (path, token) in &gets {
        let mut stream = connect(&server);
        stream.write_all(get_request(path, Some(token)).as_bytes()).expect("write");
        let response = read_response(&mut stream).expect("response");
        assert!((400..500).contains(&response.status), "GET {path}: {} {}", response.status, response.body);
        assert!(!response.body.contains(CANARY), "GET {path} echoes the caller: {}", response.body);
        let body = response.json();
        assert!(body["code"].is_string() && body["type"].is_string(), "GET {path}: not the error body: {body}");
    }
    let (status, body) = server.post(
        "/v1/subjects/resolve",
        Some(SUBJECT),
        "application/json",
        br#"{"phone":"+14155552671","x14155552671":1}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(!body.to_string().contains(CANARY), "{body}");
    let (status, body) = server.put(
        &format!("/v1/subjects/{subject}/consent/ads"),
        Some(SUBJECT),
        &serde_json::json!({"granted": 14155552671u64}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(!body.to_string().contains(CANARY), "{body}");
    let line = r#"{"type":"session","ts":1767607200000,"phone":"+919812345678","device":"d","14155552671":1}"#;
    let (status, body) = server.post("/v1/events", Some(INGEST), "application/x-ndjson", line.as_bytes());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rejected"][0]["reason"], "unknown_field", "{body}");
    assert!(!body.to_string().contains(CANARY), "an ingest rejection echoes the caller: {body}");
}

/// A refusal before the body is read (here an unknown `{subject}`, answered
/// by the path extractor) closes the connection and says so: a client that
/// kept it would send its next request after bytes the server never read.
#[test]
fn an_error_before_the_body_is_read_closes_the_connection() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&temp.path().join("data"));
    let mut stream = connect(&server);
    let subject = "s_00000000000000000000000000000000";
    let head = format!(
        "POST /v1/subjects/{subject}/erase HTTP/1.1\r\nHost: proviso\r\nAuthorization: Bearer {SUBJECT}\r\n\
         Content-Type: application/json\r\nContent-Length: 64\r\n\r\n{{\"partial\":"
    );
    stream.write_all(head.as_bytes()).expect("write");
    let (bytes, ending, _) = read_until_closed(&mut stream, Duration::from_secs(5));
    let response = parse_response(&bytes).expect("a response");
    assert_eq!(response.status, 404, "{}", response.body);
    let head = String::from_utf8_lossy(&bytes).to_ascii_lowercase();
    assert!(head.contains("connection: close"), "the answer says the connection closes: {head}");
    assert_eq!(ending, Ending::Closed, "and the server closes it");
}
