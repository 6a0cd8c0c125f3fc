//! `assisters-echo`, the built-in demo model: answers in-process with the
//! prompt it was given, streams like a real model, and reports usage counted
//! with the gateway's tokenizer, so a fresh install works end to end.

use axum::body::Body;
use axum::http::{header, HeaderValue, Response};
use bytes::{Bytes, BytesMut};
use serde_json::{json, Value};

use super::forward::Usage;
use super::sse::{self, Event};
use super::Endpoint;
use crate::error::ApiError;
use crate::tokens::Tokenizer;

pub const MODEL: &str = "assisters-echo";

/// The answer and the usage it reports.
pub fn respond(
    endpoint: Endpoint,
    req: &Value,
    tok: &Tokenizer,
) -> Result<(Response<Body>, Usage), ApiError> {
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage = req
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let created = crate::store::now();
    match endpoint {
        Endpoint::Chat => {
            let messages = req
                .get("messages")
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    ApiError::invalid("'messages' must be an array of messages.", Some("messages"))
                })?;
            let reply = last_user_text(messages);
            let n = choices(req);
            let usage = usage(tok.count_chat(messages), n * tok.count(&reply));
            let id = format!("chatcmpl-{}", crate::keys::new_id("echo"));
            let resp = if stream {
                sse_body(chat_chunks(
                    &id,
                    created,
                    &reply,
                    n,
                    include_usage.then_some(&usage),
                ))
            } else {
                let choices: Vec<Value> = (0..n)
                    .map(|i| json!({"index": i, "message": {"role": "assistant", "content": reply, "refusal": null},
                                    "logprobs": null, "finish_reason": "stop"}))
                    .collect();
                json_body(&json!({
                    "id": id, "object": "chat.completion", "created": created, "model": MODEL,
                    "system_fingerprint": null, "choices": choices, "usage": usage_json(&usage),
                }))
            };
            Ok((resp, usage))
        }
        Endpoint::Completions => {
            let prompts = texts(req.get("prompt"), tok).ok_or_else(|| {
                ApiError::invalid(
                    "'prompt' must be a string, an array of strings, or token ids.",
                    Some("prompt"),
                )
            })?;
            let n = choices(req);
            // One choice per prompt and `n`, in OpenAI's order.
            let answers: Vec<&str> = prompts
                .iter()
                .flat_map(|p| std::iter::repeat_n(p.text.as_str(), n))
                .collect();
            let prompt_tokens = prompts.iter().map(|p| p.tokens).sum();
            // Each prompt is counted once: its `n` answers are copies.
            let answered: usize = prompts.iter().map(|p| p.echoed).sum();
            let usage = usage(prompt_tokens, n * answered);
            let id = format!("cmpl-{}", crate::keys::new_id("echo"));
            let resp = if stream {
                sse_body(completion_chunks(
                    &id,
                    created,
                    &answers,
                    include_usage.then_some(&usage),
                ))
            } else {
                let choices: Vec<Value> = answers
                    .iter()
                    .enumerate()
                    .map(|(i, t)| json!({"index": i, "text": t, "logprobs": null, "finish_reason": "stop"}))
                    .collect();
                json_body(&json!({
                    "id": id, "object": "text_completion", "created": created, "model": MODEL,
                    "choices": choices, "usage": usage_json(&usage),
                }))
            };
            Ok((resp, usage))
        }
        Endpoint::Embeddings | Endpoint::Moderations => embeddings(req, tok),
    }
}

/// The most text echoed back from one token-id prompt.
const MAX_ECHO_BYTES: usize = 64 << 10;

/// Choices asked for (`n`), bounded: the demo model does not need many.
fn choices(req: &Value) -> usize {
    req.get("n")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .clamp(1, 16) as usize
}

/// One prompt or embedding input: its text, its prompt tokens, and the
/// tokens of its text as echoed (the same for a string; a token-id prompt
/// costs an id each but echoes its decoded text).
struct Text {
    text: String,
    tokens: usize,
    echoed: usize,
}

