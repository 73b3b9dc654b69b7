//! The pages: static HTML, CSS and JS embedded in the binary at build time.
//!
//! Owns: serving `/` (dashboard), `/privacy` (privacy center), `/review`
//! (abuse review queue) and `/assets/*` (including uPlot 1.6.31, vendored
//! with its MIT license under `assets/vendor/`).
//! Never: reads state itself: each page asks the API with the token its
//! user holds (analyst, subject-service, reviewer), like any other client.

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
/// The pages' Content-Security-Policy (uPlot sets inline styles).
const CSP: &str =
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'";

/// Every asset under `/assets/`: name, body, content type.
const ASSETS: &[(&str, &str, &str)] = &[
    ("common.js", include_str!("assets/common.js"), JS),
    ("app.js", include_str!("assets/app.js"), JS),
    ("privacy.js", include_str!("assets/privacy.js"), JS),
    ("review.js", include_str!("assets/review.js"), JS),
    ("app.css", include_str!("assets/app.css"), CSS),
    ("uPlot.iife.min.js", include_str!("assets/vendor/uPlot.iife.min.js"), JS),
    ("uPlot.min.css", include_str!("assets/vendor/uPlot.min.css"), CSS),
    ("uPlot.LICENSE", include_str!("assets/vendor/uPlot.LICENSE"), "text/plain; charset=utf-8"),
];

/// Headers every page carries: revalidate on every load (so pages and
/// assets change with the binary), never send the page address (which may
/// carry a `#token=` fragment only the browser sees) to anyone, load
/// nothing from another host, and never be framed by another site.
fn page(body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, HTML),
            (CACHE_CONTROL, "no-cache"),
            (axum::http::header::REFERRER_POLICY, "no-referrer"),
            (axum::http::header::CONTENT_SECURITY_POLICY, CSP),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the dashboard.
pub async fn index() -> Response {
    page(include_str!("assets/index.html"))
}

/// `GET /privacy`: the privacy center.
pub async fn privacy() -> Response {
    page(include_str!("assets/privacy.html"))
}

/// `GET /review`: the abuse review queue.
pub async fn review() -> Response {
    page(include_str!("assets/review.html"))
}

/// `GET /assets/{name}`: one embedded asset, or 404.
pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(asset, _, _)| *asset == name) {
        Some((_, body, content_type)) => {
            ([(CONTENT_TYPE, *content_type), (CACHE_CONTROL, "no-cache")], *body).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
