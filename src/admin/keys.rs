//! `/admin/keys`: create (the only time a secret is shown), list, get,
//! update, revoke. Every change is written to the store with its audit entry
//! in one transaction, then applied to the registry before the call returns.

use std::sync::atomic::AtomicI64;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

use super::{double_option, Actor, AdminJson};
use crate::app::AppState;
use crate::error::ApiError;
use crate::keys::{generate_secret, new_id, ApiKey, Environment, KeyView};
use crate::store::now;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/keys", get(list).post(create))
        .route(
            "/admin/keys/{id}",
            get(get_key).patch(update).delete(revoke),
        )
        .route("/admin/keys/{id}/revoke", post(revoke))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    pub name: String,
    /// `dev`, `staging` or `prod`; defaults to `dev`.
    #[serde(default)]
    pub environment: Option<Environment>,
    /// Defaults to `free`.
    #[serde(default)]
    pub tier: Option<String>,
    /// Models the key may use; empty or absent means all.
    #[serde(default)]
    pub models: Vec<String>,
    /// Lifetime from now, e.g. `30d`.
    #[serde(default)]
    pub expires_in: Option<String>,
    /// Absolute expiry (RFC 3339); exclusive with `expires_in`.
    #[serde(default)]
    pub expires_at: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub environment: Option<Environment>,
    #[serde(default)]
    pub tier: Option<String>,
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// RFC 3339 timestamp, or `null` for no expiry.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Option<String>>,
}

/// A newly created key: its view plus the secret, shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub view: KeyView,
    /// The secret. It is not stored and cannot be shown again.
    pub key: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyList {
    pub data: Vec<KeyView>,
}

fn check_name(name: &str) -> Result<String, ApiError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 100 || n.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "'name' must be 1-100 printable characters.",
            Some("name"),
        ));
    }
    Ok(n.to_owned())
}

fn check_tier(tier: &str) -> Result<String, ApiError> {
    let ok = !tier.is_empty()
        && tier.len() <= 32
        && tier
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(tier.to_owned())
    } else {
        Err(ApiError::invalid(
            "'tier' must be 1-32 lowercase letters, digits, '-' or '_'.",
            Some("tier"),
        ))
    }
}

fn check_models(models: Vec<String>) -> Result<Vec<String>, ApiError> {
    if models.iter().any(|m| m.trim().is_empty()) {
        return Err(ApiError::invalid(
            "'models' must not contain empty names.",
            Some("models"),
        ));
    }
    Ok(models)
}

fn expiry(
    expires_in: Option<&str>,
    expires_at: Option<&str>,
    now: i64,
) -> Result<Option<i64>, ApiError> {
    match (expires_in, expires_at) {
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "Give 'expires_in' or 'expires_at', not both.",
            Some("expires_in"),
        )),
        (Some(d), None) => {
            let d = crate::timefmt::parse_duration(d)
                .map_err(|e| ApiError::invalid(e, Some("expires_in")))?;
            Ok(Some(now + d.as_secs() as i64))
        }
        (None, Some(t)) => crate::timefmt::parse_rfc3339(t)
            .map(Some)
            .map_err(|e| ApiError::invalid(e, Some("expires_at"))),
        (None, None) => Ok(None),
    }
}

fn snapshot(k: &ApiKey) -> serde_json::Value {
    serde_json::to_value(k.view(now())).unwrap_or_default()
}

#[utoipa::path(post, path = "/admin/keys", request_body = CreateKey, tag = "keys",
    responses((status = 201, body = CreatedKey), (status = 400, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    AdminJson(req): AdminJson<CreateKey>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let t = now();
    let secret = generate_secret();
    let key = ApiKey {
        id: new_id("key"),
        name: check_name(&req.name)?,
        hash: secret.hash,
        prefix: secret.prefix,
        environment: req.environment.unwrap_or(Environment::Dev),
        tier: check_tier(req.tier.as_deref().unwrap_or("free"))?,
        models: check_models(req.models)?,
        created_at: t,
        expires_at: expiry(req.expires_in.as_deref(), req.expires_at.as_deref(), t)?,
        revoked_at: None,
        last_used_at: AtomicI64::new(0),
        last_used_flushed: AtomicI64::new(0),
    };
    let view = key.view(t);
    let entry = actor.audit("key.create", &key.id, None, Some(snapshot(&key)));
    let key = state
        .store
        .write(move |tx| {
            crate::store::keys::insert(tx, &key)?;
            crate::store::audit::append(tx, entry, t)?;
            Ok(key)
        })
        .await?;
    state.keys.put(key);
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            view,
            key: secret.secret,
        }),
    ))
}

