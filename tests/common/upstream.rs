//! A real upstream for the tests: an HTTP server speaking OpenAI's wire
//! format (JSON and SSE), whose behaviour is chosen by the model name.
//!
//! - `mock`: answers normally; streams 3 content chunks (+ usage when asked).
//! - `mock-gated`: streams one chunk, then waits for `release()` before the rest.
//! - `mock-slow`: waits 3 s before answering.
//! - `mock-500`: fails with a 500 whose body holds internal details.
//! - `mock-400`: refuses with an OpenAI-shaped 400.
//! - `mock-drop`: streams one chunk, then breaks the connection.
//! - `mock-drop-held`: the same, its chunk ending in what could begin a
//!   flagged phrase ("kill a pro"), so output moderation holds it back.
//! - `mock-forge`: streams events whose text tries to forge SSE events.
//! - `mock-unsafe`: answers (JSON or stream) with a threat, the stream
//!   splitting the flagged phrase across chunks sent apart.
//! - `mock-unsafe-json`: answers `mock-unsafe`'s JSON even to a stream request.
//! - `mock-harmless-split`: streams "kill a pro" + "cess" (harmless, split).
//! - `mock-pings`: streams keep-alive comments for 1.5 s, then answers.
//! - `mock-chatter`: streams 5 MiB of comments before its first event.
//! - `mock-401`: refuses with OpenAI's 401 for a wrong upstream key.
//! - `mock-429`: refuses with a 429 and `Retry-After: 20`.
//! - `mock-huge-usage`: answers like `mock`, reporting 2^62 tokens of each kind.
//! - `mock-no-usage`: answers like `mock` with no usage, even when asked.
//! - `mock-guard`: a Llama-Guard-style judge: `unsafe\nS10` when the
//!   conversation contains `EXTERNAL-FLAG`, else `safe`.
//! - `POST /v1/moderations`: an OpenAI-style moderator flagging `hate` for
//!   inputs containing `EXTERNAL-FLAG`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::Notify;

pub const UPSTREAM_SECRET: &str = "sk-upstream-secret-0123456789";
pub const INTERNAL_DETAIL: &str = "Traceback: db password=hunter2 at /srv/model.py";

#[derive(Clone, Default)]
pub struct Recorded {
    pub path: String,
    pub body: Bytes,
    pub authorization: Option<String>,
}

/// How a broken upstream answers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    None = 0,
    /// 500 with internal details in the body.
    ServerError = 1,
    /// 401: the gateway's credential for it was revoked.
    Unauthorized = 2,
    /// 200 whose body is not JSON.
    Garbled = 3,
}

#[derive(Default)]
struct Shared {
    /// How every call fails, if it does (a `Failure` as a number).
    failing: std::sync::atomic::AtomicU8,
    /// Stream requests get a 200 stream holding only a comment.
    hollow: std::sync::atomic::AtomicBool,
    requests: Mutex<Vec<Recorded>>,
    gate: Notify,
    /// Set when a streaming response's body was dropped before it ended.
    cancelled: Mutex<u32>,
}

pub struct MockUpstream {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl MockUpstream {
    pub async fn start() -> MockUpstream {
        let shared = Arc::new(Shared::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = Some(tokio::spawn(serve(listener, shared.clone())));
        MockUpstream { addr, shared, task }
    }

    /// An outage: the port refuses connections and open ones are cut.
    pub fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    /// Back on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        self.task = Some(tokio::spawn(serve(listener, self.shared.clone())));
    }

    /// Up, but answering 500 to everything (including `/models`).
    pub fn set_failing(&self, failing: bool) {
        self.fail_with(if failing {
            Failure::ServerError
        } else {
            Failure::None
        });
    }

    /// Up, but answering every call the way `f` says.
    pub fn fail_with(&self, f: Failure) {
        self.shared
            .failing
            .store(f as u8, std::sync::atomic::Ordering::SeqCst);
    }

    /// Up, but answering stream requests with a 200 stream that holds no
    /// answer (a comment and `[DONE]`).
    pub fn set_hollow_streams(&self, hollow: bool) {
        self.shared
            .hollow
            .store(hollow, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().clone()
    }

    pub fn last(&self) -> Recorded {
        self.requests()
            .last()
            .cloned()
            .expect("a request reached the upstream")
    }

    /// Lets a `mock-gated` stream continue past its first chunk.
    pub fn release(&self) {
        self.shared.gate.notify_one();
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves until aborted; the connections are in a `JoinSet` owned by this
/// task, so aborting it cuts them too (like a process that died).
async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let app = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/moderations", post(moderations))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            failing,
        ))
        .with_state(shared);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let svc = hyper_util::service::TowerToHyperService::new(app.clone());
        conns.spawn(async move {
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
        });
        while conns.try_join_next().is_some() {}
    }
}

