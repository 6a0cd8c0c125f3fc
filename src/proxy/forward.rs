//! One attempt at an upstream and the delivery of its answer: JSON read
//! bounded, SSE peeked up to its first event then handed to `relay`,
//! failures classified for `failover`, upstream errors turned into
//! OpenAI-shaped errors without internal details, and the token reservation
//! settled against the usage the upstream reports.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Response, StatusCode};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Deserialize;
use tokio::time::Instant;

use super::health::Policy;
use super::relay::{self, StreamPlan};
use super::sse;
use super::upstream::{HttpClient, Upstream};
use crate::error::{ApiError, UpstreamError};
use crate::limits::{Reservation, StreamSlot};

/// The per-call timing budget, read from settings at admission.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub first_byte: Duration,
    pub total: Duration,
    pub stream_idle: Duration,
    pub max_response_bytes: usize,
}

pub const UPSTREAM_HEADER: axum::http::HeaderName =
    axum::http::HeaderName::from_static("x-assisters-upstream");

/// The `usage` object of a completion or embedding.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub struct Usage {
    #[serde(default, deserialize_with = "reported")]
    pub prompt_tokens: u64,
    #[serde(default, deserialize_with = "reported")]
    pub completion_tokens: u64,
    #[serde(default, deserialize_with = "reported")]
    pub total_tokens: u64,
}

/// The most tokens one answer is believed to have used (~10^12). An
/// upstream's figure is untrusted: one of 2^62 overflowed the day's usage
/// sums, after which the gateway could not start until the next UTC day.
pub const MOST_REPORTED_TOKENS: u64 = 1 << 40;

fn reported<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(u64::deserialize(d)?.min(MOST_REPORTED_TOKENS))
}

impl Usage {
    pub fn total(&self) -> u64 {
        // Saturating: these numbers come from the upstream.
        self.total_tokens
            .max(self.prompt_tokens.saturating_add(self.completion_tokens))
    }
}

/// Where a call's answer goes and in what time.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    pub deadline: Instant,
    pub budget: Budget,
    pub policy: Policy,
}

/// The request's log record and where records go, until a stream takes it.
pub struct Record<'a> {
    pub draft: &'a mut Option<crate::logs::Draft>,
    pub state: &'a crate::app::AppState,
}

/// What must happen when a call ends: settle the tokens, free the stream slot.
#[derive(Default)]
pub struct Finish {
    pub reservation: Option<Reservation>,
    pub slot: Option<StreamSlot>,
    /// The key's concurrent-request place, freed with the stream slot.
    pub place: Option<StreamSlot>,
    /// The client did not ask for the usage chunk; the gateway did.
    pub strip_usage: bool,
    pub drain_timeout: Duration,
    /// A stream's log record, written by the relay when the stream ends.
    pub log: Option<(crate::logs::Draft, crate::app::AppState)>,
    /// Output moderation of a stream, run by the relay.
    pub guard: Option<crate::safety::stream::StreamGuard>,
}

/// A stream cut before its end (shutdown ran out of grace) still leaves
/// its record.
impl Drop for Finish {
    fn drop(&mut self) {
        if let Some((draft, state)) = self.log.take() {
            state
                .logs
                .submit_now(draft.finish(200, Some("server_shutdown"), None));
        }
    }
}

impl Finish {
    /// Settles against the reported usage; without a report the
    /// reservation stands as spent.
    pub fn settle(&mut self, usage: Option<Usage>) {
        if let (Some(r), Some(u)) = (self.reservation.take(), usage) {
            r.settle(u.total());
        }
        self.slot.take();
        self.place.take();
    }

    /// The end of a stream, after [`Finish::settle`]: writes the stream's
    /// log record.
    pub async fn end_stream(mut self, usage: Option<Usage>, error_code: Option<&str>) {
        if let (Some(g), Some((d, _))) = (self.guard.as_ref(), self.log.as_mut()) {
            g.note_into(d.safety_mut());
        }
        if let Some((draft, state)) = self.log.take() {
            let tokens = usage.map(|u| (u.prompt_tokens, u.completion_tokens));
            state
                .logs
                .submit(draft.finish(200, error_code, tokens))
                .await;
        }
    }

    pub fn first_byte(&mut self) {
        if let Some((d, _)) = self.log.as_mut() {
            if d.record.ttfb_ms.is_none() {
                d.first_byte();
            }
        }
    }
}

/// One upstream's answer, received in full (JSON) or up to its first event
/// (SSE): nothing has reached the client yet.
pub enum Answer {
    Json {
        status: StatusCode,
        body: Bytes,
        /// A success's top-level `usage`, read while its JSON was checked.
        usage: Option<Usage>,
    },
    Stream {
        body: Incoming,
        /// The bytes read up to and including the first event.
        first: Bytes,
    },
}

