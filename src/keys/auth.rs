//! The `/v1` authentication layer: one valid, active `ask_` bearer key per
//! request, looked up by its SHA-256.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use super::{hash_secret, well_formed, ApiKey, KeyStatus};
use crate::app::AppState;
use crate::error::{ApiError, AuthError};

/// The authenticated key. Every `/v1` handler takes it as its first
/// argument, so no handler can run without it. (An extractor rather than a
/// middleware layer: the layer's boxing cost showed in the benchmark.)
#[derive(Clone)]
pub struct AuthedKey(pub Arc<ApiKey>);

impl FromRequestParts<AppState> for AuthedKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(AuthedKey(authenticate(state, &parts.headers)?))
    }
}

pub fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Arc<ApiKey>, AuthError> {
    let secret = bearer(headers)?;
    if !well_formed(secret) {
        return Err(AuthError::Malformed);
    }
    let key = state
        .keys
        .get(&hash_secret(secret))
        .ok_or(AuthError::Unknown)?;
    let now = crate::store::now();
    match key.status(now) {
        KeyStatus::Active => {}
        KeyStatus::Revoked => return Err(AuthError::Revoked),
        KeyStatus::Expired => return Err(AuthError::Expired),
    }
    key.last_used_at.fetch_max(now, Ordering::Relaxed);
    Ok(key)
}

/// The token of the single `Authorization: Bearer …` header. Two headers are
/// refused outright: proxies disagree on which one wins.
pub fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthError::Missing)?;
    if values.next().is_some() {
        return Err(AuthError::Malformed);
    }
    let value = value.to_str().map_err(|_| AuthError::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed);
    }
    Ok(token.trim())
}
