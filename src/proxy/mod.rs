//! The OpenAI-compatible `/v1` API: read the body, route the model to the
//! echo model or its upstreams (with failover), forward, relay.

pub mod body;
pub mod echo;
pub mod failover;
pub mod forward;
pub mod health;
pub mod relay;
pub mod sse;
pub mod upstream;

use axum::body::Body;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Response};
use axum::response::IntoResponse;
use axum::routing::{get, post};

use axum::{Json, Router};
use serde::Serialize;

use crate::access::origin;
use crate::app::AppState;
use crate::error::{ApiError, RequestError};
use crate::keys::auth::AuthedKey;
use crate::limits::{self, Admission, KeyLimiter};
use crate::logs;

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
        .route("/v1/chat/completions", post(chat).options(preflight))
        .route("/v1/completions", post(completions).options(preflight))
        .route("/v1/embeddings", post(embeddings).options(preflight))
        .route("/v1/models", get(list_models).options(preflight))
        .route("/v1/models/{*model}", get(get_model).options(preflight))
}

/// CORS preflight: browsers send it without the key, so it is answered
/// without one; the actual request is checked against the key's domains.
async fn preflight(headers: HeaderMap) -> Response<Body> {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = axum::http::StatusCode::NO_CONTENT;
    *resp.headers_mut() = origin::preflight(&headers);
    resp
}

async fn chat(k: AuthedKey, State(s): State<AppState>, req: Request) -> Response<Body> {
    handle(s, k, Endpoint::Chat, req).await
}

async fn completions(k: AuthedKey, State(s): State<AppState>, req: Request) -> Response<Body> {
    handle(s, k, Endpoint::Completions, req).await
}

async fn embeddings(k: AuthedKey, State(s): State<AppState>, req: Request) -> Response<Body> {
    handle(s, k, Endpoint::Embeddings, req).await
}

/// Counts the request against requests/min, serves it, and puts the
/// rate-limit and CORS headers on whatever the answer is.
async fn handle(
    state: AppState,
    auth: AuthedKey,
    endpoint: Endpoint,
    req: Request,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let mut draft = Some(auth.draft(&parts.headers));
    let request_id = draft
        .as_ref()
        .and_then(|d| HeaderValue::from_str(&d.record.id).ok());
    let limiter = state.limits.limiter(&auth.key);
    let mut error_code = None;
    let mut to_response = |e: ApiError| {
        error_code = e.body().error.code;
        e.into_response()
    };
    let (mut resp, admission) = match limiter.admit() {
        Err((e, adm)) => (to_response(e.into()), adm),
        Ok(mut adm) => match limiter.open_request() {
            Err(e) => (to_response(e.into()), adm),
            Ok(_slot) => {
                let call = Call {
                    state: &state,
                    auth: &auth,
                    limiter: &limiter,
                    endpoint,
                    headers: &parts.headers,
                };
                let r = serve(call, body, &mut adm, &mut draft).await;
                (r.unwrap_or_else(to_response), adm)
            }
        },
    };
    finish_headers(&mut resp, &admission, &auth, &parts.headers);
    if let Some(v) = request_id {
        resp.headers_mut().insert("x-request-id", v);
    }
    // A stream's record went with it to the relay, which writes it at the end.
    if let Some(d) = draft {
        let record = finish_log(d, &resp, error_code);
        state.logs.submit(record).await;
    }
    resp
}

/// The request's log record, from the answer it got.
fn finish_log(d: logs::Draft, resp: &Response<Body>, code: Option<&str>) -> logs::Record {
    let usage = resp
        .extensions()
        .get::<forward::Usage>()
        .map(|u| (u.prompt_tokens, u.completion_tokens));
    d.finish(resp.status().as_u16(), code, usage)
}

fn finish_headers(
    resp: &mut Response<Body>,
    adm: &Admission,
    auth: &AuthedKey,
    request_headers: &HeaderMap,
) {
    limits::apply_headers(resp.headers_mut(), adm);
    let unrestricted = auth.key.allowed_domains.is_empty();
    // A restricted key only got here with an allowed origin.
    origin::cors(
        resp.headers_mut(),
        request_headers,
        unrestricted,
        !unrestricted,
    );
}

/// One admitted request and what it is checked against.
struct Call<'a> {
    state: &'a AppState,
    auth: &'a AuthedKey,
    limiter: &'a Arc<KeyLimiter>,
    endpoint: Endpoint,
    headers: &'a HeaderMap,
}

