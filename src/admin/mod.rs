//! The admin API (JSON over HTTP on the admin listener): authentication,
//! cross-site refusal, auditing helpers, and the router.
//!
//! Layer order, outermost first: `CatchPanicLayer`; `guard` (refuses
//! cross-site requests, then requires the admin bearer token on `/admin/*`
//! except the OpenAPI document); routes; OpenAI-shaped fallbacks.

mod audit;
mod crypto;
mod events;
mod health;
mod incidents;
mod keys;
mod logs;
mod openapi;
mod safety;
pub mod session;
mod settings;
mod status;
mod tiers;
mod tls;
mod token;
mod ui;
mod upstreams;
pub mod usage;

use std::net::SocketAddr;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;

use crate::app::AppState;
use crate::error::{ApiError, AuthError, InternalError};
use crate::store::audit::NewAudit;

pub use openapi::ApiDoc;
pub use token::AdminAuth;

/// Who made an admin call, for the audit log.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub source: String,
}

impl Actor {
    pub fn audit(
        &self,
        action: &str,
        target: &str,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> NewAudit {
        NewAudit {
            actor: self.name.clone(),
            source: self.source.clone(),
            action: action.to_owned(),
            target: target.to_owned(),
            before,
            after,
        }
    }
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(keys::routes())
        .merge(tiers::routes())
        .merge(logs::routes())
        .merge(upstreams::routes())
        .merge(settings::routes())
        .merge(health::routes())
        .merge(audit::routes())
        .merge(usage::routes())
        .merge(events::routes())
        .merge(crypto::routes())
        .merge(session::routes())
        .merge(tls::routes())
        .merge(token::routes())
        .merge(safety::routes())
        .merge(status::routes())
        .merge(incidents::routes());
    Router::new()
        .merge(api)
        .route("/admin/openapi.json", get(openapi::document))
        .route("/", get(ui::index))
        .route("/{*path}", get(ui::asset))
        .fallback(crate::error::route_not_found)
        .method_not_allowed_fallback(crate::error::method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(CatchPanicLayer::new())
        .with_state(state)
}

async fn guard(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if !same_site(&state, req.headers()) {
        return Err(AuthError::CrossSite.into());
    }
    // The desktop webview's pages come from the app's own origin and call
    // this listener cross-origin with the admin token: answer its
    // preflights and let it read the answers. No other origin gets here.
    let webview = req
        .headers()
        .get(header::ORIGIN)
        .filter(|o| WEBVIEW_ORIGINS.iter().any(|w| o.as_bytes() == w.as_bytes()))
        .cloned();
    if let Some(origin) = &webview {
        if req.method() == axum::http::Method::OPTIONS {
            return Ok(webview_preflight(origin));
        }
    }
    let path = req.uri().path();
    if (path.starts_with("/admin/") && path != "/admin/openapi.json") || path == "/metrics" {
        let name = authorize(&state, req.headers()).ok_or(AuthError::Admin)?;
        let source = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string());
        req.extensions_mut().insert(Actor {
            name: name.to_owned(),
            source,
        });
    }
    let mut resp = if changes_state(req.method(), req.uri().path()) {
        // Changes run one at a time. Each reads what it edits, commits, then
        // publishes to memory; interleaved, one could write back a stale copy
        // over another (a rename racing a revocation revived the key). And
        // each runs to its end in its own task: dropped with a client that
        // left between its commit and its publish, a change was durable but
        // not live (a revoked key kept working until a restart).
        // The body is read first, bounded in size and time: a client that
        // stalls mid-body held the lock, and every other change (a
        // revocation too) waited on it for good.
        let (parts, body) = req.into_parts();
        let bytes = match tokio::time::timeout(
            ADMIN_BODY_WITHIN,
            axum::body::to_bytes(body, ADMIN_BODY_MAX),
        )
        .await
        {
            Err(_) => {
                return Err(crate::error::EdgeError::RequestTimeout {
                    part: "body",
                    after: ADMIN_BODY_WITHIN,
                }
                .into())
            }
            Ok(Err(_)) => {
                return Err(crate::error::RequestError::TooLarge {
                    limit: ADMIN_BODY_MAX as u64,
                }
                .into())
            }
            Ok(Ok(b)) => b,
        };
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        let state = state.clone();
        tokio::spawn(async move {
            let _change = state.admin_changes.lock().await;
            next.run(req).await
        })
        .await
        .map_err(|e| InternalError::Other(format!("admin change task failed: {e}")))?
    } else {
        next.run(req).await
    };
    if let Some(origin) = webview {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    Ok(resp)
}

/// An admin change's body: axum's default limit for JSON, and time enough
/// for any honest client.
const ADMIN_BODY_MAX: usize = 2 << 20;
const ADMIN_BODY_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether a call may change something. Testing an upstream and a safety
/// dry run are POSTs that change nothing and may wait seconds on the
/// network, so they do not queue behind, or hold up, the changes.
fn changes_state(method: &axum::http::Method, path: &str) -> bool {
    let upstream_test = path
        .strip_prefix("/admin/upstreams/")
        .and_then(|rest| rest.strip_suffix("/test"))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'));
    let read =
        method == axum::http::Method::POST && (upstream_test || path == "/admin/safety/scan");
    !method.is_safe() && !read
}

/// The desktop app's webview origins (Tauri on Linux/macOS and on Windows).
const WEBVIEW_ORIGINS: [&str; 2] = ["tauri://localhost", "http://tauri.localhost"];

fn webview_preflight(origin: &HeaderValue) -> Response {
    let mut resp = Response::new(axum::body::Body::empty());
    *resp.status_mut() = axum::http::StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PATCH, DELETE, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    resp
}

/// Who the caller is: the admin token (CLI, desktop webview) or a dashboard
/// session cookie.
fn authorize(state: &AppState, headers: &HeaderMap) -> Option<&'static str> {
    if headers.contains_key(header::AUTHORIZATION) {
        let token = crate::keys::auth::bearer(headers).ok()?;
        return state.admin.check(token).then_some("admin-token");
    }
    let token = session::cookie_token(headers)?;
    state.sessions.check(token).then_some("dashboard")
}

/// Browsers name the page that sent a request in `Origin`; only the admin
/// listener's own origin and the desktop webview's may call the admin API.
fn same_site(state: &AppState, headers: &HeaderMap) -> bool {
    // The desktop webview: WebKit marks its calls `Sec-Fetch-Site:
    // cross-site` (tauri://localhost is another site than 127.0.0.1), and no
    // web page can claim that Origin.
    if headers
        .get(header::ORIGIN)
        .is_some_and(|o| WEBVIEW_ORIGINS.iter().any(|w| o.as_bytes() == w.as_bytes()))
    {
        return true;
    }
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let Some(listen) = state.bound().map(|b| b.admin_listen) else {
        return false;
    };
    let p = listen.port();
    if origin == format!("http://127.0.0.1:{p}")
        || origin == format!("http://localhost:{p}")
        || origin == format!("http://[::1]:{p}")
    {
        return true;
    }
    // Reachable from other machines (`admin_allow_remote`): the dashboard's
    // own origin is the address it was opened at, which the browser also
    // sends as `Host`. (A rebound DNS name passes this too, but its page
    // gets neither the session cookie nor the token.)
    !listen.ip().is_loopback()
        && headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|host| origin.strip_prefix("http://") == Some(host))
}

