//! `GET /metrics` in Prometheus text format.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use sextant_core::scrape;

use super::HttpState;

pub async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        scrape::render(&state.registry),
    )
}