/// Why an attempt gave no answer.
pub struct Failure {
    pub error: ApiError,
    /// Another upstream may try: nothing reached the client, and the
    /// failure is the upstream's (down, 5xx, too slow, rate-limited).
    pub retry: bool,
    /// The upstream's health suffers (not for a 429: it is up, just busy).
    pub counts: bool,
}

impl Failure {
    fn retry(error: impl Into<ApiError>) -> Failure {
        Failure {
            error: error.into(),
            retry: true,
            counts: true,
        }
    }
}

/// Sends one attempt and waits until the answer can be judged: the whole
/// body of a JSON answer, the first event of a stream.
pub async fn attempt(
    client: &HttpClient,
    upstream: &Upstream,
    path: &str,
    body: Bytes,
    stream: bool,
    budget: Budget,
    deadline: Instant,
) -> Result<Answer, Failure> {
    let final_ = |error: ApiError| Failure {
        error,
        retry: false,
        counts: false,
    };
    let req = upstream
        .request(Method::POST, path, body)
        .map_err(|e| final_(crate::error::InternalError::Other(e).into()))?;
    let name = &upstream.name;
    let head_by = (Instant::now() + budget.first_byte).min(deadline);
    let resp = match tokio::time::timeout_at(head_by, client.request(req)).await {
        Err(_) => return Err(Failure::retry(UpstreamError::Timeout(name.clone()))),
        Ok(Err(e)) => {
            tracing::warn!(upstream = %name, error = %e, "upstream request failed");
            return Err(Failure::retry(UpstreamError::Unreachable(name.clone())));
        }
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    if status == StatusCode::TOO_MANY_REQUESTS {
        tracing::warn!(upstream = %name, "upstream is rate limiting the gateway");
        // Seconds only: an HTTP date is rare from APIs and left out.
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| s.min(3_600));
        return Err(Failure {
            error: UpstreamError::RateLimited {
                upstream: name.clone(),
                retry_after,
            }
            .into(),
            retry: true,
            counts: false,
        });
    }
    // A 401 or 403 refuses the gateway's own credential for that upstream
    // (revoked, expired): another upstream may still serve the model, and
    // the breaker should learn that this one cannot.
    if status.is_server_error() || matches!(status.as_u16(), 401 | 403) {
        tracing::warn!(upstream = %name, %status, "upstream answered with an error");
        return Err(Failure {
            error: UpstreamError::Failed {
                upstream: name.clone(),
                status: status.as_u16(),
            }
            .into(),
            retry: true,
            counts: true,
        });
    }
    let is_sse = is_sse(resp.headers());
    if status.is_success() && stream && is_sse {
        let mut body = resp.into_body();
        return match first_data(&mut body, budget.stream_idle, deadline).await {
            Err(e) => {
                tracing::warn!(upstream = %name, error = %e, "upstream stream failed before its first event");
                Err(Failure::retry(if e == "timed out" {
                    UpstreamError::Timeout(name.clone())
                } else {
                    UpstreamError::BadResponse(name.clone())
                }))
            }
            Ok(first) => Ok(Answer::Stream { body, first }),
        };
    }
    let remaining = deadline.saturating_duration_since(Instant::now());
    match read_bounded(resp.into_body(), budget.max_response_bytes, remaining, name).await {
        // A success the client could not read is a failed attempt, whatever
        // checks run after it: another upstream may answer properly.
        Ok(body) if status.is_success() => match super::scan::object_field(&body, "usage") {
            Some(usage) => Ok(Answer::Json {
                status,
                body,
                usage,
            }),
            None => {
                tracing::warn!(upstream = %name, "upstream answered with a body that is not JSON");
                Err(Failure::retry(UpstreamError::BadResponse(name.clone())))
            }
        },
        Ok(body) => Ok(Answer::Json {
            status,
            body,
            usage: None,
        }),
        // The time is spent; another upstream would start with none left.
        Err(e @ ApiError::Upstream(UpstreamError::Timeout(_))) => Err(Failure {
            error: e,
            retry: false,
            counts: true,
        }),
        Err(e) => Err(Failure::retry(e)),
    }
}

