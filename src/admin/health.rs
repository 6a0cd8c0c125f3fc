//! `/admin/health`: whether the gateway API is serving, for the dashboard's
//! indicator (cheap enough to poll; the settings view is not).

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin/health", get(show))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HealthView {
    /// The gateway API listener accepts requests (false while the desktop
    /// app has it paused, or before it started).
    pub serving: bool,
    /// Where it listens, e.g. `127.0.0.1:8787`.
    pub listen: Option<String>,
    pub version: &'static str,
}

#[utoipa::path(operation_id = "health_show", get, path = "/admin/health", tag = "settings",
    responses((status = 200, body = HealthView)))]
pub async fn show(State(state): State<AppState>) -> Json<HealthView> {
    Json(HealthView {
        serving: state.api_serving.load(Ordering::Relaxed),
        listen: state.bound().map(|b| b.listen.to_string()),
        version: env!("CARGO_PKG_VERSION"),
    })
}
