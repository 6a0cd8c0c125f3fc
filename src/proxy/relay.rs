//! Relaying an upstream's SSE stream to the client from a task of its own.
//!
//! The task owns the upstream body, so a client that disconnects does not
//! cancel the reading: the task keeps reading (bounded by
//! `usage_drain_timeout`) until the usage event arrives and the tokens can
//! be charged. Events go to the client through a small bounded channel; a
//! client that stops reading for longer than the idle timeout is treated as
//! gone.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Response};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::forward::{error_event, Finish, Usage};
use super::health::{Breaker, Policy};
use super::sse::{self, Event};
use crate::error::{ApiError, UpstreamError};
use crate::safety::stream::Verdict;

pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;
const CHANNEL_CHUNKS: usize = 16;

pub struct StreamPlan {
    pub upstream: String,
    pub deadline: Instant,
    pub idle: Duration,
    pub finish: Finish,
    /// A stream that breaks counts against its upstream's health.
    pub health: Arc<Breaker>,
    pub policy: Policy,
}

/// `first` is the data `forward::attempt` already read to judge the stream.
pub async fn sse_response(body: Incoming, first: Bytes, plan: StreamPlan) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
    match plan.finish.log.as_ref().map(|(_, s)| s.clone()) {
        Some(state) => {
            let cut = state.stopping.clone();
            state.relays.spawn(async move {
                // Cut at shutdown: the plan's `Finish` writes the record as it drops.
                tokio::select! {
                    () = relay(body, Some(first), tx, plan) => {}
                    () = cut.cancelled() => {}
                }
            });
        }
        None => {
            tokio::spawn(relay(body, Some(first), tx, plan));
        }
    }
    // One turn for the relay before the response goes out: the events
    // `forward` already read are then waiting in the channel, so hyper sends
    // the head with them (and, for a short answer, the end) in one write
    // instead of flushing the head alone.
    tokio::task::yield_now().await;
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<Bytes, std::convert::Infallible>(b), rx))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// The field names a relay looks for in every event, each searcher built
/// once per stream (`memmem::find` builds one per call: ~700 instructions,
/// twice an event).
struct Fields {
    usage: memchr::memmem::Finder<'static>,
    finish_reason: memchr::memmem::Finder<'static>,
}

impl Fields {
    fn new() -> Fields {
        Fields {
            usage: memchr::memmem::Finder::new(b"\"usage\""),
            finish_reason: memchr::memmem::Finder::new(FINISH_REASON),
        }
    }
}

const FINISH_REASON: &[u8] = b"\"finish_reason\"";

/// Is this event the usage-only chunk (`"choices": []` with a usage object)?
fn usage_of(json: &[u8], fields: &Fields) -> Option<(Usage, bool)> {
    fields.usage.find(json)?;
    #[derive(serde::Deserialize)]
    struct Chunk {
        usage: Option<Usage>,
        #[serde(default)]
        choices: Option<Vec<serde::de::IgnoredAny>>,
    }
    let c: Chunk = serde_json::from_slice(json).ok()?;
    let usage = c.usage?;
    Some((usage, c.choices.is_none_or(|c| c.is_empty())))
}

/// `[DONE]`, or an event in which a choice finished (`finish_reason` set).
fn ends_answer(ev: &Event, fields: &Fields) -> bool {
    let Event::Json(j) = ev else { return true };
    fields.finish_reason.find_iter(j).any(|at| {
        // Inside a string the quote would be escaped.
        if at > 0 && j[at - 1] == b'\\' {
            return false;
        }
        let rest = j[at + FINISH_REASON.len()..].trim_ascii_start();
        let value = rest.strip_prefix(b":").unwrap_or(b"").trim_ascii_start();
        !value.is_empty() && !value.starts_with(b"null")
    })
}

