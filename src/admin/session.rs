//! Dashboard sign-in without putting the admin token in a URL: `serve` (or
//! `assisters login`) prints a one-time link whose short-lived code becomes
//! an HttpOnly, SameSite=Strict session cookie; the redirect that sets it
//! drops the code from the address bar.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use parking_lot::Mutex;
use rand::distributions::{Alphanumeric, DistString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Actor;
use crate::app::AppState;
use crate::error::ApiError;

pub const COOKIE: &str = "assisters_session";
const CODE_TTL: Duration = Duration::from_secs(10 * 60);
const SESSION_TTL: Duration = Duration::from_secs(12 * 60 * 60);

/// One-time login codes and live sessions, both kept as hashes.
#[derive(Default)]
pub struct Sessions {
    codes: Mutex<HashMap<[u8; 32], Instant>>,
    sessions: Mutex<HashMap<[u8; 32], Instant>>,
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

fn random(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        Alphanumeric.sample_string(&mut rand::rngs::OsRng, 43)
    )
}

impl Sessions {
    /// A fresh single-use code, valid for ten minutes.
    pub fn new_code(&self) -> String {
        let code = random("lc");
        let now = Instant::now();
        let mut codes = self.codes.lock();
        codes.retain(|_, exp| *exp > now);
        codes.insert(digest(&code), now + CODE_TTL);
        code
    }

    /// Spends a code; returns the new session token.
    fn redeem(&self, code: &str) -> Option<String> {
        let exp = self.codes.lock().remove(&digest(code))?;
        let now = Instant::now();
        if exp <= now {
            return None;
        }
        let token = random("ses");
        let mut sessions = self.sessions.lock();
        sessions.retain(|_, e| *e > now);
        sessions.insert(digest(&token), now + SESSION_TTL);
        Some(token)
    }

    pub fn check(&self, token: &str) -> bool {
        self.sessions
            .lock()
            .get(&digest(token))
            .is_some_and(|exp| *exp > Instant::now())
    }

    fn end(&self, token: &str) {
        self.sessions.lock().remove(&digest(token));
    }

    /// Ends every live session but `keep`'s and spends every code; returns
    /// how many of either were still usable.
    pub fn end_all_but(&self, keep: Option<&str>) -> usize {
        let now = Instant::now();
        let keep = keep.map(digest);
        let mut ended = 0;
        self.sessions.lock().retain(|h, exp| {
            let live = *exp > now;
            let kept = live && keep.as_ref() == Some(h);
            ended += usize::from(live && !kept);
            kept
        });
        self.codes.lock().retain(|_, exp| {
            ended += usize::from(*exp > now);
            false
        });
        ended
    }
}

/// The session token in the request's cookie, if any.
pub fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login))
        .route("/admin/login-links", post(new_link))
        .route("/admin/logout", post(logout))
}

/// The login URL for a fresh code on this admin listener.
pub fn login_url(state: &AppState) -> Option<String> {
    let mut at = state.bound()?.admin_listen;
    // Bound to every address: the link is for a browser on this machine.
    if at.ip().is_unspecified() {
        at.set_ip(if at.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    Some(format!(
        "http://{at}/login?code={}",
        state.sessions.new_code()
    ))
}

#[derive(Deserialize)]
struct LoginQuery {
    code: Option<String>,
}

async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    Query(q): Query<LoginQuery>,
) -> Response {
    let Some(token) = q.code.as_deref().and_then(|c| state.sessions.redeem(c)) else {
        return (
            StatusCode::UNAUTHORIZED,
            Html(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign-in link expired</title></head>\
                 <body><main><h1>This sign-in link is invalid or has expired</h1>\
                 <p>Links work once and for ten minutes. Run <code>assisters login</code> on the gateway's machine for a new one.</p></main></body></html>",
            ),
        )
            .into_response();
    };
    let actor = Actor {
        name: "dashboard".to_owned(),
        source: peer.ip().to_string(),
    };
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(200)
        .collect::<String>();
    let entry = actor.audit(
        "session.login",
        "dashboard",
        None,
        Some(serde_json::json!({"user_agent": agent})),
    );
    if let Err(e) = record(&state, entry).await {
        return e.into_response();
    }
    let cookie = format!(
        "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_TTL.as_secs()
    );
    let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginLink {
    /// Open it in a browser on this machine; it works once, for ten minutes.
    pub url: String,
}

#[utoipa::path(operation_id = "session_new_link", post, path = "/admin/login-links", tag = "session", responses((status = 200, body = LoginLink)))]
pub async fn new_link(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> Result<Json<LoginLink>, ApiError> {
    let url = login_url(&state)
        .ok_or_else(|| ApiError::invalid("The server is not listening yet.", None))?;
    record(&state, actor.audit("session.link", "dashboard", None, None)).await?;
    Ok(Json(LoginLink { url }))
}

/// A session event's audit entry, on its own (no other change goes with it).
async fn record(state: &AppState, entry: crate::store::audit::NewAudit) -> Result<(), ApiError> {
    let t = crate::store::now();
    state
        .store
        .write(move |tx| crate::store::audit::append(tx, entry, t).map(|_| ()))
        .await?;
    Ok(())
}

#[utoipa::path(operation_id = "session_logout", post, path = "/admin/logout", tag = "session", responses((status = 204)))]
pub async fn logout(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    headers: HeaderMap,
) -> Response {
    if let Some(t) = cookie_token(&headers) {
        state.sessions.end(t);
        let entry = actor.audit("session.logout", "dashboard", None, None);
        if let Err(e) = record(&state, entry).await {
            return e.into_response();
        }
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "assisters_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
        ),
    );
    resp
}
