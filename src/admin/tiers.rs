//! `/admin/tiers`: the rate-limit tiers keys belong to. Changes apply to the
//! next request of every key in the tier.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

use super::{double_option, Actor, AdminJson, Path};
use crate::app::AppState;
use crate::error::{ApiError, RequestError};
use crate::limits::Tier;
use crate::store::now;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/tiers", get(list).post(create))
        .route(
            "/admin/tiers/{name}",
            get(get_one).patch(update).delete(delete),
        )
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TierList {
    pub data: Vec<Tier>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTier {
    #[serde(default)]
    pub requests_per_min: Option<u32>,
    #[serde(default)]
    pub tokens_per_min: Option<u32>,
    /// A number, or `null` for no limit.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>)]
    pub max_concurrent_streams: Option<Option<u32>>,
    /// A number, or `null` for no budget.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub daily_token_budget: Option<Option<u64>>,
}

fn validate(t: &Tier) -> Result<(), ApiError> {
    let ok = !t.name.is_empty()
        && t.name.len() <= 32
        && t.name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !ok {
        return Err(ApiError::invalid(
            "'name' must be 1-32 lowercase letters, digits, '-' or '_'.",
            Some("name"),
        ));
    }
    if t.requests_per_min == 0 {
        return Err(ApiError::invalid(
            "'requests_per_min' must be at least 1.",
            Some("requests_per_min"),
        ));
    }
    if t.tokens_per_min == 0 {
        return Err(ApiError::invalid(
            "'tokens_per_min' must be at least 1.",
            Some("tokens_per_min"),
        ));
    }
    if t.max_concurrent_streams == Some(0) {
        return Err(ApiError::invalid(
            "'max_concurrent_streams' must be at least 1, or null.",
            Some("max_concurrent_streams"),
        ));
    }
    Ok(())
}

fn find(state: &AppState, name: &str) -> Result<Tier, ApiError> {
    state
        .limits
        .tier(name)
        .ok_or_else(|| ApiError::not_found(format!("No tier named {name:?}.")))
}

/// Writes the tier and its audit entry, then reloads the in-memory table.
/// A delete checks for keys using the tier in the same transaction, so no
/// key can be created in the tier between the check and the delete.
async fn save(
    state: &AppState,
    entry: crate::store::audit::NewAudit,
    change: Change,
) -> Result<(), ApiError> {
    let t = now();
    let name = match &change {
        Change::Put(tier) => tier.name.clone(),
        Change::Delete(name) => name.clone(),
    };
    let outcome = state
        .store
        .write(move |tx| {
            match &change {
                Change::Put(tier) => crate::store::tiers::upsert(tx, tier, t)?,
                Change::Delete(name) => {
                    let users = crate::store::tiers::keys_using(tx, name)?;
                    if !users.is_empty() {
                        return Ok(Err(users));
                    }
                    crate::store::tiers::delete(tx, name)?;
                }
            }
            crate::store::audit::append(tx, entry, t)?;
            Ok(Ok(crate::store::tiers::all(tx)?))
        })
        .await?;
    match outcome {
        Ok(tiers) => {
            state.limits.set_tiers(tiers);
            Ok(())
        }
        Err(users) => {
            let shown: Vec<&str> = users.iter().take(10).map(String::as_str).collect();
            let more = if users.len() > 10 {
                format!(" and {} more", users.len() - 10)
            } else {
                String::new()
            };
            Err(RequestError::Conflict(format!(
                "Tier {name:?} is used by {} key(s): {}{more}. Move them to another tier first.",
                users.len(),
                shown.join(", ")
            ))
            .into())
        }
    }
}

enum Change {
    Put(Tier),
    Delete(String),
}

#[utoipa::path(operation_id = "tiers_list", get, path = "/admin/tiers", tag = "tiers", responses((status = 200, body = TierList)))]
pub async fn list(State(state): State<AppState>) -> Json<TierList> {
    Json(TierList {
        data: state.limits.tiers(),
    })
}

#[utoipa::path(operation_id = "tiers_get_one", get, path = "/admin/tiers/{name}", tag = "tiers",
    responses((status = 200, body = Tier), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Tier>, ApiError> {
    Ok(Json(find(&state, &name)?))
}

#[utoipa::path(operation_id = "tiers_create", post, path = "/admin/tiers", request_body = Tier, tag = "tiers",
    responses((status = 201, body = Tier), (status = 400, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    AdminJson(tier): AdminJson<Tier>,
) -> Result<(StatusCode, Json<Tier>), ApiError> {
    validate(&tier)?;
    if state.limits.tier(&tier.name).is_some() {
        return Err(RequestError::Conflict(format!(
            "A tier named {:?} exists already.",
            tier.name
        ))
        .into());
    }
    let entry = actor.audit(
        "tier.create",
        &tier.name,
        None,
        serde_json::to_value(&tier).ok(),
    );
    save(&state, entry, Change::Put(tier.clone())).await?;
    Ok((StatusCode::CREATED, Json(tier)))
}

#[utoipa::path(operation_id = "tiers_update", patch, path = "/admin/tiers/{name}", request_body = UpdateTier, tag = "tiers",
    responses((status = 200, body = Tier), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    AdminJson(req): AdminJson<UpdateTier>,
) -> Result<Json<Tier>, ApiError> {
    let old = find(&state, &name)?;
    let mut next = old.clone();
    if let Some(v) = req.requests_per_min {
        next.requests_per_min = v;
    }
    if let Some(v) = req.tokens_per_min {
        next.tokens_per_min = v;
    }
    if let Some(v) = req.max_concurrent_streams {
        next.max_concurrent_streams = v;
    }
    if let Some(v) = req.daily_token_budget {
        next.daily_token_budget = v;
    }
    validate(&next)?;
    let entry = actor.audit(
        "tier.update",
        &name,
        serde_json::to_value(&old).ok(),
        serde_json::to_value(&next).ok(),
    );
    save(&state, entry, Change::Put(next.clone())).await?;
    Ok(Json(next))
}

/// Refused while any key (revoked ones included) names the tier.
#[utoipa::path(operation_id = "tiers_delete", delete, path = "/admin/tiers/{name}", tag = "tiers",
    responses((status = 204), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let old = find(&state, &name)?;
    let entry = actor.audit("tier.delete", &name, serde_json::to_value(&old).ok(), None);
    save(&state, entry, Change::Delete(name)).await?;
    Ok(StatusCode::NO_CONTENT)
}
