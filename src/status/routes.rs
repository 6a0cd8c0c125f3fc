//! `/status` and `/status/summary.json` on the gateway listener, served from
//! the in-memory view (no key, no store read) when the page is public.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/status", get(html))
        .route("/status/", get(html))
        .route("/status/summary.json", get(json))
        // Where Statuspage's own clients look for it.
        .route("/status/api/v2/summary.json", get(json))
}

fn hidden() -> Response {
    crate::error::ApiError::not_found("The status page is not public.").into_response()
}

async fn html(State(state): State<AppState>) -> Response {
    let settings = state.settings();
    if !settings.status.public {
        return hidden();
    }
    let body = super::page::render(
        &settings.status.name,
        &state.status.view(),
        crate::store::now(),
    );
    let mut resp = Html(body).into_response();
    let h = resp.headers_mut();
    // Inline styles only: the page needs no script and may run none.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

async fn json(State(state): State<AppState>) -> Response {
    if !state.settings().status.public {
        return hidden();
    }
    let mut resp = (
        StatusCode::OK,
        Json(super::summary::summary(&state, &state.status.view())),
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Status widgets on other sites read this cross-origin.
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}
