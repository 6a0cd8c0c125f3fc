//! `/admin/upstreams`: add, list, update, delete, test connection. API keys
//! are sealed under the master key before they reach the store and are
//! never returned; views say only whether one is set.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

use super::{double_option, Actor, AdminJson, Path};
use crate::app::AppState;
use crate::error::{ApiError, RequestError};
use crate::proxy::upstream::{parse_base_url, validate_name, Source, Upstream};
use crate::store::now;
use crate::store::upstreams::UpstreamRow;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/upstreams", get(list).post(create))
        .route(
            "/admin/upstreams/{id}",
            get(get_one).patch(update).delete(delete),
        )
        .route("/admin/upstreams/{id}/test", post(test))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUpstream {
    pub name: String,
    /// e.g. `http://127.0.0.1:11434/v1`
    pub base_url: String,
    #[serde(default)]
    pub api_key: Option<String>,
    /// Models served; empty means discover them from `GET {base_url}/models`.
    #[serde(default)]
    pub models: Vec<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUpstream {
    #[serde(default)]
    pub base_url: Option<String>,
    /// A new key, or `null` to remove it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub api_key: Option<Option<String>>,
    #[serde(default)]
    pub models: Option<Vec<String>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UpstreamView {
    pub id: String,
    pub name: String,
    pub base_url: String,
    pub has_api_key: bool,
    /// Declared models (empty when discovered).
    pub models: Vec<String>,
    /// What the upstream serves now: declared or discovered.
    pub served_models: Vec<String>,
    pub source: Source,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UpstreamList {
    pub data: Vec<UpstreamView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TestResult {
    pub ok: bool,
    pub latency_ms: u64,
    pub models: Vec<String>,
    pub error: Option<String>,
}

fn view(u: &Upstream) -> UpstreamView {
    UpstreamView {
        id: u.id.clone(),
        name: u.name.clone(),
        base_url: u.base_url.clone(),
        has_api_key: u.has_api_key(),
        models: u.models.clone(),
        served_models: u.served_models(),
        source: u.source,
    }
}

/// The audit summary: never the key, only whether there is one.
fn summary(row: &UpstreamRow) -> serde_json::Value {
    serde_json::json!({
        "name": row.name, "base_url": row.base_url,
        "has_api_key": row.api_key_enc.is_some(), "models": row.models,
    })
}

fn find(state: &AppState, id: &str) -> Result<Arc<Upstream>, ApiError> {
    state
        .upstreams
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("No upstream {id:?}.")))
}

fn editable(u: &Upstream) -> Result<(), ApiError> {
    if u.source == Source::Config {
        return Err(RequestError::Conflict(format!(
            "Upstream {:?} is declared in the config file; change it there.",
            u.name
        ))
        .into());
    }
    Ok(())
}

/// Applies a stored change to the live table and looks for models in the background.
async fn apply(state: &AppState) -> Result<(), ApiError> {
    state
        .reload_upstreams()
        .map_err(|e| crate::error::InternalError::Other(e.to_string()))?;
    let s = state.clone();
    tokio::spawn(async move { s.discover_models().await });
    Ok(())
}

#[utoipa::path(operation_id = "upstreams_create", post, path = "/admin/upstreams", request_body = CreateUpstream, tag = "upstreams",
    responses((status = 201, body = UpstreamView), (status = 400, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    AdminJson(req): AdminJson<CreateUpstream>,
) -> Result<(StatusCode, Json<UpstreamView>), ApiError> {
    validate_name(&req.name).map_err(|e| ApiError::invalid(e, Some("name")))?;
    let base_url =
        parse_base_url(&req.base_url).map_err(|e| ApiError::invalid(e, Some("base_url")))?;
    if state.upstreams.get(&req.name).is_some() {
        return Err(RequestError::Conflict(format!(
            "An upstream named {:?} exists already.",
            req.name
        ))
        .into());
    }
    let id = crate::keys::new_id("ups");
    // Built once to check the key fits in a header before anything is stored.
    Upstream::new(
        id.clone(),
        req.name.clone(),
        &base_url,
        req.api_key.as_deref(),
        vec![],
        Source::Admin,
    )
    .map_err(|e| ApiError::invalid(e, Some("api_key")))?;
    let api_key_enc = match req.api_key.as_deref() {
        Some(k) => Some(state.keyring.seal(k.as_bytes(), id.as_bytes())?),
        None => None,
    };
    let t = now();
    let row = UpstreamRow {
        id: id.clone(),
        name: req.name,
        base_url,
        api_key_enc,
        models: crate::proxy::upstream::distinct(req.models),
        created_at: t,
        updated_at: t,
    };
    let entry = actor.audit("upstream.create", &id, None, Some(summary(&row)));
    state
        .store
        .write(move |tx| {
            crate::store::upstreams::upsert(tx, &row)?;
            crate::store::audit::append(tx, entry, t)?;
            Ok(())
        })
        .await?;
    apply(&state).await?;
    Ok((StatusCode::CREATED, Json(view(&*find(&state, &id)?))))
}

#[utoipa::path(operation_id = "upstreams_list", get, path = "/admin/upstreams", tag = "upstreams", responses((status = 200, body = UpstreamList)))]
pub async fn list(State(state): State<AppState>) -> Json<UpstreamList> {
    Json(UpstreamList {
        data: state.upstreams.list().iter().map(|u| view(u)).collect(),
    })
}

#[utoipa::path(operation_id = "upstreams_get_one", get, path = "/admin/upstreams/{id}", tag = "upstreams",
    responses((status = 200, body = UpstreamView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<UpstreamView>, ApiError> {
    Ok(Json(view(&*find(&state, &id)?)))
}

async fn stored(state: &AppState, id: &str) -> Result<UpstreamRow, ApiError> {
    let id = id.to_owned();
    state
        .store
        .read(move |c| crate::store::upstreams::find(c, &id))
        .await?
        .ok_or_else(|| ApiError::not_found("No such upstream."))
}

#[utoipa::path(operation_id = "upstreams_update", patch, path = "/admin/upstreams/{id}", request_body = UpdateUpstream, tag = "upstreams",
    responses((status = 200, body = UpstreamView), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    AdminJson(req): AdminJson<UpdateUpstream>,
) -> Result<Json<UpstreamView>, ApiError> {
    editable(&*find(&state, &id)?)?;
    let old = stored(&state, &id).await?;
    let mut row = old.clone();
    if let Some(b) = req.base_url {
        row.base_url = parse_base_url(&b).map_err(|e| ApiError::invalid(e, Some("base_url")))?;
    }
    // The stored key would go with every request (and the next health
    // probe) to whatever server the new URL names: moving it to another
    // server takes the key again, or its removal.
    if row.api_key_enc.is_some()
        && req.api_key.is_none()
        && origin(&row.base_url) != origin(&old.base_url)
    {
        return Err(ApiError::invalid(
            "The base URL now names another server: give its api_key again (or null to \
             store none), so the stored key is not sent to a server it was not meant for.",
            Some("api_key"),
        ));
    }
    if let Some(k) = req.api_key {
        row.api_key_enc = match k {
            Some(k) => {
                Upstream::new(
                    row.id.clone(),
                    row.name.clone(),
                    &row.base_url,
                    Some(&k),
                    vec![],
                    Source::Admin,
                )
                .map_err(|e| ApiError::invalid(e, Some("api_key")))?;
                Some(state.keyring.seal(k.as_bytes(), row.id.as_bytes())?)
            }
            None => None,
        };
    }
    if let Some(m) = req.models {
        row.models = crate::proxy::upstream::distinct(m);
    }
    let t = now();
    row.updated_at = t;
    let entry = actor.audit(
        "upstream.update",
        &row.id,
        Some(summary(&old)),
        Some(summary(&row)),
    );
    let row_id = row.id.clone();
    state
        .store
        .write(move |tx| {
            crate::store::upstreams::upsert(tx, &row)?;
            crate::store::audit::append(tx, entry, t)?;
            Ok(())
        })
        .await?;
    apply(&state).await?;
    Ok(Json(view(&*find(&state, &row_id)?)))
}

#[utoipa::path(operation_id = "upstreams_delete", delete, path = "/admin/upstreams/{id}", tag = "upstreams",
    responses((status = 204), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    editable(&*find(&state, &id)?)?;
    let old = stored(&state, &id).await?;
    let entry = actor.audit("upstream.delete", &old.id, Some(summary(&old)), None);
    let t = now();
    let row_id = old.id.clone();
    state
        .store
        .write(move |tx| {
            crate::store::upstreams::delete(tx, &row_id)?;
            crate::store::audit::append(tx, entry, t)?;
            Ok(())
        })
        .await?;
    apply(&state).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(operation_id = "upstreams_test", post, path = "/admin/upstreams/{id}/test", tag = "upstreams",
    responses((status = 200, body = TestResult), (status = 404, body = crate::error::ErrorBody)))]
pub async fn test(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TestResult>, ApiError> {
    let u = find(&state, &id)?;
    let started = Instant::now();
    let timeout = state
        .settings()
        .upstream_defaults
        .first_byte_timeout
        .min(std::time::Duration::from_secs(15));
    let result = u.discover(&state.client, timeout).await;
    let latency_ms = started.elapsed().as_millis() as u64;
    Ok(Json(match result {
        Ok(models) => TestResult {
            ok: true,
            latency_ms,
            models,
            error: None,
        },
        Err(e) => TestResult {
            ok: false,
            latency_ms,
            models: vec![],
            error: Some(e),
        },
    }))
}

/// `scheme://host:port` of a base URL (the server it names).
fn origin(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    url[after..].find('/').map_or(url, |j| &url[..after + j])
}
