//! `/admin/keys`: create (the only time a secret is shown), list, get,
//! update, rotate, revoke. Every change is written to the store with its
//! audit entry in one transaction, then applied to the registry before the
//! call returns.

use std::sync::atomic::AtomicI64;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

use super::{double_option, Actor, AdminJson, Path};
use crate::access::origin::{parse_pattern, Pattern};
use crate::app::AppState;
use crate::error::ApiError;
use crate::keys::{generate_secret, new_id, ApiKey, Environment, KeyView};
use crate::limits::Overrides;
use crate::store::now;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/keys", get(list).post(create))
        .route(
            "/admin/keys/{id}",
            get(get_key).patch(update).delete(delete),
        )
        .route("/admin/keys/{id}/revoke", post(revoke))
        .route("/admin/keys/{id}/rotate", post(rotate))
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
    /// Hosts (`example.com`) or subdomain wildcards (`*.example.com`) whose
    /// pages may use the key; empty means any origin.
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// CIDRs or addresses the key may be used from; empty means any.
    #[serde(default)]
    pub allowed_ips: Vec<String>,
    /// Replacements for the tier's limits.
    #[serde(default)]
    pub overrides: Overrides,
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
    #[serde(default)]
    pub allowed_domains: Option<Vec<String>>,
    #[serde(default)]
    pub allowed_ips: Option<Vec<String>>,
    /// Replaces all overrides; `{}` removes them.
    #[serde(default)]
    pub overrides: Option<Overrides>,
    /// Lifetime from now, e.g. `30d`.
    #[serde(default)]
    pub expires_in: Option<String>,
    /// RFC 3339 timestamp, or `null` for no expiry.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Option<String>>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// How long the old key keeps working, e.g. `24h` (default) or `0s`.
    #[serde(default)]
    pub grace: Option<String>,
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
pub struct Rotated {
    /// The successor, with its secret (shown this once).
    pub new: CreatedKey,
    /// The old key, now expiring at the end of the grace period.
    pub old: KeyView,
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

fn check_tier(state: &AppState, tier: &str) -> Result<String, ApiError> {
    if state.limits.tier(tier).is_none() {
        let names: Vec<String> = state.limits.tiers().into_iter().map(|t| t.name).collect();
        return Err(ApiError::invalid(
            format!(
                "No tier named {tier:?}; the tiers are: {}.",
                names.join(", ")
            ),
            Some("tier"),
        ));
    }
    Ok(tier.to_owned())
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

fn check_domains(list: &[String]) -> Result<Vec<Pattern>, ApiError> {
    list.iter()
        .map(|d| parse_pattern(d).map_err(|e| ApiError::invalid(e, Some("allowed_domains"))))
        .collect()
}

fn check_ips(list: &[String]) -> Result<Vec<ipnet::IpNet>, ApiError> {
    list.iter()
        .map(|d| {
            crate::access::parse_cidr(d).map_err(|e| ApiError::invalid(e, Some("allowed_ips")))
        })
        .collect()
}

fn check_overrides(o: Overrides) -> Result<Overrides, ApiError> {
    o.validate()
        .map_err(|e| ApiError::invalid(e, Some("overrides")))?;
    Ok(o)
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

/// A new key record with a fresh secret, settings from `template`.
fn fresh(template: &ApiKey, t: i64) -> (ApiKey, String) {
    let secret = generate_secret();
    let mut key = template.duplicate();
    key.id = new_id("key");
    key.hash = secret.hash;
    key.prefix = secret.prefix;
    key.created_at = t;
    key.revoked_at = None;
    key.replaced_by = None;
    key.last_used_at = AtomicI64::new(0);
    (key, secret.secret)
}

#[utoipa::path(operation_id = "keys_create", post, path = "/admin/keys", request_body = CreateKey, tag = "keys",
    responses((status = 201, body = CreatedKey), (status = 400, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    AdminJson(req): AdminJson<CreateKey>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let t = now();
    let template = ApiKey {
        id: String::new(),
        name: check_name(&req.name)?,
        hash: [0; 32],
        prefix: String::new(),
        environment: req.environment.unwrap_or(Environment::Dev),
        tier: check_tier(
            &state,
            req.tier.as_deref().unwrap_or(crate::limits::DEFAULT_TIER),
        )?,
        models: check_models(req.models)?,
        allowed_domains: check_domains(&req.allowed_domains)?,
        allowed_ips: check_ips(&req.allowed_ips)?,
        overrides: check_overrides(req.overrides)?,
        replaced_by: None,
        created_at: t,
        expires_at: expiry(req.expires_in.as_deref(), req.expires_at.as_deref(), t)?,
        revoked_at: None,
        last_used_at: AtomicI64::new(0),
        last_used_flushed: AtomicI64::new(0),
    };
    let (key, secret) = fresh(&template, t);
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
    if key.overrides.safety.is_some() {
        state.warm_safety();
    }
    state.keys.put(key);
    Ok((StatusCode::CREATED, Json(CreatedKey { view, key: secret })))
}

#[utoipa::path(operation_id = "keys_list", get, path = "/admin/keys", tag = "keys", responses((status = 200, body = KeyList)))]
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

fn find(state: &AppState, id: &str) -> Result<Arc<ApiKey>, ApiError> {
    state
        .keys
        .find_by_id(id)
        .ok_or_else(|| ApiError::not_found(format!("No key with id {id:?}.")))
}

#[utoipa::path(operation_id = "keys_get_key", get, path = "/admin/keys/{id}", tag = "keys",
    responses((status = 200, body = KeyView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<KeyView>, ApiError> {
    Ok(Json(find(&state, &id)?.view(now())))
}

/// Persists `old` edited by `edit`, with its audit entry; returns the new view.
async fn replace(
    state: &AppState,
    actor: &Actor,
    action: &str,
    old: &ApiKey,
    edit: impl FnOnce(&mut ApiKey),
) -> Result<KeyView, ApiError> {
    let t = now();
    let mut next = old.duplicate();
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

#[utoipa::path(operation_id = "keys_update", patch, path = "/admin/keys/{id}", request_body = UpdateKey, tag = "keys",
    responses((status = 200, body = KeyView), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    AdminJson(req): AdminJson<UpdateKey>,
) -> Result<Json<KeyView>, ApiError> {
    let old = find(&state, &id)?;
    let t = now();
    let name = req.name.as_deref().map(check_name).transpose()?;
    let tier = req
        .tier
        .as_deref()
        .map(|n| check_tier(&state, n))
        .transpose()?;
    let models = req.models.map(check_models).transpose()?;
    let domains = req
        .allowed_domains
        .as_deref()
        .map(check_domains)
        .transpose()?;
    let ips = req.allowed_ips.as_deref().map(check_ips).transpose()?;
    let overrides = req.overrides.map(check_overrides).transpose()?;
    let expires_at = match (req.expires_in.as_deref(), req.expires_at) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "Give 'expires_in' or 'expires_at', not both.",
                Some("expires_in"),
            ))
        }
        (Some(d), None) => Some(expiry(Some(d), None, t)?),
        (None, Some(None)) => Some(None),
        (None, Some(Some(at))) => Some(expiry(None, Some(&at), t)?),
        (None, None) => None,
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
        if let Some(d) = domains {
            k.allowed_domains = d;
        }
        if let Some(i) = ips {
            k.allowed_ips = i;
        }
        if let Some(o) = overrides {
            if o.safety.is_some() {
                state.warm_safety();
            }
            k.overrides = o;
        }
        if let Some(e) = expires_at {
            k.expires_at = e;
        }
    })
    .await?;
    Ok(Json(view))
}

/// `DELETE /admin/keys/{id}`: the same as `POST /admin/keys/{id}/revoke`
/// (a key is revoked, never erased: its records and audit entries name it).
#[utoipa::path(operation_id = "keys_delete", delete, path = "/admin/keys/{id}", tag = "keys",
    responses((status = 200, body = KeyView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn delete(
    state: State<AppState>,
    actor: Extension<Actor>,
    id: Path<String>,
) -> Result<Json<KeyView>, ApiError> {
    revoke(state, actor, id).await
}

#[utoipa::path(operation_id = "keys_revoke", post, path = "/admin/keys/{id}/revoke", tag = "keys",
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

/// Issues a successor with the same settings; the old key keeps working
/// until the grace period ends (its expiry moves no later than that).
#[utoipa::path(operation_id = "keys_rotate", post, path = "/admin/keys/{id}/rotate", request_body = RotateKey, tag = "keys",
    responses((status = 201, body = Rotated), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn rotate(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Rotated>), ApiError> {
    let old = find(&state, &id)?;
    let t = now();
    if old.status(t) != crate::keys::KeyStatus::Active {
        return Err(ApiError::invalid(
            "Only an active key can be rotated.",
            None,
        ));
    }
    // The body is optional: no body means the default grace.
    let req: RotateKey = if body.iter().all(u8::is_ascii_whitespace) {
        RotateKey::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("Invalid body: {e}"), None))?
    };
    let grace = crate::timefmt::parse_duration(req.grace.as_deref().unwrap_or("24h"))
        .map_err(|e| ApiError::invalid(e, Some("grace")))?;
    let grace_end = t + grace.as_secs() as i64;
    let (successor, secret) = fresh(&old, t);
    let mut retired = old.duplicate();
    retired.expires_at = Some(old.expires_at.map_or(grace_end, |e| e.min(grace_end)));
    retired.replaced_by = Some(successor.id.clone());
    let entries = (
        actor.audit(
            "key.create",
            &successor.id,
            None,
            Some(snapshot(&successor)),
        ),
        actor.audit(
            "key.rotate",
            &old.id,
            Some(snapshot(&old)),
            Some(snapshot(&retired)),
        ),
    );
    let (successor, retired) = state
        .store
        .write(move |tx| {
            crate::store::keys::insert(tx, &successor)?;
            crate::store::keys::update(tx, &retired)?;
            crate::store::audit::append(tx, entries.0, t)?;
            crate::store::audit::append(tx, entries.1, t)?;
            Ok((successor, retired))
        })
        .await?;
    let new_view = successor.view(t);
    let old_view = retired.view(t);
    state.limits.inherit(&successor.id, &retired.id);
    state.keys.put(successor);
    state.keys.put(retired);
    Ok((
        StatusCode::CREATED,
        Json(Rotated {
            new: CreatedKey {
                view: new_view,
                key: secret,
            },
            old: old_view,
        }),
    ))
}
