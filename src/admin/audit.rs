//! `/admin/audit`: the audit log, newest first, filtered by action, actor
//! or target, and its chain verification.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::AdminQuery;
use crate::app::AppState;
use crate::error::ApiError;
use crate::store::audit::AuditEntry;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/audit", get(list))
        .route("/admin/audit/verify", get(verify))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// At most this many entries (default 100, at most 1000).
    pub limit: Option<u32>,
    /// Only entries older than this sequence number.
    pub before: Option<i64>,
    /// An action (`key.create`) or a family of actions (`key`).
    pub action: Option<String>,
    /// `admin-token`, `dashboard`, `gateway`…
    pub actor: Option<String>,
    /// A key's or upstream's id, a tier's name, `settings`…
    pub target: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub data: Vec<AuditEntry>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Verification {
    pub ok: bool,
    pub entries: u64,
    /// Where the chain breaks, when it does.
    pub error: Option<String>,
}

#[utoipa::path(operation_id = "audit_list", get, path = "/admin/audit", tag = "audit", params(Page), responses((status = 200, body = AuditPage)))]
pub async fn list(
    State(state): State<AppState>,
    AdminQuery(p): AdminQuery<Page>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    let some = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let filter = crate::store::audit::Filter {
        action: some(p.action),
        actor: some(p.actor),
        target: some(p.target),
    };
    let data = state
        .store
        .read(move |c| crate::store::audit::list(c, limit, p.before, &filter))
        .await?;
    Ok(Json(AuditPage { data }))
}

#[utoipa::path(operation_id = "audit_verify", get, path = "/admin/audit/verify", tag = "audit", responses((status = 200, body = Verification)))]
pub async fn verify(State(state): State<AppState>) -> Result<Json<Verification>, ApiError> {
    let result = state.store.read(crate::store::audit::verify).await?;
    Ok(Json(match result {
        Ok(entries) => Verification {
            ok: true,
            entries,
            error: None,
        },
        Err(e) => Verification {
            ok: false,
            entries: 0,
            error: Some(e),
        },
    }))
}
