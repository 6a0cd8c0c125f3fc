//! `/admin/crypto`: the master keyring's versions and what each seals, and
//! rotation: a new key for everything sealed from now on, upstream keys
//! re-sealed at once, request bodies re-sealed in the background.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Serialize;

use super::Actor;
use crate::app::AppState;
use crate::error::ApiError;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/crypto", get(show))
        .route("/admin/crypto/rotate", post(rotate))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CryptoView {
    /// The version new values are sealed under.
    pub current_version: u32,
    /// Every version the keyring holds (old ones stay to open old values).
    pub versions: Vec<u32>,
    /// Sealed request bodies per key version.
    pub records_by_version: BTreeMap<String, u64>,
    /// Bodies still sealed under an older version.
    pub reencrypt_pending: u64,
    /// A re-encryption pass is running.
    pub reencrypting: bool,
    /// Bodies the last pass could not open (tampered); left as they are.
    pub reencrypt_failed: u64,
    /// Where the master key is kept (never the key itself).
    pub storage: crate::crypto::KeyStorage,
}

async fn view(state: &AppState) -> Result<CryptoView, ApiError> {
    let counts = state
        .store
        .read(crate::store::logs::count_by_key_version)
        .await?;
    let current = state.keyring.current_version();
    Ok(CryptoView {
        current_version: current,
        versions: state.keyring.versions(),
        reencrypt_pending: counts
            .iter()
            .filter(|(v, _)| *v < current)
            .map(|(_, n)| n)
            .sum(),
        records_by_version: counts
            .into_iter()
            .map(|(v, n)| (v.to_string(), n))
            .collect(),
        reencrypting: state.reseal.running(),
        reencrypt_failed: state.reseal.failed.load(Ordering::Relaxed),
        storage: state.keyring.storage(),
    })
}

#[utoipa::path(get, path = "/admin/crypto", operation_id = "crypto_show", tag = "crypto",
    responses((status = 200, body = CryptoView)))]
pub async fn show(State(state): State<AppState>) -> Result<Json<CryptoView>, ApiError> {
    Ok(Json(view(&state).await?))
}

/// Adds a master key version. The key file keeps every version, so backups
/// of the data dir taken before the rotation still open.
#[utoipa::path(post, path = "/admin/crypto/rotate", operation_id = "crypto_rotate", tag = "crypto",
    responses((status = 200, body = CryptoView), (status = 409, body = crate::error::ErrorBody)))]
pub async fn rotate(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> Result<Json<CryptoView>, ApiError> {
    let old = state.keyring.current_version();
    // Everything to re-seal is opened before the key file changes: a value
    // that does not open fails the rotation before it has happened.
    let ups = state.store.read(crate::store::upstreams::all).await?;
    let upstream_keys = open_all(&state, ups.into_iter().map(|u| (u.id, u.api_key_enc)))?;
    let subs = state.store.read(crate::store::subscribers::all).await?;
    let hook_secrets = open_all(&state, subs.into_iter().map(|s| (s.id, s.secret_enc)))?;
    let new = state.keyring.rotate().map_err(|e| match e {
        crate::crypto::CryptoError::NotRotatable => {
            ApiError::from(crate::error::RequestError::Conflict(e.to_string()))
        }
        e => ApiError::from(e),
    })?;
    // Upstream API keys and webhook signing secrets are few: re-seal them in
    // the rotation's transaction, so the retired key opens nothing current.
    let resealed = seal_all(&state, upstream_keys)?;
    let secrets = seal_all(&state, hook_secrets)?;
    let entry = actor.audit(
        "crypto.rotate",
        "master_key",
        Some(serde_json::json!({ "version": old })),
        Some(serde_json::json!({
            "version": new,
            "upstream_keys_resealed": resealed.len(),
            "webhook_secrets_resealed": secrets.len(),
        })),
    );
    let t = crate::store::now();
    state
        .store
        .write(move |tx| {
            for (id, sealed) in &resealed {
                crate::store::upstreams::set_sealed_key(tx, id, sealed)?;
            }
            for (id, sealed) in &secrets {
                crate::store::subscribers::set_sealed_secret(tx, id, sealed)?;
            }
            crate::store::audit::append(tx, entry, t)?;
            Ok(())
        })
        .await?;
    state.reseal.start(&state);
    Ok(Json(view(&state).await?))
}

/// Each sealed value (bound to its id) opened; the ids without one skipped.
fn open_all(
    state: &AppState,
    sealed: impl Iterator<Item = (String, Option<Vec<u8>>)>,
) -> Result<Vec<(String, Vec<u8>)>, ApiError> {
    sealed
        .filter_map(|(id, s)| Some((id, s?)))
        .map(|(id, s)| {
            let plain = state.keyring.open(&s, id.as_bytes())?;
            Ok((id, plain))
        })
        .collect()
}

/// Each `(id, plaintext)` sealed under the current key version, bound to its id.
fn seal_all(
    state: &AppState,
    plain: Vec<(String, Vec<u8>)>,
) -> Result<Vec<(String, Vec<u8>)>, ApiError> {
    plain
        .into_iter()
        .map(|(id, p)| Ok((id.clone(), state.keyring.seal(&p, id.as_bytes())?)))
        .collect()
}
