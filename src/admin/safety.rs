//! `POST /admin/safety/scan`: the dashboard's "try it" box. Runs the
//! request path's own input checks (`safety::check_input`, external
//! moderators included) on one user message under the settings in force,
//! and adds every category's and rule family's score so an administrator
//! sees how close a harmless prompt came. Nothing is stored or logged: the
//! text is a prompt the administrator pasted, and scanning changes nothing.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AdminJson;
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::proxy::Endpoint;
use crate::safety::{Action, Category, Policy};

/// Longer prompts are refused: the box is for trying one prompt by hand.
const MAX_CHARS: usize = 32_768;

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin/safety/scan", post(scan))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    /// Scanned as the user message of a chat completion.
    pub text: String,
    /// Apply this key's own safety overrides on top of the settings.
    #[serde(default)]
    pub key_id: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CategoryScore {
    pub category: Category,
    /// The built-in moderator's score, 0–1.
    pub score: f32,
    /// At or above the moderation threshold.
    pub flagged: bool,
    /// What a flag in this category does under the settings in force.
    pub action: Action,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModerationScan {
    pub enabled: bool,
    pub threshold: f32,
    /// Every category, highest score first.
    pub categories: Vec<CategoryScore>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FamilyScore {
    pub family: String,
    pub score: f32,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InjectionScan {
    pub enabled: bool,
    pub threshold: f32,
    pub action: Action,
    /// The combined score, 0–1.
    pub score: f32,
    /// The rule families that matched, highest first.
    pub families: Vec<FamilyScore>,
    /// The family a refusal would name, when the score reaches the threshold.
    pub fired: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Refusal {
    /// The HTTP status a client would get.
    pub status: u16,
    pub body: ErrorBody,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScanResult {
    /// What the gateway would do with this prompt: `pass`, `flag` or `block`.
    pub decision: &'static str,
    /// The error a client would get instead of an answer, when blocked.
    pub refusal: Option<Refusal>,
    /// The checks as a request's log record notes them, in the order they run.
    pub checks: Vec<crate::safety::Check>,
    pub moderation: ModerationScan,
    pub injection: InjectionScan,
}

fn round(x: f32) -> f32 {
    (x * 1000.0).round() / 1000.0
}

/// Runs the input checks on `text` as a chat message; never stores it.
#[utoipa::path(operation_id = "safety_scan", post, path = "/admin/safety/scan", tag = "safety", request_body = ScanRequest,
    responses((status = 200, body = ScanResult), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn scan(
    State(state): State<AppState>,
    AdminJson(req): AdminJson<ScanRequest>,
) -> Result<Json<ScanResult>, ApiError> {
    if req.text.trim().is_empty() {
        return Err(ApiError::invalid("text must not be empty", Some("text")));
    }
    if req.text.chars().count() > MAX_CHARS {
        return Err(ApiError::invalid(
            format!("text is longer than {MAX_CHARS} characters"),
            Some("text"),
        ));
    }
    let key = match &req.key_id {
        Some(id) => Some(
            state
                .keys
                .find_by_id(id)
                .ok_or_else(|| ApiError::not_found("No such key."))?,
        ),
        None => None,
    };
    let settings = state.settings();
    let policy = Policy::resolve(
        &settings.safety,
        key.as_ref().and_then(|k| k.overrides.safety.as_ref()),
    );
    let doc = json!({"model": "scan", "messages": [{"role": "user", "content": req.text}]});
    let doc = doc.as_object().cloned().unwrap_or_default();
    let mut log = crate::safety::SafetyLog::default();
    let outcome =
        crate::safety::check_input(&state, &settings, &policy, Endpoint::Chat, &doc, &mut log)
            .await;
    let (decision, refusal) = match outcome {
        Ok(true) => ("flag", None),
        Ok(false) => ("pass", None),
        Err(e) => (
            "block",
            Some(Refusal {
                status: e.status().as_u16(),
                body: e.body(),
            }),
        ),
    };
    let checks = log.checks;

    let scores = state.safety.moderator().await?.scan(&req.text);
    let mut categories: Vec<CategoryScore> = Category::ALL
        .iter()
        .map(|&c| CategoryScore {
            category: c,
            score: round(scores.get(c)),
            flagged: scores.get(c) >= policy.moderation_threshold,
            action: policy.action_for(&settings.safety.moderation, c),
        })
        .collect();
    categories.sort_by(|a, b| b.score.total_cmp(&a.score));

    let verdict = state.safety.detector().await?.scan(&req.text);
    let families = verdict
        .families
        .iter()
        .map(|(f, s)| FamilyScore {
            family: (*f).to_owned(),
            score: round(*s),
        })
        .collect();
    let fired = (verdict.score >= policy.injection_threshold)
        .then(|| verdict.top().map(str::to_owned))
        .flatten();

    Ok(Json(ScanResult {
        decision,
        refusal,
        checks,
        moderation: ModerationScan {
            enabled: policy.input_moderation,
            threshold: policy.moderation_threshold,
            categories,
        },
        injection: InjectionScan {
            enabled: policy.injection,
            threshold: policy.injection_threshold,
            action: policy.injection_action,
            score: round(verdict.score),
            families,
            fired,
        },
    }))
}
