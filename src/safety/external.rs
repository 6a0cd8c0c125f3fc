//! External moderators over HTTP: an OpenAI-compatible `/moderations`
//! endpoint, or a Llama-Guard-style model on a configured upstream whose
//! `safe` / `unsafe` + `S1,S10` answer is mapped to OpenAI's categories.
//! Each has a timeout and fails open (recorded as skipped) or closed.

use axum::http::{header, HeaderValue, Method, Request};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};

use super::config::{Action, ExternalKind, ExternalModerator, FailMode, Policy};
use super::{judge_scores, note, Category, Check, Scores};
use crate::app::AppState;
use crate::error::{ApiError, SafetyError};
use crate::settings::Settings;

const MAX_ANSWER: usize = 1 << 20;

/// What one moderator said: scores, and categories it flagged itself.
#[derive(Debug, Default, Clone)]
pub struct Opinion {
    pub scores: Scores,
    pub flagged: Vec<Category>,
}

/// Llama Guard 3's hazard codes, as OpenAI categories.
fn llama_guard_code(code: &str) -> &'static [Category] {
    use Category::*;
    match code {
        "S1" => &[Violence, IllicitViolent],
        "S2" => &[Illicit],
        "S3" => &[Sexual, Illicit],
        "S4" => &[SexualMinors],
        "S5" => &[Harassment],
        "S9" => &[IllicitViolent],
        "S10" => &[Hate],
        "S11" => &[SelfHarm],
        "S12" => &[Sexual],
        "S6" | "S7" | "S8" | "S13" | "S14" => &[Illicit],
        _ => &[],
    }
}

/// Parses a Llama Guard answer: `safe`, or `unsafe` and a line of codes.
pub fn parse_llama_guard(answer: &str) -> Result<Opinion, String> {
    let t = answer.trim().to_ascii_lowercase();
    if t.starts_with("safe") {
        return Ok(Opinion::default());
    }
    if !t.starts_with("unsafe") {
        return Err(format!(
            "unexpected answer {:?}",
            answer.chars().take(40).collect::<String>()
        ));
    }
    let mut op = Opinion::default();
    for code in answer[6.min(answer.len())..]
        .split(|c: char| c == ',' || c.is_whitespace())
        .map(|c| c.trim().to_ascii_uppercase())
        .filter(|c| !c.is_empty())
    {
        for c in llama_guard_code(&code) {
            op.scores.0[*c as usize] = 1.0;
            if !op.flagged.contains(c) {
                op.flagged.push(*c);
            }
        }
    }
    if op.flagged.is_empty() {
        // `unsafe` without a code we know still means unsafe.
        op.flagged.push(Category::Illicit);
        op.scores.0[Category::Illicit as usize] = 1.0;
    }
    Ok(op)
}

/// Reads OpenAI's moderation answer (every result merged).
pub fn parse_openai(body: &[u8]) -> Result<Opinion, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("unreadable answer: {e}"))?;
    let results = v
        .get("results")
        .and_then(Value::as_array)
        .ok_or("the answer has no `results`")?;
    let mut op = Opinion::default();
    for r in results {
        if let Some(Value::Object(s)) = r.get("category_scores") {
            for (k, x) in s {
                if let (Some(c), Some(x)) = (Category::from_name(k), x.as_f64()) {
                    let slot = &mut op.scores.0[c as usize];
                    *slot = slot.max(x as f32);
                }
            }
        }
        if let Some(Value::Object(f)) = r.get("categories") {
            for (k, x) in f {
                if let (Some(c), Some(true)) = (Category::from_name(k), x.as_bool()) {
                    if !op.flagged.contains(&c) {
                        op.flagged.push(c);
                    }
                }
            }
        }
    }
    Ok(op)
}