/// A stream's bytes up to and including its first answer event. A stream
/// that ends or breaks before one (empty, only comments, only `[DONE]`) is
/// a failed attempt the next upstream may retry: nothing has reached the
/// client yet. (Taken on its first bytes, such a stream was committed to
/// and the client got an empty answer, charged in full.) Each frame gives
/// the upstream another `idle` to go on, as the relay does, so keep-alive
/// comments hold a slow start open; what may come before the first event is
/// bounded like one event.
async fn first_data(
    body: &mut Incoming,
    idle: Duration,
    deadline: Instant,
) -> Result<Bytes, &'static str> {
    let max = super::relay::MAX_EVENT_BYTES;
    let mut parser = super::sse::Parser::new(max);
    let mut seen = BytesMut::new();
    let mut events = Vec::new();
    loop {
        let by = (Instant::now() + idle).min(deadline);
        match tokio::time::timeout_at(by, body.frame()).await {
            Err(_) => return Err("timed out"),
            Ok(None) => return Err("the stream ended before its first answer"),
            Ok(Some(Err(_))) => return Err("the stream broke"),
            Ok(Some(Ok(f))) => {
                let Ok(d) = f.into_data() else { continue };
                if seen.len() + d.len() > max {
                    return Err("too much came before its first event");
                }
                parser
                    .feed(&d, &mut events)
                    .map_err(|_| "its first event is too long")?;
                match events.first() {
                    None => {}
                    Some(super::sse::Event::Done) => {
                        return Err("the stream ended before its first answer")
                    }
                    // One frame is the usual case: no copy.
                    Some(_) if seen.is_empty() => return Ok(d),
                    Some(_) => {
                        seen.extend_from_slice(&d);
                        return Ok(seen.freeze());
                    }
                }
                seen.extend_from_slice(&d);
            }
        }
    }
}

/// Turns an accepted answer into the client's response: from here on the
/// upstream is committed to.
pub async fn deliver(
    answer: Answer,
    upstream: &Upstream,
    how: Delivery,
    mut finish: Finish,
    record: &mut Record<'_>,
) -> Result<Response<Body>, ApiError> {
    let name = &upstream.name;
    let (status, body, usage) = match answer {
        Answer::Stream { body, first } => {
            // From here the relay writes the record, when the stream ends.
            finish.log = record.draft.take().map(|mut d| {
                d.record.upstream = Some(name.clone());
                if finish.guard.is_none() {
                    crate::safety::note(
                        d.safety_mut(),
                        crate::safety::Check::skipped(
                            "moderation",
                            "output",
                            "builtin",
                            "disabled",
                        ),
                    );
                }
                (d, record.state.clone())
            });
            let plan = StreamPlan {
                upstream: name.clone(),
                deadline: how.deadline,
                idle: how.budget.stream_idle,
                finish,
                health: upstream.health.clone(),
                policy: how.policy,
            };
            return Ok(relay::sse_response(body, first, plan).await);
        }
        Answer::Json {
            status,
            body,
            usage,
        } => (status, body, usage),
    };
    if status.is_success() {
        finish.settle(usage);
        let mut r = Response::new(Body::from(body));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(u) = usage {
            r.extensions_mut().insert(u);
        }
        return Ok(r);
    }
    // A refused call used no tokens.
    finish.settle(Some(Usage::default()));
    upstream_error(status, &body, upstream)
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

/// A 4xx that is the client's mistake (400, 404, 409, 413, 415, 422) with an
/// OpenAI-shaped body keeps its status and message, so the client sees it;
/// anything else becomes a 502 that reveals nothing of the upstream's
/// internals. A 401 or 403 is the gateway's own upstream credential being
/// refused: passed on, it told the client its valid `ask_` key was wrong,
/// and showed part of the upstream's key.
fn upstream_error(
    status: StatusCode,
    body: &[u8],
    upstream: &Upstream,
) -> Result<Response<Body>, ApiError> {
    let name = &upstream.name;
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
    let clients_mistake = matches!(status.as_u16(), 400 | 404 | 409 | 413 | 415 | 422);
    if clients_mistake {
        if let Ok(mut shape) = serde_json::from_slice::<Shape>(body) {
            shape.error.message = upstream.redact(&shape.error.message).into_owned();
            let mut r = Response::new(Body::from(serde_json::to_vec(&shape).unwrap_or_default()));
            *r.status_mut() = status;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return Ok(r);
        }
    }
    tracing::warn!(upstream = %name, %status, "upstream answered with an error");
    Err(UpstreamError::Failed {
        upstream: name.to_owned(),
        status: status.as_u16(),
    }
    .into())
}

/// Whether an answer is an event stream (media types are case-insensitive).
pub fn is_sse(headers: &axum::http::HeaderMap) -> bool {
    const SSE: &[u8] = b"text/event-stream";
    headers.get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes()
            .get(..SSE.len())
            .is_some_and(|t| t.eq_ignore_ascii_case(SSE))
    })
}

/// An SSE event carrying an OpenAI error body, as the SDKs expect mid-stream.
pub fn error_event(err: &ApiError) -> Bytes {
    let json = serde_json::to_vec(&err.body()).unwrap_or_default();
    let mut out = BytesMut::with_capacity(json.len() + 8);
    sse::write_event(&mut out, &sse::Event::Json(Bytes::from(json)));
    out.freeze()
}
