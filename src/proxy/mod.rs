//! The OpenAI-compatible `/v1` API: read the body, route the model to the
//! echo model or its upstreams (with failover), forward, relay.

pub mod body;
pub mod echo;
pub mod failover;
pub mod forward;
pub mod health;
pub mod relay;
pub mod scan;
pub mod sse;
pub mod upstream;

use axum::body::Body;
use std::sync::atomic::AtomicU64;
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
use crate::safety;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completions,
    Embeddings,
    Moderations,
}

impl Endpoint {
    /// Path relative to an upstream's base URL (which ends in `/v1`).
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/chat/completions",
            Endpoint::Completions => "/completions",
            Endpoint::Embeddings => "/embeddings",
            Endpoint::Moderations => "/moderations",
        }
    }
}

/// Every handler takes [`AuthedKey`] first: no `/v1` route runs unauthenticated.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/chat/completions", post(chat).options(preflight))
        .route("/v1/completions", post(completions).options(preflight))
        .route("/v1/embeddings", post(embeddings).options(preflight))
        .route("/v1/moderations", post(moderations).options(preflight))
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

async fn moderations(k: AuthedKey, State(s): State<AppState>, req: Request) -> Response<Body> {
    handle(s, k, Endpoint::Moderations, req).await
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
    let mut pending = logs::Pending::new(auth.draft(&parts.headers), &state.logs);
    let request_id = pending
        .draft
        .as_ref()
        .and_then(|d| HeaderValue::from_str(d.answer_id()).ok());
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
            Ok(place) => {
                let call = Call {
                    state: &state,
                    auth: &auth,
                    limiter: &limiter,
                    endpoint,
                    headers: &parts.headers,
                    place,
                };
                let r = serve(call, body, &mut adm, &mut pending.draft).await;
                (r.unwrap_or_else(to_response), adm)
            }
        },
    };
    finish_headers(&mut resp, &admission, &auth, &parts.headers);
    if let Some(v) = request_id {
        resp.headers_mut().insert(logs::REQUEST_ID_HEADER, v);
    }
    // A stream's record went with it to the relay, which writes it at the end.
    if let Some(d) = pending.draft.take() {
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
    /// The key's place among its concurrent requests, if it has a cap: a
    /// stream keeps it until it ends.
    place: Option<limits::StreamSlot>,
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
        place,
    } = call;
    let settings = state.settings();
    let edge = &state.edge.config;
    let read = body::read_json(
        headers,
        body,
        settings.limits.max_body_bytes,
        edge.body_idle_timeout,
    );
    let bytes = tokio::time::timeout(edge.body_read_timeout, read)
        .await
        .map_err(|_| crate::error::EdgeError::RequestTimeout {
            part: "body",
            after: edge.body_read_timeout,
        })??;
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
    let mut req = body::parse_for(&bytes, endpoint, settings.validation.max_depth as usize)?;
    let streams = !matches!(endpoint, Endpoint::Embeddings | Endpoint::Moderations);
    if let Some(d) = draft.as_mut() {
        d.record.model = Some(req.model.clone());
        d.record.stream = req.stream && streams;
    }
    let policy = safety::Policy::resolve(&settings.safety, key.overrides.safety.as_ref());
    let flagged = {
        let mut scratch = safety::SafetyLog::default();
        let log = match draft.as_mut() {
            Some(d) => d.safety_mut(),
            None => &mut scratch,
        };
        validate_body(state, &settings, endpoint, &mut req, log)?;
        if endpoint == Endpoint::Moderations {
            return safety::endpoint::respond(state, &settings, &req.doc, log).await;
        }
        safety::check_input(state, &settings, &policy, endpoint, &req.doc, log).await?
    };
    if !key.may_use(&req.model) {
        return Err(RequestError::ModelNotFound(req.model).into());
    }
    let stream = req.stream && streams;
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

    // Whatever can still refuse the request comes before the reservation:
    // a reservation dropped unsettled stands as spent.
    let slot = if stream {
        Some(limiter.open_stream()?)
    } else {
        None
    };
    // Without a guard a relayed stream notes its output moderation as
    // skipped (`forward::deliver`); any other answer is judged by
    // `moderate_answer`.
    let guard = if stream && candidates.is_some() && policy.output_moderation {
        Some(safety::stream::StreamGuard::new(
            state.safety.moderator().await?.clone(),
            settings.clone(),
            policy.clone(),
        ))
    } else {
        None
    };
    // A stream holds the key's place until it ends (the relay frees it);
    // any other request until its answer, moderation included, is ready.
    let (place, _held_here) = if stream { (place, None) } else { (None, place) };
    // Saturating: with validation off, `max_tokens` and `n` are whatever the
    // client sent, and a wrapped product would reserve nothing.
    let completion = match endpoint {
        Endpoint::Embeddings | Endpoint::Moderations => 0,
        _ => req
            .max_tokens
            .unwrap_or(u64::from(settings.limits.default_max_tokens))
            .saturating_mul(req.n),
    };
    // At least one token: a reservation of none never asked the limiter,
    // so such requests were admitted without limit however many ran.
    let reserve = req
        .prompt_tokens(endpoint, &state.tokenizer)
        .saturating_add(completion)
        .max(1);
    let (mut reservation, (tokens_left, tokens_reset)) =
        limiter.reserve(reserve, crate::store::now())?;
    if let Some(d) = draft.as_mut() {
        let cell = Arc::new(AtomicU64::new(0));
        reservation.report_unsettled_to(cell.clone());
        d.unreported = Some(cell);
    }
    adm.tokens_remaining = tokens_left;
    adm.tokens_reset = tokens_reset;
    let mut finish = forward::Finish {
        reservation: Some(reservation),
        slot,
        place,
        strip_usage: false,
        drain_timeout: settings.limits.usage_drain_timeout,
        log: None,
        guard,
    };

    let Some(candidates) = candidates else {
        let doc = serde_json::Value::Object(std::mem::take(&mut req.doc));
        let answer = echo::respond(endpoint, &doc, &state.tokenizer);
        let used = answer.as_ref().map_or(forward::Usage::default(), |a| a.1);
        finish.settle(Some(used));
        let (mut resp, usage) = answer?;
        resp.extensions_mut().insert(usage);
        note_usage(draft, &resp);
        let resp = moderate_answer(state, &settings, &policy, resp, stream, draft).await?;
        return Ok(mark_flagged(resp, flagged));
    };
    let out = if stream && !req.include_usage {
        finish.strip_usage = true;
        req.with_usage_requested(&bytes)
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
        record: forward::Record {
            draft: &mut *draft,
            state,
        },
    };
    let mut served = None;
    let result = failover::serve(plan, finish, &mut served).await;
    let name = served.map(|u| u.name.clone());
    if let Some(d) = draft.as_mut() {
        d.record.upstream = name.clone();
    }
    let mut resp = result?;
    note_usage(draft, &resp);
    // Named before moderation, which names it in a refusal.
    if let Some(v) = name.and_then(|n| HeaderValue::from_str(&n).ok()) {
        resp.headers_mut().insert(forward::UPSTREAM_HEADER, v);
    }
    // Only a relayed stream is moderated on its way (by its guard); a stream
    // request can get a JSON answer from an upstream that ignores `stream`.
    if !(stream && forward::is_sse(resp.headers())) {
        resp = moderate_answer(state, &settings, &policy, resp, false, draft).await?;
    }
    Ok(mark_flagged(resp, flagged))
}