async fn failing(
    State(s): State<Arc<Shared>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let answer = match s.failing.load(std::sync::atomic::Ordering::SeqCst) {
        1 => (StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_DETAIL),
        2 => (StatusCode::UNAUTHORIZED, "{\"error\":{\"message\":\"Incorrect API key provided: sk-up***\",\"type\":\"invalid_request_error\",\"code\":\"invalid_api_key\"}}"),
        3 => (StatusCode::OK, "{\"id\": \"x\", \"choices\": [ this is not json"),
        _ => return next.run(req).await,
    };
    let path = req.uri().path().to_owned();
    record(&s, &path, req.headers(), &Bytes::new());
    let mut resp = answer.into_response();
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn record(s: &Shared, path: &str, headers: &HeaderMap, body: &Bytes) {
    s.requests.lock().push(Recorded {
        path: path.to_owned(),
        body: body.clone(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    });
}

async fn models() -> Json<Value> {
    let ids = [
        "mock",
        "mock-gated",
        "mock-slow",
        "mock-500",
        "mock-400",
        "mock-drop",
        "mock-drop-held",
        "mock-truncated",
        "mock-forge",
        "mock-unsafe",
        "mock-unsafe-json",
        "mock-harmless-split",
        "mock-guard",
        "mock-huge-usage",
        "mock-no-usage",
        "mock-401",
        "mock-429",
        "mock-pings",
        "mock-chatter",
    ];
    Json(json!({
        "object": "list",
        "data": ids.iter().map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "mock"})).collect::<Vec<_>>(),
    }))
}

fn chunk(model: &str, content: &str) -> String {
    json!({
        "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model,
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}],
    })
    .to_string()
}

fn sse(events: Vec<String>) -> Response {
    let body = events
        .into_iter()
        .map(|e| format!("data: {e}\n\n"))
        .collect::<String>();
    ([("content-type", "text/event-stream")], body).into_response()
}