async fn relay(
    mut body: Incoming,
    mut first: Option<Bytes>,
    tx: mpsc::Sender<Bytes>,
    plan: StreamPlan,
) {
    let StreamPlan {
        upstream,
        deadline,
        idle,
        mut finish,
        health,
        policy,
    } = plan;
    let mut parser = sse::Parser::new(MAX_EVENT_BYTES);
    let fields = Fields::new();
    let mut usage: Option<Usage> = None;
    let mut failure: Option<&'static str> = None;
    // Set once the client is gone: from then on we only read for usage.
    let mut drain_until: Option<Instant> = None;
    // `[DONE]` or a finish reason came: the answer is whole. A body that
    // ends cleanly before either (a connection closed mid-answer, when the
    // length is the connection's) is a broken stream, not a short answer.
    let mut complete = false;
    loop {
        if drain_until.is_some() && usage.is_some() {
            break;
        }
        let limit = match drain_until {
            Some(t) => t,
            None => (Instant::now() + idle).min(deadline),
        };
        let next = match first.take() {
            Some(data) => Ok(Some(Ok(hyper::body::Frame::data(data)))),
            // A body with a length says when it is complete: end now rather
            // than wait for the connection task to confirm it.
            None if hyper::body::Body::is_end_stream(&body) => Ok(None),
            None => tokio::time::timeout_at(limit, body.frame()).await,
        };
        let err = match next {
            Err(_) => Some(UpstreamError::Timeout(upstream.clone())),
            Ok(None) => {
                if complete || drain_until.is_some() {
                    release_held(&mut finish, &mut usage, &tx, idle, drain_until, &fields).await;
                    break;
                }
                tracing::warn!(upstream = %upstream, "upstream stream ended before its answer finished");
                Some(UpstreamError::BadResponse(upstream.clone()))
            }
            Ok(Some(Err(e))) => {
                tracing::warn!(upstream = %upstream, error = %e, "upstream stream broke");
                Some(UpstreamError::BadResponse(upstream.clone()))
            }
            Ok(Some(Ok(f))) => {
                let Ok(data) = f.into_data() else { continue };
                let mut events = Vec::new();
                match parser.feed(&data, &mut events) {
                    Err(e) => {
                        tracing::warn!(upstream = %upstream, error = %e, "upstream stream refused");
                        Some(UpstreamError::BadResponse(upstream.clone()))
                    }
                    Ok(()) => {
                        complete = complete || events.iter().any(|e| ends_answer(e, &fields));
                        let events = match finish.guard.as_mut() {
                            // Nothing is sent after a disconnect: no need to scan.
                            Some(g) if !g.is_cut() && drain_until.is_none() => match g.push(events)
                            {
                                Verdict::Send(ev) => ev,
                                Verdict::Cut(err) => {
                                    // The flagged text never leaves: an error
                                    // event ends the stream, and the upstream
                                    // is read on only for its usage.
                                    if drain_until.is_none() {
                                        failure = err.body().error.code;
                                        let _ = tx.send_timeout(error_event(&err), idle).await;
                                        drain_until = Some(Instant::now() + finish.drain_timeout);
                                    }
                                    Vec::new()
                                }
                            },
                            _ => events,
                        };
                        let out = reframe(&events, &mut usage, finish.strip_usage, &fields);
                        if out.is_empty() || drain_until.is_some() {
                            continue;
                        }
                        finish.first_byte();
                        // A client that reads nothing for `idle` is as good as gone.
                        if tx.send_timeout(out, idle).await.is_err() {
                            drain_until = Some(Instant::now() + finish.drain_timeout);
                            failure = Some("client_disconnected");
                        }
                        None
                    }
                }
            }
        };
        if let Some(err) = err {
            if drain_until.is_none() {
                // What was sent so far plus the held text is all the text
                // there will be: the client gets it, then (unless the
                // answer was whole) the error.
                release_held(&mut finish, &mut usage, &tx, idle, drain_until, &fields).await;
                // A break after the answer's end (its `[DONE]` or finish
                // reason came) loses nothing: no error after the end.
                if complete {
                    break;
                }
                health.broke(policy);
                let err = ApiError::from(err);
                failure = err.body().error.code;
                let _ = tx.send_timeout(error_event(&err), idle).await;
            }
            break;
        }
    }
    // Tokens and the stream slot are settled before the client sees the end,
    // so its next request finds them free. Closing the channel before
    // anything else lets hyper write the last events and the final chunk
    // together (one `writev` fewer per stream); the log record follows.
    finish.settle(usage);
    drop(tx);
    finish.end_stream(usage, failure).await;
}

/// Sends the events output moderation held back (already scanned, kept
/// only in case later text completed a phrase) once no more text will come.
async fn release_held(
    finish: &mut Finish,
    usage: &mut Option<Usage>,
    tx: &mpsc::Sender<Bytes>,
    idle: Duration,
    drain_until: Option<Instant>,
    fields: &Fields,
) {
    let Some(g) = finish.guard.as_mut().filter(|g| !g.is_cut()) else {
        return;
    };
    let rest = g.finish();
    let out = reframe(&rest, usage, finish.strip_usage, fields);
    if !out.is_empty() && drain_until.is_none() {
        finish.first_byte();
        let _ = tx.send_timeout(out, idle).await;
    }
}

/// The events in wire form, noting usage and leaving out the usage-only
/// chunk when the client did not ask for it.
fn reframe(
    events: &[Event],
    usage: &mut Option<Usage>,
    strip_usage: bool,
    fields: &Fields,
) -> Bytes {
    let mut out = BytesMut::new();
    for ev in events {
        if let Event::Json(j) = ev {
            if let Some((u, usage_only)) = usage_of(j, fields) {
                *usage = Some(u);
                if usage_only && strip_usage {
                    continue;
                }
            }
        }
        sse::write_event(&mut out, ev);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_ends_with_done_or_a_finish_reason() {
        let json = |s: &'static str| Event::Json(Bytes::from_static(s.as_bytes()));
        let fields = Fields::new();
        let ends_answer = |e: &Event| ends_answer(e, &fields);
        assert!(ends_answer(&Event::Done));
        assert!(ends_answer(&json(
            r#"{"choices":[{"finish_reason" : "stop"}]}"#
        )));
        assert!(ends_answer(&json(
            r#"{"choices":[{"finish_reason":null},{"finish_reason":"length"}]}"#
        )));
        assert!(!ends_answer(&json(
            r#"{"choices":[{"finish_reason": null}]}"#
        )));
        assert!(!ends_answer(&json(
            r#"{"choices":[{"delta":{"content":"say \"finish_reason\":\"stop\""},"finish_reason":null}]}"#
        )));
    }
}
