//! `/admin/events`: the live event stream (server-sent events) and
//! `/metrics`, the Prometheus exposition.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;

use super::AdminQuery;
use crate::app::AppState;
use crate::error::ApiError;
use crate::telemetry::events::HISTORY_SECS;

/// How often an open event stream's credential is checked again.
const RECHECK: Duration = Duration::from_secs(1);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/events", get(events))
        .route("/metrics", get(metrics))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Seconds of past `tick` events to send first (default 300, at most 3600).
    pub history: Option<u32>,
}

/// `event: request` per finished `/v1` request (`id, at, key_id, model,
/// status, error_code, latency_ms, prompt_tokens, completion_tokens,
/// unreported_tokens, stream, safety`), `event: tick` once a second
/// (`at, requests, errors, tokens, p50_ms, p95_ms`; `tokens` counts
/// reported usage). A consumer that falls behind by the channel's capacity
/// gets `event: lagged` and is disconnected; reconnect.
#[utoipa::path(get, path = "/admin/events", operation_id = "events_stream", tag = "events", params(EventsQuery),
    responses((status = 200, content_type = "text/event-stream", body = String)))]
pub async fn events(
    State(state): State<AppState>,
    AdminQuery(q): AdminQuery<EventsQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let history = q.history.unwrap_or(300).min(HISTORY_SECS as u32);
    let since = crate::store::now() - i64::from(history);
    // Subscribe before reading the history, so no tick falls in between.
    let live = state
        .telemetry
        .live
        .stream()
        .map(|e| Ok(Event::default().event(e.name).data(&*e.data)));
    let past: Vec<Result<Event, Infallible>> = state
        .telemetry
        .live
        .history_since(since)
        .into_iter()
        .filter_map(|t| serde_json::to_string(&t).ok())
        .map(|d| Ok(Event::default().event("tick").data(d)))
        .collect();
    // The stream lasts as long as what opened it: a rotated token or an
    // ended session had kept receiving every request's details.
    let st = state.clone();
    let revoked = async move {
        while super::authorize(&st, &headers).is_some() {
            tokio::time::sleep(RECHECK).await;
        }
    };
    let end =
        futures_util::future::select(Box::pin(state.telemetry.live.closed()), Box::pin(revoked));
    let stream = stream::iter(past).chain(live).take_until(end);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Prometheus text exposition (OpenMetrics). Needs the admin token like the
/// rest of the admin API (Prometheus: `authorization: credentials_file`).
#[utoipa::path(get, path = "/metrics", operation_id = "metrics_show", tag = "events",
    responses((status = 200, content_type = "application/openmetrics-text", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.telemetry.metrics.render(&state),
    )
}
