//! `/admin/settings`: the settings in force (and where the server listens),
//! changed with a JSON merge patch that applies on the next request.

use axum::extract::State;
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Serialize;

use super::{Actor, AdminJson};
use crate::app::AppState;
use crate::error::ApiError;
use crate::server::Bound;
use crate::settings::Settings;

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin/settings", get(show).patch(update))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SettingsView {
    pub settings: Settings,
    pub listeners: Option<Bound>,
    pub data_dir: String,
    pub version: &'static str,
}

fn view(state: &AppState) -> SettingsView {
    SettingsView {
        settings: (*state.settings()).clone(),
        listeners: state.bound(),
        data_dir: state.data_dir.display().to_string(),
        version: env!("CARGO_PKG_VERSION"),
    }
}

#[utoipa::path(operation_id = "settings_show", get, path = "/admin/settings", tag = "settings", responses((status = 200, body = SettingsView)))]
pub async fn show(State(state): State<AppState>) -> Json<SettingsView> {
    Json(view(&state))
}

/// Body: a JSON merge patch of `settings`, e.g. `{"limits":{"max_body_bytes":1048576}}`.
#[utoipa::path(operation_id = "settings_update", patch, path = "/admin/settings", tag = "settings", request_body = Object,
    responses((status = 200, body = SettingsView), (status = 400, body = crate::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    AdminJson(patch): AdminJson<serde_json::Value>,
) -> Result<Json<SettingsView>, ApiError> {
    if !patch.is_object() {
        return Err(ApiError::invalid(
            "The body must be a JSON object (a merge patch of the settings).",
            None,
        ));
    }
    let old = state.settings();
    let next = old
        .patched(&patch)
        .map_err(|e| ApiError::invalid(e, None))?;
    let entry = actor.audit(
        "settings.update",
        "settings",
        serde_json::to_value(&*old).ok(),
        serde_json::to_value(&next).ok(),
    );
    // Only the sections this patch touches are stored (and from then on
    // override the config file); the rest keep following the file.
    let mut rows = next.rows();
    rows.retain(|(name, _)| patch.get(*name).is_some());
    let t = crate::store::now();
    state
        .store
        .write(move |tx| {
            for (name, value) in &rows {
                crate::store::settings::put(tx, name, value)?;
            }
            crate::store::audit::append(tx, entry, t)?;
            Ok(())
        })
        .await?;
    state.set_settings(next);
    Ok(Json(view(&state)))
}
