//! Sending a request to an upstream and relaying its answer: JSON buffered
//! (bounded), SSE re-framed event by event as chunks arrive, upstream errors
//! turned into OpenAI-shaped errors without internal details.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Response, StatusCode};
use axum::response::IntoResponse;
use bytes::{Bytes, BytesMut};
use futures_util::stream;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::Instant;

use super::sse;
use super::upstream::{HttpClient, Upstream};
use crate::error::{ApiError, UpstreamError};

/// The per-call timing budget, read from settings at admission.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub first_byte: Duration,
    pub total: Duration,
    pub stream_idle: Duration,
    pub max_response_bytes: usize,
}

const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;
pub const UPSTREAM_HEADER: &str = "x-assisters-upstream";

pub async fn send(
    client: &HttpClient,
    upstream: &Arc<Upstream>,
    path: &str,
    body: Bytes,
    stream: bool,
    budget: Budget,
) -> Result<Response<Body>, ApiError> {
    let started = Instant::now();
    let req = upstream
        .request(Method::POST, path, body)
        .map_err(crate::error::InternalError::Other)?;
    let name = &upstream.name;
    let resp = match tokio::time::timeout(budget.first_byte, client.request(req)).await {
        Err(_) => return Err(UpstreamError::Timeout(name.clone()).into()),
        Ok(Err(e)) => {
            tracing::warn!(upstream = %name, error = %e, "upstream request failed");
            return Err(UpstreamError::Unreachable(name.clone()).into());
        }
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    let is_sse = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if status.is_success() && stream && is_sse {
        let deadline = started + budget.total;
        return Ok(sse_response(
            resp.into_body(),
            name.clone(),
            deadline,
            budget.stream_idle,
        ));
    }
    let remaining = budget.total.saturating_sub(started.elapsed());
    let body = read_bounded(resp.into_body(), budget.max_response_bytes, remaining, name).await?;
    if status.is_success() {
        let mut r = Response::new(Body::from(body));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return Ok(r);
    }
    Ok(upstream_error(status, &body, name))
}

async fn read_bounded(
    body: Incoming,
    max: usize,
    within: Duration,
    name: &str,
) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, max);
    match tokio::time::timeout(within, limited.collect()).await {
        Err(_) => Err(UpstreamError::Timeout(name.to_owned()).into()),
        Ok(Err(e)) => {
            tracing::warn!(upstream = %name, error = %e, "upstream body failed");
            Err(UpstreamError::BadResponse(name.to_owned()).into())
        }
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

/// A 4xx with an OpenAI-shaped body keeps its status and message (the client
/// made the mistake and should see it); anything else becomes a 502 that
/// reveals nothing of the upstream's internals.
fn upstream_error(status: StatusCode, body: &[u8], name: &str) -> Response<Body> {
    #[derive(serde::Deserialize, serde::Serialize)]
    struct Shape {
        error: Detail,
    }
    #[derive(serde::Deserialize, serde::Serialize)]
    struct Detail {
        message: String,
        #[serde(rename = "type", default)]
        kind: Option<String>,
        #[serde(default)]
        param: Option<String>,
        #[serde(default)]
        code: Option<serde_json::Value>,
    }
    if status.is_client_error() {
        if let Ok(shape) = serde_json::from_slice::<Shape>(body) {
            let mut r = Response::new(Body::from(serde_json::to_vec(&shape).unwrap_or_default()));
            *r.status_mut() = status;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return r;
        }
    }
    tracing::warn!(upstream = %name, %status, "upstream answered with an error");
    ApiError::from(UpstreamError::Failed {
        upstream: name.to_owned(),
        status: status.as_u16(),
    })
    .into_response()
}

struct Relay {
    body: Incoming,
    parser: sse::Parser,
    upstream: String,
    deadline: Instant,
    idle: Duration,
    finished: bool,
}

/// Streams the upstream's events to the client as they arrive. A failure
/// after the first byte cannot change the status any more, so it ends the
/// stream with an OpenAI-shaped error event instead.
fn sse_response(
    body: Incoming,
    upstream: String,
    deadline: Instant,
    idle: Duration,
) -> Response<Body> {
    let relay = Relay {
        body,
        parser: sse::Parser::new(MAX_EVENT_BYTES),
        upstream,
        deadline,
        idle,
        finished: false,
    };
    let s = stream::unfold(relay, |mut r| async move {
        if r.finished {
            return None;
        }
        loop {
            let wait = r
                .idle
                .min(r.deadline.saturating_duration_since(Instant::now()));
            let frame = match tokio::time::timeout(wait, r.body.frame()).await {
                Err(_) => return Some((Ok(r.fail(UpstreamError::Timeout(r.upstream.clone()))), r)),
                Ok(None) => return None,
                Ok(Some(Err(e))) => {
                    tracing::warn!(upstream = %r.upstream, error = %e, "upstream stream broke");
                    let err = UpstreamError::BadResponse(r.upstream.clone());
                    return Some((Ok(r.fail(err)), r));
                }
                Ok(Some(Ok(f))) => f,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let mut events = Vec::new();
            if let Err(e) = r.parser.feed(&data, &mut events) {
                tracing::warn!(upstream = %r.upstream, error = %e, "upstream stream refused");
                let err = UpstreamError::BadResponse(r.upstream.clone());
                return Some((Ok(r.fail(err)), r));
            }
            if events.is_empty() {
                continue;
            }
            let mut out = BytesMut::new();
            for ev in &events {
                sse::write_event(&mut out, ev);
            }
            return Some((Ok::<Bytes, std::convert::Infallible>(out.freeze()), r));
        }
    });
    let mut resp = Response::new(Body::from_stream(s));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

impl Relay {
    fn fail(&mut self, err: UpstreamError) -> Bytes {
        self.finished = true;
        error_event(&ApiError::from(err))
    }
}

/// An SSE event carrying an OpenAI error body, as the SDKs expect mid-stream.
pub fn error_event(err: &ApiError) -> Bytes {
    let json = serde_json::to_vec(&err.body()).unwrap_or_default();
    let mut out = BytesMut::with_capacity(json.len() + 8);
    sse::write_event(&mut out, &sse::Event::Json(Bytes::from(json)));
    out.freeze()
}
