//! The admin token: created at first start in `admin-token` (mode 0600, the
//! CLI's and the desktop shell's proof of being the administrator), kept
//! only as a hash in memory, and replaced by `POST /admin/token/rotate`.

use std::path::{Path, PathBuf};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Extension, Json, Router};
use parking_lot::{Mutex, RwLock};
use rand::distributions::{Alphanumeric, DistString};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::Actor;
use crate::app::AppState;
use crate::error::{ApiError, InternalError};

const TOKEN_FILE: &str = "admin-token";

pub struct AdminAuth {
    path: PathBuf,
    token_hash: RwLock<[u8; 32]>,
    /// One rotation at a time, so the file and the hash always name the
    /// same token.
    rotating: Mutex<()>,
}

fn new_token() -> String {
    format!(
        "adm_{}",
        Alphanumeric.sample_string(&mut rand::rngs::OsRng, 43)
    )
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl AdminAuth {
    pub fn load_or_create(dir: &Path) -> std::io::Result<AdminAuth> {
        let path = dir.join(TOKEN_FILE);
        if !path.exists() {
            crate::fsutil::write_private(&path, new_token().as_bytes())?;
        }
        let token = std::fs::read_to_string(&path)?;
        Ok(AdminAuth {
            token_hash: RwLock::new(digest(token.trim())),
            path,
            rotating: Mutex::new(()),
        })
    }

    pub fn check(&self, presented: &str) -> bool {
        digest(presented) == *self.token_hash.read()
    }

    /// Writes a fresh token to the file, then makes it the only one
    /// accepted. A failed write changes nothing (the file is replaced by a
    /// rename).
    pub fn rotate(&self) -> std::io::Result<String> {
        let _one = self.rotating.lock();
        let token = new_token();
        crate::fsutil::write_private(&self.path, token.as_bytes())?;
        *self.token_hash.write() = digest(&token);
        Ok(token)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin/token/rotate", post(rotate))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RotatedToken {
    /// The new admin token: shown only now, and written to `file`.
    pub token: String,
    /// The token file the CLI and the desktop app read.
    pub file: String,
    /// Dashboard sessions signed out (all but the caller's), and sign-in
    /// links that stopped working.
    pub sessions_ended: usize,
}

/// Replaces the admin token at once: the old one is refused from the next
/// call. Every dashboard session except the caller's ends, as do unused
/// sign-in links, since they may have been obtained with the old token.
#[utoipa::path(operation_id = "token_rotate", post, path = "/admin/token/rotate", tag = "session",
    responses((status = 200, body = RotatedToken), (status = 500, body = crate::error::ErrorBody)))]
pub async fn rotate(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    headers: HeaderMap,
) -> Result<Json<RotatedToken>, ApiError> {
    let st = state.clone();
    let token = tokio::task::spawn_blocking(move || st.admin.rotate())
        .await
        .map_err(|e| InternalError::Other(e.to_string()))?
        .map_err(|e| InternalError::Other(format!("writing the admin token: {e}")))?;
    let keep = (actor.name == "dashboard")
        .then(|| super::session::cookie_token(&headers))
        .flatten();
    let sessions_ended = state.sessions.end_all_but(keep);
    // After the swap: the rotation has happened even if this write fails,
    // and the file holds the token the server accepts.
    let entry = actor.audit(
        "admin_token.rotate",
        "admin-token",
        None,
        Some(serde_json::json!({"sessions_ended": sessions_ended})),
    );
    let t = crate::store::now();
    state
        .store
        .write(move |tx| crate::store::audit::append(tx, entry, t).map(|_| ()))
        .await?;
    Ok(Json(RotatedToken {
        token,
        file: state.admin.path().display().to_string(),
        sessions_ended,
    }))
}