/// The inputs of a prompt or `input` field: a string, token ids, or an
/// array of either (token ids decoded to their text; each id is a token).
fn texts(v: Option<&Value>, tok: &Tokenizer) -> Option<Vec<Text>> {
    let ids = |a: &[Value]| -> Option<Text> {
        let ids = crate::tokens::ids_of(a)?;
        // The demo echoes a prompt, not megabytes a few ids decode to.
        let text = tok.decode(ids.iter().copied(), MAX_ECHO_BYTES);
        Some(Text {
            tokens: ids.len(),
            echoed: tok.count(&text),
            text,
        })
    };
    let text = |s: &str| {
        let tokens = tok.count(s);
        Text {
            tokens,
            echoed: tokens,
            text: s.to_owned(),
        }
    };
    match v? {
        Value::String(s) => Some(vec![text(s)]),
        Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_number) => Some(vec![ids(a)?]),
        Value::Array(a) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Some(text(s)),
                Value::Array(inner) => ids(inner),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

fn usage(prompt: usize, completion: usize) -> Usage {
    Usage {
        prompt_tokens: prompt as u64,
        completion_tokens: completion as u64,
        total_tokens: (prompt + completion) as u64,
    }
}

fn usage_json(u: &Usage) -> Value {
    json!({"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens, "total_tokens": u.total_tokens})
}

/// The text of the last user message (string content or text parts).
fn last_user_text(messages: &[Value]) -> String {
    let Some(m) = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
    else {
        return String::new();
    };
    match m.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// Words with their trailing spaces, so the pieces join back to the text.
fn pieces(text: &str) -> Vec<&str> {
    text.split_inclusive(' ').collect()
}

fn chat_chunks(id: &str, created: i64, reply: &str, n: usize, usage: Option<&Usage>) -> Vec<Value> {
    let with_usage = usage.is_some();
    let chunk = |index: usize, delta: Value, finish: Value| {
        let mut c = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": MODEL,
            "system_fingerprint": null,
            "choices": [{"index": index, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if with_usage {
            c["usage"] = Value::Null;
        }
        c
    };
    let mut out = Vec::new();
    for i in 0..n {
        out.push(chunk(
            i,
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        ));
        out.extend(
            pieces(reply)
                .into_iter()
                .map(|p| chunk(i, json!({"content": p}), Value::Null)),
        );
        out.push(chunk(i, json!({}), json!("stop")));
    }
    if let Some(u) = usage {
        out.push(json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": MODEL,
            "system_fingerprint": null, "choices": [], "usage": usage_json(u),
        }));
    }
    out
}

fn completion_chunks(
    id: &str,
    created: i64,
    answers: &[&str],
    usage: Option<&Usage>,
) -> Vec<Value> {
    let chunk = |index: usize, t: &str, finish: Value| {
        json!({
            "id": id, "object": "text_completion", "created": created, "model": MODEL,
            "choices": [{"index": index, "text": t, "logprobs": null, "finish_reason": finish}],
        })
    };
    let mut out = Vec::new();
    for (i, text) in answers.iter().enumerate() {
        out.extend(pieces(text).into_iter().map(|p| chunk(i, p, Value::Null)));
        out.push(chunk(i, "", json!("stop")));
    }
    if let Some(u) = usage {
        out.push(json!({
            "id": id, "object": "text_completion", "created": created, "model": MODEL,
            "choices": [], "usage": usage_json(u),
        }));
    }
    out
}

fn embeddings(req: &Value, tok: &Tokenizer) -> Result<(Response<Body>, Usage), ApiError> {
    let inputs = texts(req.get("input"), tok).ok_or_else(|| {
        ApiError::invalid(
            "'input' must be a string, an array of strings, or token ids.",
            Some("input"),
        )
    })?;
    let dims = req
        .get("dimensions")
        .and_then(Value::as_u64)
        .map_or(256, |d| d.clamp(1, 4096)) as usize;
    let base64 = req.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let mut tokens = 0;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            tokens += input.tokens;
            let v = vector(&input.text, dims);
            let embedding = if base64 {
                use base64::Engine;
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let resp = json_body(&json!({
        "object": "list", "data": data, "model": MODEL,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }));
    Ok((resp, usage(tokens, 0)))
}

/// A deterministic unit vector derived from the text's SHA-256 chain.
fn vector(text: &str, dims: usize) -> Vec<f32> {
    use sha2::{Digest, Sha256};
    let mut out = Vec::with_capacity(dims);
    let mut block: [u8; 32] = Sha256::digest(text.as_bytes()).into();
    while out.len() < dims {
        for pair in block.chunks(2) {
            if out.len() < dims {
                out.push((u16::from_le_bytes([pair[0], pair[1]]) as f32 / 32767.5) - 1.0);
            }
        }
        block = Sha256::digest(block).into();
    }
    let norm = out
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    out.iter().map(|x| x / norm).collect()
}

fn json_body(v: &Value) -> Response<Body> {
    let mut r = Response::new(Body::from(v.to_string()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn sse_body(chunks: Vec<Value>) -> Response<Body> {
    let events = chunks
        .into_iter()
        .map(|c| Event::Json(Bytes::from(c.to_string())))
        .chain(std::iter::once(Event::Done))
        .map(|ev| {
            let mut b = BytesMut::new();
            sse::write_event(&mut b, &ev);
            Ok::<Bytes, std::convert::Infallible>(b.freeze())
        });
    let mut r = Response::new(Body::from_stream(futures_util::stream::iter(events)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    r
}