/// The usage that settled the reservation, on the record at once: an
/// answer withheld after it (output moderation, a client that left) still
/// shows what was charged.
fn note_usage(draft: &mut Option<logs::Draft>, resp: &Response<Body>) {
    if let (Some(d), Some(u)) = (draft.as_mut(), resp.extensions().get::<forward::Usage>()) {
        d.record.prompt_tokens = Some(u.prompt_tokens);
        d.record.completion_tokens = Some(u.completion_tokens);
    }
}

/// Schema and limits, noted in the record either way.
fn validate_body(
    state: &AppState,
    settings: &crate::settings::Settings,
    endpoint: Endpoint,
    req: &mut body::Parsed,
    log: &mut safety::SafetyLog,
) -> Result<(), ApiError> {
    if !settings.validation.enabled {
        safety::note(
            log,
            safety::Check::skipped("validation", "input", "schema", "disabled"),
        );
        return Ok(());
    }
    let verdict = state
        .validators
        .check(endpoint, &mut req.doc, &settings.validation);
    let mut check = safety::Check::ran("validation", "input", "schema");
    if let Err(e) = &verdict {
        check.action = "block".into();
        check.param = e.body().error.param;
    }
    safety::note(log, check);
    verdict
}

/// Output moderation of an answer the gateway holds whole (a JSON answer,
/// or the echo model's stream): scanned before the client gets a byte.
async fn moderate_answer(
    state: &AppState,
    settings: &crate::settings::Settings,
    policy: &safety::Policy,
    resp: Response<Body>,
    sse: bool,
    draft: &mut Option<logs::Draft>,
) -> Result<Response<Body>, ApiError> {
    let mut scratch = safety::SafetyLog::default();
    let log = match draft.as_mut() {
        Some(d) => d.safety_mut(),
        None => &mut scratch,
    };
    if !resp.status().is_success() {
        safety::note(
            log,
            safety::Check::skipped(
                "moderation",
                "output",
                "builtin",
                "the upstream answered with an error",
            ),
        );
        return Ok(resp);
    }
    if !policy.output_moderation {
        safety::note(
            log,
            safety::Check::skipped("moderation", "output", "builtin", "disabled"),
        );
        return Ok(resp);
    }
    use http_body_util::BodyExt;
    let (parts, body) = resp.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(|e| crate::error::InternalError::Other(e.to_string()))?
        .to_bytes();
    let flagged = if sse {
        let mut parser = sse::Parser::new(usize::MAX);
        let mut events = Vec::new();
        let _ = parser.feed(&bytes, &mut events);
        // Each choice's text whole, the choices apart.
        let choices = safety::texts::by_choice(&events);
        let texts: Vec<&str> = choices.iter().map(|(_, t)| t.as_str()).collect();
        safety::check_output_text(state, settings, policy, &texts, log).await?
    } else {
        // An answer that is not JSON is refused naming who sent it.
        let upstream = parts
            .headers
            .get(forward::UPSTREAM_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("upstream");
        safety::check_output(state, settings, policy, &bytes, upstream, log).await?
    };
    Ok(mark_flagged(
        Response::from_parts(parts, Body::from(bytes)),
        flagged,
    ))
}

/// Tells the client that something was let through flagged.
fn mark_flagged(mut resp: Response<Body>, flagged: bool) -> Response<Body> {
    if flagged {
        resp.headers_mut()
            .insert(SAFETY_HEADER, HeaderValue::from_static("flagged"));
    }
    resp
}

pub const SAFETY_HEADER: axum::http::HeaderName =
    axum::http::HeaderName::from_static("x-assisters-safety");

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

/// A request with no body to count: admission, then `f`, then the headers;
/// logged and given its `x-request-id` like every other `/v1` request.
async fn simple(
    state: &AppState,
    auth: &AuthedKey,
    headers: &HeaderMap,
    f: impl FnOnce() -> Result<Response<Body>, ApiError>,
) -> Response<Body> {
    let mut pending = logs::Pending::new(auth.draft(headers), &state.logs);
    let limiter = state.limits.limiter(&auth.key);
    let (answer, adm) = match limiter.admit() {
        Err((e, adm)) => (Err(ApiError::from(e)), adm),
        Ok(adm) => (f(), adm),
    };
    let code = answer.as_ref().err().and_then(|e| e.body().error.code);
    let mut resp = answer.unwrap_or_else(IntoResponse::into_response);
    finish_headers(&mut resp, &adm, auth, headers);
    if let Some(d) = pending.draft.take() {
        if let Ok(v) = HeaderValue::from_str(d.answer_id()) {
            resp.headers_mut().insert(logs::REQUEST_ID_HEADER, v);
        }
        state.logs.submit(finish_log(d, &resp, code)).await;
    }
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
    .await
}

async fn get_model(
    auth: AuthedKey,
    State(s): State<AppState>,
    headers: HeaderMap,
    // A name that is not UTF-8 is refused in OpenAI's shape, not axum's text.
    model: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response<Body> {
    simple(&s, &auth, &headers, || {
        let Path(model) = model.map_err(|e| ApiError::invalid(e.body_text(), Some("model")))?;
        visible_models(&s, &auth.key)
            .into_iter()
            .find(|m| m.id == model)
            .map(|m| Json(m).into_response())
            .ok_or_else(|| RequestError::ModelNotFound(model).into())
    })
    .await
}
