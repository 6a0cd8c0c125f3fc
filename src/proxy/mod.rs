//! The OpenAI-compatible `/v1` API: read the body, route the model to the
//! echo model or an upstream, forward, relay.

pub mod body;
pub mod echo;
pub mod forward;
pub mod sse;
pub mod upstream;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use crate::app::AppState;
use crate::error::{ApiError, RequestError};
use crate::keys::auth::AuthedKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completions,
    Embeddings,
}

impl Endpoint {
    /// Path relative to an upstream's base URL (which ends in `/v1`).
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/chat/completions",
            Endpoint::Completions => "/completions",
            Endpoint::Embeddings => "/embeddings",
        }
    }
}

/// Every handler takes [`AuthedKey`] first: no `/v1` route runs unauthenticated.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{*model}", get(get_model))
}

async fn chat(
    k: AuthedKey,
    State(s): State<AppState>,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    handle(s, k, Endpoint::Chat, req).await
}

async fn completions(
    k: AuthedKey,
    State(s): State<AppState>,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    handle(s, k, Endpoint::Completions, req).await
}

async fn embeddings(
    k: AuthedKey,
    State(s): State<AppState>,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    handle(s, k, Endpoint::Embeddings, req).await
}

async fn handle(
    state: AppState,
    AuthedKey(key): AuthedKey,
    endpoint: Endpoint,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let settings = state.settings();
    let (parts, body) = req.into_parts();
    let bytes = body::read_json(&parts.headers, body, settings.limits.max_body_bytes).await?;
    let head = body::parse_head(&bytes)?;
    if !key.may_use(&head.model) {
        return Err(RequestError::ModelNotFound(head.model).into());
    }
    let stream = head.stream && endpoint != Endpoint::Embeddings;
    if head.model == echo::MODEL && settings.echo_model {
        return echo::respond(endpoint, &bytes, &state.tokenizer);
    }
    let upstream = state
        .upstreams
        .route(&head.model)
        .ok_or(RequestError::ModelNotFound(head.model))?;
    let t = &settings.upstream_defaults;
    let budget = forward::Budget {
        first_byte: t.first_byte_timeout,
        total: t.total_timeout,
        stream_idle: t.stream_idle_timeout,
        max_response_bytes: usize::try_from(settings.limits.max_response_bytes)
            .unwrap_or(usize::MAX),
    };
    let mut resp = forward::send(
        &state.client,
        &upstream,
        endpoint.path(),
        bytes,
        stream,
        budget,
    )
    .await?;
    if let Ok(v) = HeaderValue::from_str(&upstream.name) {
        resp.headers_mut().insert(forward::UPSTREAM_HEADER, v);
    }
    Ok(resp)
}

#[derive(Serialize)]
struct ModelList {
    object: &'static str,
    data: Vec<ModelObject>,
}

#[derive(Serialize)]
struct ModelObject {
    id: String,
    object: &'static str,
    created: i64,
    owned_by: String,
}

/// The models this key may use, in OpenAI's list format.
fn visible_models(state: &AppState, key: &crate::keys::ApiKey) -> Vec<ModelObject> {
    let mut out = Vec::new();
    if state.settings().echo_model && key.may_use(echo::MODEL) {
        out.push(ModelObject {
            id: echo::MODEL.to_owned(),
            object: "model",
            created: 0,
            owned_by: "assisters".to_owned(),
        });
    }
    for (model, upstream) in state.upstreams.models() {
        if model != echo::MODEL && key.may_use(&model) {
            out.push(ModelObject {
                id: model,
                object: "model",
                created: 0,
                owned_by: upstream.name.clone(),
            });
        }
    }
    out
}

async fn list_models(AuthedKey(key): AuthedKey, State(s): State<AppState>) -> Json<ModelList> {
    Json(ModelList {
        object: "list",
        data: visible_models(&s, &key),
    })
}

async fn get_model(
    AuthedKey(key): AuthedKey,
    State(s): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<ModelObject>, ApiError> {
    visible_models(&s, &key)
        .into_iter()
        .find(|m| m.id == model)
        .map(Json)
        .ok_or_else(|| RequestError::ModelNotFound(model).into())
}
