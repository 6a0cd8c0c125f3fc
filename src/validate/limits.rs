//! The configurable bounds of a request that a schema cannot express:
//! message count, characters per message and in total, `max_tokens`, `n`.

use serde_json::{Map, Value};

use super::ValidationConfig;
use crate::error::ApiError;
use crate::proxy::Endpoint;
use crate::tokens::is_media;

fn too_large(param: &str, what: &str, limit: u64) -> ApiError {
    ApiError::invalid(
        format!("Invalid value for '{param}': {what}; expected at most {limit}."),
        Some(param),
    )
}

/// Characters of every string inside `v` (media skipped: an image is not
/// text), stopping early past `stop`. Up to `stop` a string counts its
/// bytes, an upper bound; `exact` counts before anything is refused.
fn chars(v: &Value, stop: u64) -> u64 {
    match v {
        // Byte length bounds the character count: count only when it matters.
        Value::String(s) if (s.len() as u64) <= stop => s.len() as u64,
        Value::String(s) => s.chars().count() as u64,
        Value::Array(a) => {
            let mut n = 0;
            for x in a {
                n += chars(x, stop.saturating_sub(n));
                if n > stop {
                    break;
                }
            }
            n
        }
        Value::Object(o) => {
            let mut n = 0;
            for (_, x) in o.iter().filter(|(k, _)| !is_media(k)) {
                n += chars(x, stop.saturating_sub(n));
                if n > stop {
                    break;
                }
            }
            n
        }
        _ => 0,
    }
}

/// Exact count, for a string over its limit by bytes (multi-byte text).
fn exact(v: &Value) -> u64 {
    let mut texts = Vec::new();
    crate::tokens::collect_strings(v, &mut texts);
    texts.iter().map(|s| s.chars().count() as u64).sum()
}

fn over(v: &Value, limit: u64) -> Option<u64> {
    let n = chars(v, limit);
    (n > limit && exact(v) > limit).then(|| exact(v))
}

pub fn check(
    endpoint: Endpoint,
    doc: &Map<String, Value>,
    cfg: &ValidationConfig,
) -> Result<(), ApiError> {
    for field in ["max_tokens", "max_completion_tokens"] {
        if let Some(n) = doc.get(field).and_then(Value::as_u64) {
            if n > cfg.max_tokens {
                return Err(too_large(field, &format!("{n} tokens"), cfg.max_tokens));
            }
        }
    }
    // `best_of` candidates are generated like choices, and charged so.
    for field in ["n", "best_of"] {
        if let Some(n) = doc.get(field).and_then(Value::as_u64) {
            if n > u64::from(cfg.max_n) {
                return Err(too_large(
                    field,
                    &format!("{n} choices"),
                    u64::from(cfg.max_n),
                ));
            }
        }
    }
    let mut total = 0u64;
    match endpoint {
        Endpoint::Chat => {
            let Some(Value::Array(msgs)) = doc.get("messages") else {
                return Ok(());
            };
            if msgs.len() as u64 > u64::from(cfg.max_messages) {
                return Err(too_large(
                    "messages",
                    &format!("{} messages", msgs.len()),
                    u64::from(cfg.max_messages),
                ));
            }
            for (i, m) in msgs.iter().enumerate() {
                if let Some(n) = over(m, cfg.max_message_chars) {
                    // Name the content when it alone is too long, else the message.
                    let param = if m
                        .get("content")
                        .is_some_and(|c| exact(c) > cfg.max_message_chars)
                    {
                        format!("messages[{i}].content")
                    } else {
                        format!("messages[{i}]")
                    };
                    return Err(too_large(
                        &param,
                        &format!("{n} characters"),
                        cfg.max_message_chars,
                    ));
                }
                total += chars(m, cfg.max_total_chars);
            }
            total += doc
                .get("tools")
                .map_or(0, |t| chars(t, cfg.max_total_chars));
            if total > cfg.max_total_chars {
                total = msgs.iter().map(exact).sum::<u64>() + doc.get("tools").map_or(0, exact);
            }
            if total > cfg.max_total_chars {
                return Err(too_large(
                    "messages",
                    "the text of all messages together is longer",
                    cfg.max_total_chars,
                ));
            }
        }
        Endpoint::Completions | Endpoint::Embeddings | Endpoint::Moderations => {
            let field = match endpoint {
                Endpoint::Completions => "prompt",
                _ => "input",
            };
            let Some(v) = doc.get(field) else {
                return Ok(());
            };
            let items: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            for (i, item) in items.iter().enumerate() {
                if let Some(n) = over(item, cfg.max_message_chars) {
                    let param = if v.is_array() {
                        format!("{field}[{i}]")
                    } else {
                        field.to_owned()
                    };
                    return Err(too_large(
                        &param,
                        &format!("{n} characters"),
                        cfg.max_message_chars,
                    ));
                }
                total += chars(item, cfg.max_total_chars);
            }
            if total > cfg.max_total_chars {
                total = items.iter().map(|x| exact(x)).sum();
            }
            if total > cfg.max_total_chars {
                return Err(too_large(
                    field,
                    "the text of all inputs together is longer",
                    cfg.max_total_chars,
                ));
            }
        }
    }
    Ok(())
}
