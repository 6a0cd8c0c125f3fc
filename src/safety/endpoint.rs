//! `POST /v1/moderations`: OpenAI's moderation API answered with the
//! configured moderators (the built-in engine, and the external ones, a
//! category's score being the highest any of them gave).

use axum::body::Body;
use axum::http::{header, HeaderValue, Response};
use serde_json::{json, Map, Value};

use super::{external, note, texts, Category, Check, Scores};
use crate::app::AppState;
use crate::error::ApiError;
use crate::proxy::Endpoint;
use crate::settings::Settings;

pub const MODEL: &str = "assisters-moderation-1";

fn result(scores: &Scores, flagged_extra: &[Category], threshold: f32) -> Value {
    let mut categories = Map::new();
    let mut category_scores = Map::new();
    let mut applied = Map::new();
    let mut any = false;
    for c in Category::ALL {
        let s = scores.get(c);
        let f = s >= threshold || flagged_extra.contains(&c);
        any |= f;
        categories.insert(c.name().into(), json!(f));
        category_scores.insert(c.name().into(), json!(s));
        applied.insert(c.name().into(), json!(["text"]));
    }
    json!({
        "flagged": any,
        "categories": categories,
        "category_scores": category_scores,
        "category_applied_input_types": applied,
    })
}

pub async fn respond(
    state: &AppState,
    settings: &Settings,
    doc: &Map<String, Value>,
    safety: &mut super::SafetyLog,
) -> Result<Response<Body>, ApiError> {
    let parts = texts::request(Endpoint::Moderations, doc, &[]);
    // As OpenAI reads it: an array of strings is one input each, an array
    // of content parts (`{"type": "text", ...}`) is one input, one result.
    let multimodal = matches!(doc.get("input"), Some(Value::Array(a)) if a.first().is_some_and(Value::is_object));
    let inputs: Vec<Vec<&str>> = if multimodal {
        vec![parts.iter().map(|t| t.text).collect()]
    } else {
        parts.iter().map(|t| vec![t.text]).collect()
    };
    let threshold = settings.safety.moderation.threshold;
    let mut results = Vec::with_capacity(inputs.len());
    let mut builtin_max = Scores::default();
    let mut flagged_inputs = 0;
    let moderator = state.safety.moderator().await?;
    for one in &inputs {
        let mut scores = Scores::default();
        for t in one {
            scores.merge(&moderator.scan(t));
        }
        builtin_max.merge(&scores);
        let mut extra = Vec::new();
        // An input of images only has no text to ask anyone about.
        let asked = settings.safety.external.iter().filter(|_| !one.is_empty());
        let answers =
            futures_util::future::join_all(asked.map(|m| external::ask(state, m, one))).await;
        for (m, answer) in settings.safety.external.iter().zip(answers) {
            match answer {
                Ok(op) => {
                    scores.merge(&op.scores);
                    extra.extend(op.flagged);
                }
                Err(reason) => {
                    note(
                        safety,
                        Check::skipped(
                            "moderation",
                            "input",
                            format!("external:{}", m.name),
                            reason,
                        ),
                    );
                    // As on the other endpoints: a fail-closed moderator
                    // that is down means no verdict, not "not flagged".
                    if m.fail == super::config::FailMode::Closed {
                        return Err(crate::error::SafetyError::ModeratorUnavailable(
                            m.name.clone(),
                        )
                        .into());
                    }
                }
            }
        }
        let r = result(&scores, &extra, threshold);
        if r["flagged"] == json!(true) {
            flagged_inputs += 1;
        }
        results.push(r);
    }
    let mut check = Check::ran("moderation", "input", "builtin");
    check.score = Some(builtin_max.max());
    check.fired = builtin_max
        .flagged(threshold)
        .map(|c| c.name().to_owned())
        .collect();
    // The endpoint reports; it never refuses what it was asked to judge.
    check.action = "log".into();
    check.reason = Some(format!("{flagged_inputs} of {} inputs flagged", inputs.len()).into());
    note(safety, check);
    let model = doc
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(MODEL)
        .to_owned();
    let body = json!({
        "id": format!("modr-{}", crate::keys::new_id("m")),
        "model": model,
        "results": results,
    });
    let mut resp = Response::new(Body::from(body.to_string()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
