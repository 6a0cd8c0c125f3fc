//! `/admin/tls`: the gateway listener's certificate (fingerprint, source,
//! protocol floor) and reloading it from its files without a restart.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Serialize;

use super::Actor;
use crate::app::AppState;
use crate::error::{ApiError, InternalError, RequestError};
use crate::tls::CertInfo;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/tls", get(show))
        .route("/admin/tls/reload", post(reload))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TlsView {
    /// Whether the gateway listener serves HTTPS.
    pub enabled: bool,
    pub certificate: Option<CertInfo>,
    /// TLS 1.2 accepted besides 1.3 (`[tls] allow_tls12`, or
    /// `ASSISTERS_TLS__ALLOW_TLS12`): read at start, so a change needs a restart.
    pub allow_tls12: bool,
    /// Extra CAs trusted for upstream calls, besides the Mozilla roots.
    pub upstream_ca_file: Option<String>,
}

fn view(state: &AppState) -> TlsView {
    TlsView {
        enabled: state.tls.is_some(),
        certificate: state.tls.as_ref().map(crate::tls::Tls::info),
        allow_tls12: state.config.tls.allow_tls12,
        upstream_ca_file: state
            .config
            .tls
            .upstream_ca_file
            .as_ref()
            .map(|p| p.display().to_string()),
    }
}

#[utoipa::path(operation_id = "tls_show", get, path = "/admin/tls", tag = "tls", responses((status = 200, body = TlsView)))]
pub async fn show(State(state): State<AppState>) -> Json<TlsView> {
    Json(view(&state))
}

/// Reads the certificate files again; a broken pair leaves the current
/// certificate in place and answers 400 with the reason.
#[utoipa::path(operation_id = "tls_reload", post, path = "/admin/tls/reload", tag = "tls",
    responses((status = 200, body = TlsView), (status = 400, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn reload(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> Result<Json<TlsView>, ApiError> {
    let Some(tls) = state.tls.as_ref() else {
        return Err(RequestError::Conflict("The gateway listener does not use TLS.".into()).into());
    };
    let before = tls.info();
    let after = tls.reload().map_err(|e| ApiError::invalid(e, None))?;
    crate::server::tls_reloaded(&state);
    let entry = actor.audit(
        "tls.reload",
        "tls",
        serde_json::to_value(&before).ok(),
        serde_json::to_value(&after).ok(),
    );
    let t = crate::store::now();
    state
        .store
        .write(move |tx| crate::store::audit::append(tx, entry, t).map(|_| ()))
        .await
        .map_err(InternalError::from)?;
    Ok(Json(view(&state)))
}