#[utoipa::path(get, path = "/admin/keys", tag = "keys", responses((status = 200, body = KeyList)))]
pub async fn list(State(state): State<AppState>) -> Json<KeyList> {
    let t = now();
    let mut keys = state.keys.all();
    keys.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    Json(KeyList {
        data: keys.iter().map(|k| k.view(t)).collect(),
    })
}

fn find(state: &AppState, id: &str) -> Result<std::sync::Arc<ApiKey>, ApiError> {
    state
        .keys
        .find_by_id(id)
        .ok_or_else(|| ApiError::not_found(format!("No key with id {id:?}.")))
}

#[utoipa::path(get, path = "/admin/keys/{id}", tag = "keys",
    responses((status = 200, body = KeyView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<KeyView>, ApiError> {
    Ok(Json(find(&state, &id)?.view(now())))
}

/// Builds the successor record and persists it with its audit entry.
async fn replace(
    state: &AppState,
    actor: &Actor,
    action: &str,
    old: &ApiKey,
    edit: impl FnOnce(&mut ApiKey),
) -> Result<KeyView, ApiError> {
    let t = now();
    let mut next = ApiKey {
        id: old.id.clone(),
        name: old.name.clone(),
        hash: old.hash,
        prefix: old.prefix.clone(),
        environment: old.environment,
        tier: old.tier.clone(),
        models: old.models.clone(),
        created_at: old.created_at,
        expires_at: old.expires_at,
        revoked_at: old.revoked_at,
        last_used_at: AtomicI64::new(old.last_used().unwrap_or(0)),
        last_used_flushed: AtomicI64::new(0),
    };
    edit(&mut next);
    let entry = actor.audit(action, &old.id, Some(snapshot(old)), Some(snapshot(&next)));
    let next = state
        .store
        .write(move |tx| {
            crate::store::keys::update(tx, &next)?;
            crate::store::audit::append(tx, entry, t)?;
            Ok(next)
        })
        .await?;
    let view = next.view(t);
    state.keys.put(next);
    Ok(view)
}

#[utoipa::path(patch, path = "/admin/keys/{id}", request_body = UpdateKey, tag = "keys",
    responses((status = 200, body = KeyView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    AdminJson(req): AdminJson<UpdateKey>,
) -> Result<Json<KeyView>, ApiError> {
    let old = find(&state, &id)?;
    let name = req.name.as_deref().map(check_name).transpose()?;
    let tier = req.tier.as_deref().map(check_tier).transpose()?;
    let models = req.models.map(check_models).transpose()?;
    let expires_at = match req.expires_at {
        None => None,
        Some(None) => Some(None),
        Some(Some(t)) => Some(Some(
            crate::timefmt::parse_rfc3339(&t)
                .map_err(|e| ApiError::invalid(e, Some("expires_at")))?,
        )),
    };
    let view = replace(&state, &actor, "key.update", &old, |k| {
        if let Some(n) = name {
            k.name = n;
        }
        if let Some(e) = req.environment {
            k.environment = e;
        }
        if let Some(t) = tier {
            k.tier = t;
        }
        if let Some(m) = models {
            k.models = m;
        }
        if let Some(e) = expires_at {
            k.expires_at = e;
        }
    })
    .await?;
    Ok(Json(view))
}

#[utoipa::path(post, path = "/admin/keys/{id}/revoke", tag = "keys",
    responses((status = 200, body = KeyView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Json<KeyView>, ApiError> {
    let old = find(&state, &id)?;
    if old.revoked_at.is_some() {
        return Ok(Json(old.view(now())));
    }
    let t = now();
    let view = replace(&state, &actor, "key.revoke", &old, |k| {
        k.revoked_at = Some(t)
    })
    .await?;
    Ok(Json(view))
}