async fn chat(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    record(&s, "/v1/chat/completions", &headers, &body);
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = req["model"].as_str().unwrap_or("").to_owned();
    let stream = req["stream"].as_bool().unwrap_or(false);
    if stream && s.hollow.load(std::sync::atomic::Ordering::SeqCst) {
        return (
            [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
            ": keep-alive\n\ndata: [DONE]\n\n",
        )
            .into_response();
    }
    let usage = if model == "mock-huge-usage" {
        let huge = 1u64 << 62;
        json!({"prompt_tokens": huge, "completion_tokens": huge, "total_tokens": huge})
    } else {
        json!({"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10})
    };
    match model.as_str() {
        "mock-slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        "mock-500" => {
            return (StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_DETAIL).into_response();
        }
        "mock-401" => {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": {"message": "Incorrect API key provided: sk-proj-****abcd.", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})),
            )
                .into_response();
        }
        "mock-429" => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(axum::http::header::RETRY_AFTER, "20")],
                Json(json!({"error": {"message": "Rate limit reached", "type": "requests", "param": null, "code": "rate_limit_exceeded"}})),
            )
                .into_response();
        }
        "mock-400" => {
            return (
                StatusCode::BAD_REQUEST,
                // Some upstreams quote the credential they were given.
                Json(json!({"error": {"message": format!("temperature is out of range (key {UPSTREAM_SECRET})"), "type": "invalid_request_error", "param": "temperature", "code": null, "internal": INTERNAL_DETAIL}})),
            )
                .into_response();
        }
        "mock-guard" => {
            let verdict = if body.windows(13).any(|w| w == b"EXTERNAL-FLAG") {
                "unsafe\nS10"
            } else {
                "safe"
            };
            return Json(json!({
                "id": "chatcmpl-guard", "object": "chat.completion", "created": 1, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": verdict}, "finish_reason": "stop"}],
                "usage": usage,
            }))
            .into_response();
        }
        "mock-unsafe-json" | "mock-unsafe" if !stream || model == "mock-unsafe-json" => {
            return Json(json!({
                "id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": UNSAFE_ANSWER}, "finish_reason": "stop"}],
                "usage": usage,
            }))
            .into_response();
        }
        "mock-unsafe" | "mock-harmless-split" => {
            let pieces: &[&str] = if model == "mock-unsafe" {
                &UNSAFE_PIECES
            } else {
                &["Use this to kill a pro", "cess: ", "kill -9 1234"]
            };
            let mut events: Vec<String> = pieces.iter().map(|p| chunk(&model, p)).collect();
            if req["stream_options"]["include_usage"].as_bool() == Some(true) {
                events.push(json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [], "usage": usage}).to_string());
            }
            events.push("[DONE]".into());
            // Each event leaves on its own, so the gateway sees the phrase split.
            let stream = futures_util::stream::iter(events).then(|e| async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                Ok::<_, Infallible>(Bytes::from(format!("data: {e}\n\n")))
            });
            return (
                [("content-type", "text/event-stream")],
                Body::from_stream(stream),
            )
                .into_response();
        }
        _ => {}
    }
    let no_usage = model == "mock-no-usage";
    if !stream {
        let mut answer = json!({
            "id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from mock"}, "finish_reason": "stop"}],
            "usage": usage,
        });
        if no_usage {
            answer.as_object_mut().map(|o| o.remove("usage"));
        }
        return Json(answer).into_response();
    }
    let include_usage = req["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false)
        && !no_usage;
    match model.as_str() {
        "mock-gated" => {
            let first = Bytes::from(format!("data: {}\n\n", chunk(&model, "first")));
            let usage_event = if include_usage {
                let u = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1,
                               "model": model, "choices": [], "usage": usage});
                format!("data: {u}\n\n")
            } else {
                String::new()
            };
            let rest = Bytes::from(format!(
                "data: {}\n\n{usage_event}data: [DONE]\n\n",
                chunk(&model, "second")
            ));
            let shared = s.clone();
            let stream = futures_util::stream::once(async move { Ok::<_, Infallible>(first) })
                .chain(futures_util::stream::once(async move {
                    shared.gate.notified().await;
                    Ok(rest)
                }));
            (
                [("content-type", "text/event-stream")],
                Body::from_stream(stream),
            )
                .into_response()
        }
        "mock-drop" | "mock-drop-held" => {
            let text = if model == "mock-drop" {
                "partial"
            } else {
                "Use this to kill a pro"
            };
            let first = Bytes::from(format!("data: {}\n\n", chunk(&model, text)));
            // The pause lets the first chunk leave before the connection breaks.
            let stream = futures_util::stream::once(async move { Ok(first) }).chain(
                futures_util::stream::once(async {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Err(std::io::Error::other("upstream crashed"))
                }),
            );
            (
                [("content-type", "text/event-stream")],
                Body::from_stream(stream),
            )
                .into_response()
        }
        "mock-truncated" => {
            // Ends cleanly mid-answer: no finish reason, no `[DONE]` (as a
            // body whose length is the connection's looks when it is cut).
            let body = format!("data: {}\n\n", chunk(&model, "partial"));
            ([("content-type", "text/event-stream")], body).into_response()
        }
        "mock-pings" => {
            // Thinks for 1.5 s, saying so every 300 ms, then answers.
            let answer = Bytes::from(format!(
                "data: {}\n\ndata: [DONE]\n\n",
                chunk(&model, "thought")
            ));
            let pings = futures_util::stream::iter(0..5).then(|_| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok::<_, Infallible>(Bytes::from_static(b": keep-alive\n\n"))
            });
            let stream = pings.chain(futures_util::stream::once(async move { Ok(answer) }));
            (
                [("content-type", "text/event-stream")],
                Body::from_stream(stream),
            )
                .into_response()
        }
        "mock-chatter" => {
            // 5 MiB of comments before the first event.
            let line = format!(": {}\n", "x".repeat(1022));
            let body = format!(
                "{}data: {}\n\n",
                line.repeat(5 * 1024),
                chunk(&model, "late")
            );
            ([("content-type", "text/event-stream")], body).into_response()
        }
        "mock-forge" => {
            let forged = chunk(&model, "a\n\ndata: [DONE]\n\ndata: {\"evil\":true}");
            let body = format!("data: not json at all\n\ndata: {forged}\n\ndata: [DONE]\n\n");
            ([("content-type", "text/event-stream")], body).into_response()
        }
        _ => {
            let mut events: Vec<String> = ["Hello", " from", " mock"]
                .iter()
                .map(|c| chunk(&model, c))
                .collect();
            if include_usage {
                events.push(json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [], "usage": usage}).to_string());
            }
            events.push("[DONE]".into());
            sse(events)
        }
    }
}

/// The flagged answer, and the same split so that no chunk holds the phrase.
pub const UNSAFE_ANSWER: &str = "Listen carefully. I will kill you tomorrow.";
pub const UNSAFE_PIECES: [&str; 4] = ["Listen carefully. ", "I will ki", "ll y", "ou tomorrow."];

async fn moderations(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    record(&s, "/v1/moderations", &headers, &body);
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let inputs: Vec<String> = match &req["input"] {
        Value::String(t) => vec![t.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        _ => vec![],
    };
    let results: Vec<Value> = inputs
        .iter()
        .map(|t| {
            let hit = t.contains("EXTERNAL-FLAG");
            json!({"flagged": hit, "categories": {"hate": hit, "violence": false},
                   "category_scores": {"hate": if hit { 0.97 } else { 0.01 }, "violence": 0.0}})
        })
        .collect();
    Json(json!({"id": "modr-mock", "model": "omni-moderation-latest", "results": results}))
        .into_response()
}

async fn completions(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    record(&s, "/v1/completions", &headers, &body);
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Json(json!({
        "id": "cmpl-mock", "object": "text_completion", "created": 1, "model": req["model"],
        "choices": [{"index": 0, "text": "completed", "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
    }))
    .into_response()
}

async fn embeddings(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    record(&s, "/v1/embeddings", &headers, &body);
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Json(json!({
        "object": "list", "model": req["model"],
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }))
    .into_response()
}
