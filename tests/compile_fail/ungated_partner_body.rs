//! A handler cannot return a partner body the gate did not release: the body
//! can be built only in `disclose/`, and it is a response only as `Gated<T>`.
use axum::response::IntoResponse;
use axum::Json;
use proviso::disclose::partners::{SecurityFeedPage, SecurityRecordView};

async fn forged_feed() -> Json<SecurityFeedPage> {
    Json(SecurityFeedPage { records: Vec::<SecurityRecordView>::new(), next: None })
}

fn pass_through(page: SecurityFeedPage) -> impl IntoResponse {
    page
}

fn main() {}