async fn serve(
    call: Call<'_>,
    body: Body,
    adm: &mut Admission,
    draft: &mut Option<logs::Draft>,
) -> Result<Response<Body>, ApiError> {
    let Call {
        state,
        auth,
        limiter,
        endpoint,
        headers,
    } = call;
    let settings = state.settings();
    let bytes = body::read_json(
        headers,
        body,
        settings.limits.max_body_bytes,
        state.edge.config.body_idle_timeout,
    )
    .await?;
    let key = &auth.key;
    if let Some(d) = draft.as_mut() {
        if settings.logs.store_bodies && key.overrides.log_bodies != Some(false) {
            d.record.body = Some(if settings.logs.redact.any() {
                let text = String::from_utf8_lossy(&bytes);
                bytes::Bytes::from(state.redactor.apply(&settings.logs.redact, &text))
            } else {
                bytes.clone()
            });
        }
    }
    let mut req = body::parse(&bytes)?;
    if let Some(d) = draft.as_mut() {
        d.record.model = Some(req.model.clone());
        d.record.stream = req.stream && endpoint != Endpoint::Embeddings;
    }
    if !key.may_use(&req.model) {
        return Err(RequestError::ModelNotFound(req.model).into());
    }
    let stream = req.stream && endpoint != Endpoint::Embeddings;
    let is_echo = req.model == echo::MODEL && settings.echo_model;
    let candidates = if is_echo {
        None
    } else {
        Some(
            state
                .upstreams
                .candidates(&req.model)
                .ok_or_else(|| RequestError::ModelNotFound(req.model.clone()))?,
        )
    };

    let completion = match endpoint {
        Endpoint::Embeddings => 0,
        _ => {
            req.max_tokens
                .unwrap_or(u64::from(settings.limits.default_max_tokens))
                * req.n
        }
    };
    let reserve = req.prompt_tokens(endpoint, &state.tokenizer) + completion;
    let (reservation, tokens_left) = limiter.reserve(reserve, crate::store::now())?;
    adm.tokens_remaining = tokens_left;
    let slot = if stream {
        Some(limiter.open_stream()?)
    } else {
        None
    };
    let mut finish = forward::Finish {
        reservation: Some(reservation),
        slot,
        strip_usage: false,
        drain_timeout: settings.limits.usage_drain_timeout,
        log: None,
    };

    let Some(candidates) = candidates else {
        let doc = serde_json::Value::Object(std::mem::take(&mut req.doc));
        let (mut resp, usage) = echo::respond(endpoint, &doc, &state.tokenizer)?;
        finish.settle(Some(usage));
        resp.extensions_mut().insert(usage);
        return Ok(resp);
    };
    if stream {
        finish.log = draft.take().map(|d| (d, state.clone()));
    }
    let out = if stream && !req.include_usage {
        finish.strip_usage = true;
        req.with_usage_requested()
    } else {
        bytes
    };
    let t = &settings.upstream_defaults;
    let budget = forward::Budget {
        first_byte: t.first_byte_timeout,
        total: t.total_timeout,
        stream_idle: t.stream_idle_timeout,
        max_response_bytes: usize::try_from(settings.limits.max_response_bytes)
            .unwrap_or(usize::MAX),
    };
    let plan = failover::Plan {
        client: &state.client,
        candidates: &candidates,
        path: endpoint.path(),
        body: out,
        stream,
        budget,
        policy: failover::policy(&settings.health),
    };
    let mut served = None;
    let result = failover::serve(plan, finish, &mut served).await;
    let name = served.map(|u| u.name.clone());
    if let Some(d) = draft.as_mut() {
        d.record.upstream = name.clone();
    }
    let mut resp = result?;
    if let Some(v) = name.and_then(|n| HeaderValue::from_str(&n).ok()) {
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

/// A request with no body to count: admission, then `f`, then the headers.
fn simple(
    state: &AppState,
    auth: &AuthedKey,
    headers: &HeaderMap,
    f: impl FnOnce() -> Result<Response<Body>, ApiError>,
) -> Response<Body> {
    let limiter = state.limits.limiter(&auth.key);
    let (mut resp, adm) = match limiter.admit() {
        Err((e, adm)) => (ApiError::from(e).into_response(), adm),
        Ok(adm) => (f().unwrap_or_else(IntoResponse::into_response), adm),
    };
    finish_headers(&mut resp, &adm, auth, headers);
    resp
}

async fn list_models(
    auth: AuthedKey,
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Response<Body> {
    simple(&s, &auth, &headers, || {
        Ok(Json(ModelList {
            object: "list",
            data: visible_models(&s, &auth.key),
        })
        .into_response())
    })
}

async fn get_model(
    auth: AuthedKey,
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(model): Path<String>,
) -> Response<Body> {
    simple(&s, &auth, &headers, || {
        visible_models(&s, &auth.key)
            .into_iter()
            .find(|m| m.id == model)
            .map(|m| Json(m).into_response())
            .ok_or_else(|| RequestError::ModelNotFound(model).into())
    })
}