/// `Json<T>` whose rejections answer in OpenAI's error shape.
pub struct AdminJson<T>(pub T);

impl<T, S> FromRequest<S> for AdminJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(AdminJson(v)),
            Err(rej) => Err(ApiError::invalid(rej.body_text(), None)),
        }
    }
}

/// `Query<T>` whose rejections answer in OpenAI's error shape.
pub struct AdminQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for AdminQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(AdminQuery(v)),
            Err(rej) => Err(ApiError::invalid(rej.body_text(), None)),
        }
    }
}

/// axum's `Path<T>` whose rejections (an id that is not UTF-8, say) answer
/// in OpenAI's error shape rather than plain text. Named `Path` because the
/// OpenAPI generator documents path parameters by that name.
pub struct Path<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Path<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(rej) => Err(ApiError::invalid(rej.body_text(), None)),
        }
    }
}

/// For PATCH bodies: distinguishes an absent field (`None`) from an explicit
/// `null` (`Some(None)`).
pub fn double_option<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn only_real_reads_skip_the_change_lock() {
        assert!(!changes_state(&Method::POST, "/admin/upstreams/ups_1/test"));
        assert!(!changes_state(&Method::POST, "/admin/safety/scan"));
        assert!(!changes_state(&Method::GET, "/admin/keys"));
        // A tier or upstream may be named "test".
        assert!(changes_state(&Method::PATCH, "/admin/tiers/test"));
        assert!(changes_state(&Method::DELETE, "/admin/upstreams/test"));
        assert!(changes_state(&Method::PATCH, "/admin/upstreams/test/test"));
        assert!(changes_state(&Method::POST, "/admin/keys"));
    }
}
