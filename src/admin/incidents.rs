//! `/admin/incidents` and `/admin/maintenances`: open, change and resolve
//! incidents (adding to their timeline), schedule, start and complete
//! maintenance. Each change is stored with its audit entry in one
//! transaction; subscribers are notified after.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

use super::{Actor, AdminJson, Path};
use crate::app::AppState;
use crate::error::ApiError;
use crate::status::incidents::Change;
use crate::status::maintenance::{MaintenanceChange, NewMaintenance};
use crate::status::model::{Impact, Incident, IncidentStatus, Maintenance};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/incidents", get(list).post(create))
        .route("/admin/incidents/{id}", get(get_one).patch(update))
        .route("/admin/incidents/{id}/updates", post(add_update))
        .route("/admin/maintenances", get(list_maintenances).post(schedule))
        .route(
            "/admin/maintenances/{id}",
            axum::routing::patch(update_maintenance),
        )
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Filter {
    /// Only unresolved incidents.
    pub open: Option<bool>,
    /// At most this many (default 50, at most 500).
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IncidentList {
    pub data: Vec<Incident>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIncident {
    pub name: String,
    /// `none`, `minor`, `major` or `critical`; defaults to `minor`.
    #[serde(default)]
    pub impact: Option<Impact>,
    /// Component ids affected (see `GET /admin/status`).
    #[serde(default)]
    pub components: Vec<String>,
    /// The first update's text.
    pub body: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUpdate {
    pub status: IncidentStatus,
    pub body: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MaintenanceList {
    pub data: Vec<Maintenance>,
}

fn missing() -> ApiError {
    ApiError::not_found("No such incident.")
}

#[utoipa::path(operation_id = "incidents_list", get, path = "/admin/incidents", tag = "incidents", params(Filter), responses((status = 200, body = IncidentList)))]
pub async fn list(
    State(state): State<AppState>,
    q: Result<Query<Filter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<IncidentList>, ApiError> {
    let Query(f) = q.map_err(|e| ApiError::invalid(e.body_text(), None))?;
    let limit = f.limit.unwrap_or(50).clamp(1, 500);
    let mut data = state
        .store
        .read(move |c| crate::store::incidents::recent(c, 0, limit))
        .await?;
    if f.open == Some(true) {
        data.retain(|i| i.status != IncidentStatus::Resolved);
    }
    // `recent` returns every open incident besides `limit` resolved ones.
    data.truncate(limit as usize);
    Ok(Json(IncidentList { data }))
}

#[utoipa::path(operation_id = "incidents_create", post, path = "/admin/incidents", tag = "incidents", request_body = NewIncident,
    responses((status = 201, body = Incident), (status = 400, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    AdminJson(req): AdminJson<NewIncident>,
) -> Result<(StatusCode, Json<Incident>), ApiError> {
    if req.body.trim().is_empty() {
        return Err(ApiError::invalid("body must not be empty", Some("body")));
    }
    let i = crate::status::incidents::open(
        &state,
        req.name,
        req.impact.unwrap_or(Impact::Minor),
        req.components,
        req.body,
        None,
        Some(actor),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(i)))
}

#[utoipa::path(operation_id = "incidents_get_one", get, path = "/admin/incidents/{id}", tag = "incidents",
    responses((status = 200, body = Incident), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Incident>, ApiError> {
    state
        .store
        .read(move |c| crate::store::incidents::get(c, &id))
        .await?
        .map(Json)
        .ok_or_else(missing)
}

/// Changes name, impact or components; with `status` and/or `body` it also
/// adds an update to the timeline (`resolved` resolves it).
#[utoipa::path(operation_id = "incidents_update", patch, path = "/admin/incidents/{id}", tag = "incidents", request_body = Change,
    responses((status = 200, body = Incident), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    AdminJson(req): AdminJson<Change>,
) -> Result<Json<Incident>, ApiError> {
    crate::status::incidents::change(&state, &id, req, Some(actor))
        .await?
        .map(Json)
        .ok_or_else(missing)
}

#[utoipa::path(operation_id = "incidents_add_update", post, path = "/admin/incidents/{id}/updates", tag = "incidents", request_body = NewUpdate,
    responses((status = 201, body = Incident), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn add_update(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    AdminJson(req): AdminJson<NewUpdate>,
) -> Result<(StatusCode, Json<Incident>), ApiError> {
    let change = Change {
        status: Some(req.status),
        body: Some(req.body),
        ..Change::default()
    };
    let i = crate::status::incidents::change(&state, &id, change, Some(actor))
        .await?
        .ok_or_else(missing)?;
    Ok((StatusCode::CREATED, Json(i)))
}

#[utoipa::path(operation_id = "incidents_list_maintenances", get, path = "/admin/maintenances", tag = "incidents", responses((status = 200, body = MaintenanceList)))]
pub async fn list_maintenances(
    State(state): State<AppState>,
) -> Result<Json<MaintenanceList>, ApiError> {
    let data = state
        .store
        .read(|c| crate::store::maintenances::recent(c, 0))
        .await?;
    Ok(Json(MaintenanceList { data }))
}

#[utoipa::path(operation_id = "incidents_schedule", post, path = "/admin/maintenances", tag = "incidents", request_body = NewMaintenance,
    responses((status = 201, body = Maintenance), (status = 400, body = crate::error::ErrorBody)))]
pub async fn schedule(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    AdminJson(req): AdminJson<NewMaintenance>,
) -> Result<(StatusCode, Json<Maintenance>), ApiError> {
    let m = crate::status::maintenance::schedule(&state, req, actor).await?;
    Ok((StatusCode::CREATED, Json(m)))
}

#[utoipa::path(operation_id = "incidents_update_maintenance", patch, path = "/admin/maintenances/{id}", tag = "incidents", request_body = MaintenanceChange,
    responses((status = 200, body = Maintenance), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn update_maintenance(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    AdminJson(req): AdminJson<MaintenanceChange>,
) -> Result<Json<Maintenance>, ApiError> {
    crate::status::maintenance::change(&state, &id, req, actor)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("No such maintenance."))
}
