//! Request limits enforced around every handler: the token is checked
//! before any body is read, a body that stops arriving is cut, each token
//! holds a bounded number of live streams, and every error the framework
//! itself produces gets the standard body with a fixed message.
//!
//! Owns: the auth guard driven by [`super::ROUTES`], the idle-body timeout,
//! the live-stream counter, the catch-all error shape.
//! Never: reads a body itself, or puts a submitted value in a message.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};

use super::error::{ApiError, Code};
use super::{SharedState, ADMIN_ONLY, ROUTES};

/// Checks the bearer token against the roles [`ROUTES`] lists for the
/// matched route before the handler, and so before any body extractor,
/// runs: an unauthenticated 3 MB body gets 401, not 413. Handlers check
/// again for the caller they need; this guard is what makes the order hold
/// on every route, including ones added later.
pub(super) async fn authenticate_first(
    State(app): State<SharedState>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(matched) = matched {
        let method = request.method().as_str();
        let route = ROUTES.iter().find(|(m, p, _)| *m == method && *p == matched.as_str());
        if let Some((_, path, admitted)) = route {
            if !admitted.is_empty() || ADMIN_ONLY.contains(path) {
                if let Err(error) = app.tokens.caller(request.headers(), admitted) {
                    let response = error.into_response();
                    return if has_body(&request) { close_after(response) } else { response };
                }
            }
        }
    }
    let timed_out = request.extensions().get::<BodyTimedOut>().cloned();
    let response = next.run(request).await;
    if timed_out.is_some_and(|flag| flag.0.load(Ordering::Relaxed)) {
        let error = ApiError::new(
            Code::RequestTimeout,
            "the request body stopped arriving; the connection is closed, send the request again",
        );
        return close_after(error.into_response());
    }
    response
}

/// Cluster mode: before a `/v1` handler runs, this node applies every
/// write the cluster acknowledged before the request arrived, whichever
/// node took it (read-your-writes on every node; a refusal sent through
/// another node is in force here). Embedded mode: nothing to wait for.
pub(super) async fn catch_up_first(
    State(app): State<SharedState>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let is_api = matched.is_some_and(|matched| matched.as_str().starts_with("/v1/"));
    if is_api {
        if let Err(error) = app.pipeline.catch_up().await {
            tracing::warn!(%error, "Not answering: this node has not caught up with its cluster.");
            return ApiError::new(Code::Unavailable, error.to_string()).into_response();
        }
    }
    next.run(request).await
}

/// Whether the request announces a body (which a refusal leaves unread).
fn has_body(request: &Request) -> bool {
    let headers = request.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.trim() != "0")
}

/// Marks a response as the last on its connection: the request body may be
/// partly unread, so the connection cannot carry another request.
fn close_after(mut response: Response) -> Response {
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Gives every error response the framework produced itself (extractor
/// rejections, 405) the standard error body, with a fixed message: axum's
/// own texts may quote a path segment, a query key or a body fragment.
///
/// An error answered to a request that announced a body also closes the
/// connection: the handler may have refused before reading it (an unknown
/// `{subject}`, a bad query), and a kept-alive connection with unread bytes
/// would fail the client's next request on it.
pub(super) async fn standard_errors(request: Request, next: Next) -> Response {
    let announced_body = has_body(&request);
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let standard = standard_body(response);
    if announced_body {
        close_after(standard)
    } else {
        standard
    }
}

/// `response` with the standard error body (unchanged when it has one).
fn standard_body(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if is_json {
        return response;
    }
    let connection = response.headers().get(header::CONNECTION).cloned();
    let error = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(Code::PayloadTooLarge, "request body is too large"),
        StatusCode::METHOD_NOT_ALLOWED => {
            ApiError::new(Code::MethodNotAllowed, "this route does not take that method; see /openapi.json")
        }
        StatusCode::NOT_FOUND => ApiError::new(Code::RouteNotFound, "no such route; see /openapi.json"),
        status if status.is_server_error() => ApiError::internal(format_args!("framework error {status}")),
        _ => ApiError::new(Code::MalformedRequest, "the request could not be read; see /openapi.json"),
    };
    let mut replaced = error.into_response();
    if let Some(connection) = connection {
        replaced.headers_mut().insert(header::CONNECTION, connection);
    }
    replaced
}

/// Set when a request's body timed out, so the response can say so.
#[derive(Clone, Default)]
pub struct BodyTimedOut(Arc<AtomicBool>);

/// The error a timed-out body yields to whoever reads it.
#[derive(Debug, thiserror::Error)]
#[error("request body idle for longer than the body idle timeout")]
pub struct BodyIdleTimeout;

/// Wraps a request body so that waiting longer than `idle` for its next
/// piece ends it with [`BodyIdleTimeout`]. Time spent by the handler
/// between reads does not count: the clock runs only while a read waits.
pub fn with_idle_timeout<B>(request: axum::http::Request<B>, idle: Duration) -> Request
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<axum::BoxError>,
{
    let flag = BodyTimedOut::default();
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(flag.clone());
    let body = IdleTimeoutBody { inner: body, idle, sleep: Box::pin(tokio::time::sleep(idle)), waiting: false, flag };
    Request::from_parts(parts, Body::new(body))
}

struct IdleTimeoutBody<B> {
    inner: B,
    idle: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// Whether a read is waiting (the clock is running).
    waiting: bool,
    flag: BodyTimedOut,
}

impl<B> http_body::Body for IdleTimeoutBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.flag.0.load(Ordering::Relaxed) {
            return Poll::Ready(Some(Err(BodyIdleTimeout.into())));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                Poll::Ready(frame.map(|result| result.map_err(Into::into)))
            }
            Poll::Pending => {
                if !this.waiting {
                    this.waiting = true;
                    let deadline = tokio::time::Instant::now() + this.idle;
                    this.sleep.as_mut().reset(deadline);
                }
                match this.sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.flag.0.store(true, Ordering::Relaxed);
                        Poll::Ready(Some(Err(BodyIdleTimeout.into())))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Open `/v1/live` streams per token (by the token's hash), so one token
/// cannot hold every connection with streams.
#[derive(Default)]
pub struct LiveStreams {
    open: Mutex<HashMap<[u8; 32], usize>>,
}

impl LiveStreams {
    /// Takes a place for a stream of `token`, or refuses with 429 when the
    /// token already holds `max` streams. The place is freed when the
    /// returned guard drops (the stream ends or its client goes away).
    pub fn open(self: &Arc<Self>, token: [u8; 32], max: usize) -> Result<LiveStreamGuard, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(token).or_default();
        if *count >= max {
            return Err(ApiError::new(
                Code::TooManyStreams,
                format!("this token already holds {max} live streams, the most allowed; close one first"),
            ));
        }
        *count += 1;
        Ok(LiveStreamGuard { streams: Arc::clone(self), token })
    }
}

/// One open live stream's place; frees it on drop.
pub struct LiveStreamGuard {
    streams: Arc<LiveStreams>,
    token: [u8; 32],
}

impl Drop for LiveStreamGuard {
    fn drop(&mut self) {
        let mut open = self.streams.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.token) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.token);
            }
        }
    }
}