async fn call(state: &AppState, m: &ExternalModerator, texts: &[&str]) -> Result<Opinion, String> {
    let (req, guard) = match m.kind {
        ExternalKind::Openai => {
            let url = m.url.as_deref().unwrap_or_default();
            let mut body = json!({"input": texts});
            if let Some(model) = &m.model {
                body["model"] = json!(model);
            }
            let mut b = Request::builder()
                .method(Method::POST)
                .uri(url)
                .header(header::CONTENT_TYPE, "application/json");
            if let Some(key) = m.api_key_env.as_deref().and_then(crate::config::secret_env) {
                let mut v =
                    HeaderValue::from_str(&format!("Bearer {key}")).map_err(|e| e.to_string())?;
                v.set_sensitive(true);
                b = b.header(header::AUTHORIZATION, v);
            }
            let req = b
                .body(Full::new(Bytes::from(body.to_string())))
                .map_err(|e| e.to_string())?;
            (req, false)
        }
        ExternalKind::LlamaGuard => {
            let name = m.upstream.as_deref().unwrap_or_default();
            let up = state
                .upstreams
                .get(name)
                .ok_or_else(|| format!("no upstream named {name:?}"))?;
            let body = json!({
                "model": m.model,
                "messages": [{"role": "user", "content": texts.join("\n\n")}],
                "max_tokens": 24, "temperature": 0, "stream": false,
            });
            (
                up.request(
                    Method::POST,
                    "/chat/completions",
                    Bytes::from(body.to_string()),
                )?,
                true,
            )
        }
    };
    let resp = state
        .client
        .request(req)
        .await
        .map_err(|e| format!("unreachable: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("answered with status {}", resp.status().as_u16()));
    }
    let body = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| format!("unreadable answer: {e}"))?
        .to_bytes();
    if guard {
        let v: Value =
            serde_json::from_slice(&body).map_err(|e| format!("unreadable answer: {e}"))?;
        let text = v
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .ok_or("the answer has no message")?;
        parse_llama_guard(text)
    } else {
        parse_openai(&body)
    }
}

/// Asks one moderator within its timeout.
pub async fn ask(
    state: &AppState,
    m: &ExternalModerator,
    texts: &[&str],
) -> Result<Opinion, String> {
    match tokio::time::timeout(m.timeout, call(state, m, texts)).await {
        Err(_) => Err(format!(
            "timed out after {}",
            humantime::format_duration(m.timeout)
        )),
        Ok(r) => r,
    }
}

/// Asks every configured moderator at once; notes each one; a block or a
/// fail-closed moderator that is down is an error.
pub async fn moderate(
    state: &AppState,
    settings: &Settings,
    policy: &Policy,
    stage: &'static str,
    texts: &[&str],
    safety: &mut super::SafetyLog,
) -> Result<bool, ApiError> {
    let list = &settings.safety.external;
    let answers = futures_util::future::join_all(list.iter().map(|m| ask(state, m, texts))).await;
    let mut flagged = false;
    let mut refusal: Option<ApiError> = None;
    for (m, answer) in list.iter().zip(answers) {
        let engine = format!("external:{}", m.name);
        match answer {
            Err(reason) => {
                tracing::warn!(moderator = %m.name, %reason, "external moderator unavailable");
                note(safety, Check::skipped("moderation", stage, engine, reason));
                if m.fail == FailMode::Closed && refusal.is_none() {
                    refusal = Some(SafetyError::ModeratorUnavailable(m.name.clone()).into());
                }
            }
            Ok(op) => {
                let (check, verdict) = judge_scores(
                    Check::ran("moderation", stage, engine),
                    &op.scores,
                    &op.flagged,
                    settings,
                    policy,
                );
                note(safety, check);
                match verdict {
                    Some((Action::Block, cats)) if refusal.is_none() => {
                        refusal = Some(
                            SafetyError::ContentPolicy {
                                categories: cats,
                                param: None,
                                output: stage == "output",
                            }
                            .into(),
                        );
                    }
                    Some((Action::Flag, _)) => flagged = true,
                    _ => {}
                }
            }
        }
    }
    match refusal {
        Some(e) => Err(e),
        None => Ok(flagged),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_guard_answers_map_to_categories() {
        assert!(parse_llama_guard("safe").unwrap().flagged.is_empty());
        let op = parse_llama_guard("unsafe\nS1,S10").unwrap();
        assert!(op.flagged.contains(&Category::Violence) && op.flagged.contains(&Category::Hate));
        assert!(parse_llama_guard("I cannot help").is_err());
    }
}
