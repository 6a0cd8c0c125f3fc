//! Request safety: moderation of what the model reads and says, and
//! prompt-injection detection. The engines are built once (`engines`,
//! held in `AppState`); this file runs them on a request or an answer,
//! applies the actions of the [`Policy`] in force, and writes what ran into
//! the request's log record (`record.safety`), skipped checks included.

pub mod config;
pub mod endpoint;
pub mod engines;
pub mod external;
pub mod injection;
pub mod moderation;
pub mod normalize;
pub mod stream;
pub mod texts;

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use config::{Action, KeySafety, Policy, SafetyConfig};
pub use engines::Safety;
pub use moderation::{Category, Scores};

use crate::app::AppState;
use crate::error::{ApiError, SafetyError};
use crate::proxy::Endpoint;
use crate::settings::Settings;

/// What the safety checks did to one request: every check, run or
/// skipped, in the order they ran.
// Typed rather than a `serde_json::Value`: building a map per check and
// printing it again for the store cost ~5 % of a request's CPU.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SafetyLog {
    #[serde(default)]
    #[schema(required = true)]
    pub checks: Vec<Check>,
}

impl SafetyLog {
    /// Nothing in it is particular to one request (no score above zero,
    /// nothing fired, no reason but a fixed one), so it repeats from record
    /// to record and the variety of such logs is bounded by the settings.
    pub fn is_generic(&self) -> bool {
        self.checks.iter().all(|c| {
            c.fired.is_empty()
                && c.scores.is_empty()
                && c.param.is_none()
                && c.score.is_none_or(|s| s == 0.0)
                && c.reason
                    .as_ref()
                    .is_none_or(|r| matches!(r, Word::Borrowed(_)))
        })
    }
}

/// The checks' vocabulary is fixed (`&'static`) when the gateway writes a
/// record and owned when one is read back from the store.
pub type Word = Cow<'static, str>;

/// One check as recorded in the request log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Check {
    /// `validation`, `moderation` or `injection`.
    #[schema(value_type = String)]
    pub check: Word,
    /// `input` or `output`.
    #[schema(value_type = String)]
    pub stage: Word,
    /// `schema`, `builtin`, `rules` or `external:<name>`.
    #[schema(value_type = String)]
    pub engine: Word,
    /// `ran` or `skipped`: a skipped check never counts as passed.
    #[schema(value_type = String)]
    pub status: Word,
    /// Why it was skipped, or what the check reported.
    // Borrowed when it is one of the gateway's fixed reasons, owned when it
    // carries something of this request (a count, a moderator's error):
    // `SafetyLog::is_generic` tells them apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub reason: Option<Word>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// Non-zero scores by category or family.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = BTreeMap<String, f32>)]
    pub scores: BTreeMap<Word, f32>,
    /// What fired: categories or rule families.
    #[serde(default)]
    #[schema(required = true)]
    pub fired: Vec<String>,
    /// `pass`, `block`, `flag`, `log`, or `none` when skipped.
    #[schema(value_type = String)]
    pub action: Word,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
}

impl Check {
    pub fn ran(check: &'static str, stage: &'static str, engine: impl Into<Word>) -> Check {
        Check {
            check: check.into(),
            stage: stage.into(),
            engine: engine.into(),
            status: "ran".into(),
            reason: None,
            score: None,
            scores: BTreeMap::new(),
            fired: Vec::new(),
            action: "pass".into(),
            param: None,
        }
    }

    pub fn skipped(
        check: &'static str,
        stage: &'static str,
        engine: impl Into<Word>,
        reason: impl Into<Word>,
    ) -> Check {
        Check {
            status: "skipped".into(),
            reason: Some(reason.into()),
            action: "none".into(),
            ..Check::ran(check, stage, engine)
        }
    }
}

fn round(x: f32) -> f32 {
    (x * 1000.0).round() / 1000.0
}

/// Appends a check to a record's safety log.
pub fn note(safety: &mut SafetyLog, check: Check) {
    safety.checks.push(check);
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Block => "block",
        Action::Flag => "flag",
        Action::Log => "log",
    }
}

/// The strongest of the actions of what fired (block > flag > log).
fn strongest(actions: impl Iterator<Item = Action>) -> Option<Action> {
    actions.max_by_key(|a| match a {
        Action::Block => 3,
        Action::Flag => 2,
        Action::Log => 1,
    })
}

/// A moderation result turned into a check and the action it calls for.
pub fn judge_scores(
    mut check: Check,
    scores: &Scores,
    extra_flags: &[Category],
    settings: &Settings,
    policy: &Policy,
) -> (Check, Option<(Action, Vec<&'static str>)>) {
    for c in Category::ALL {
        let s = scores.get(c);
        if s > 0.0 {
            check.scores.insert(c.name().into(), round(s));
        }
    }
    check.score = Some(round(scores.max()));
    let mut fired: Vec<Category> = scores.flagged(policy.moderation_threshold).collect();
    for c in extra_flags {
        if !fired.contains(c) {
            fired.push(*c);
        }
    }
    check.fired = fired.iter().map(|c| c.name().to_owned()).collect();
    let action = strongest(
        fired
            .iter()
            .map(|c| policy.action_for(&settings.safety.moderation, *c)),
    );
    if let Some(a) = action {
        check.action = action_name(a).into();
    }
    let names = fired.iter().map(|c| c.name()).collect();
    (check, action.map(|a| (a, names)))
}

/// Whether anything was let through flagged (for the response header).
pub type Flagged = bool;

/// Moderation and injection detection of a request's input. A block is
/// an error; every check (run or skipped) is noted in `safety`. Each text
/// is normalised once for both engines.
pub async fn check_input(
    state: &AppState,
    settings: &Settings,
    policy: &Policy,
    endpoint: Endpoint,
    doc: &Map<String, Value>,
    safety: &mut SafetyLog,
) -> Result<Flagged, ApiError> {
    let moderate = policy.input_moderation;
    let detect = policy.injection && matches!(endpoint, Endpoint::Chat | Endpoint::Completions);
    // Gathering the texts walks every message: not for nothing.
    let derived = if moderate || detect {
        texts::derived(endpoint, doc, &state.tokenizer)
    } else {
        Vec::new()
    };
    let texts = if moderate || detect {
        texts::request(endpoint, doc, &derived)
    } else {
        Vec::new()
    };
    let mut scores = Scores::default();
    let mut moderation_param = None;
    let mut injection = injection::Verdict::default();
    let mut injection_param = None;
    let mut norm = String::new();
    let mut stops = Vec::new();
    let moderator = if moderate {
        Some(state.safety.moderator().await?)
    } else {
        None
    };
    let detector = if detect {
        Some(state.safety.detector().await?)
    } else {
        None
    };
    for t in &texts {
        let signs = normalize::normalize_with_stops(t.text, &mut norm, &mut stops);
        if let Some(m) = moderator {
            let s = m.scan_readings(t.text, &norm, &stops);
            if moderation_param.is_none() && s.flagged(policy.moderation_threshold).next().is_some()
            {
                moderation_param = Some(t.loc);
            }
            scores.merge(&s);
        }
        if let Some(d) = detector.filter(|_| t.untrusted) {
            let v = d.scan_normalized(t.text, &norm, signs);
            if v.score > injection.score {
                injection = v;
                injection_param = Some(t.loc);
            }
        }
    }
    let externals = &settings.safety.external;
    let mut flagged = false;
    if !moderate {
        note(
            safety,
            Check::skipped("moderation", "input", "builtin", "disabled"),
        );
    } else {
        let param = moderation_param.map(|l| l.param());
        let (mut check, verdict) = judge_scores(
            Check::ran("moderation", "input", "builtin"),
            &scores,
            &[],
            settings,
            policy,
        );
        check.param = param.clone();
        note(safety, check);
        match verdict {
            Some((Action::Block, cats)) => {
                for e in externals {
                    note(
                        safety,
                        Check::skipped(
                            "moderation",
                            "input",
                            format!("external:{}", e.name),
                            "blocked by an earlier check",
                        ),
                    );
                }
                note_injection_skipped(safety, "blocked by an earlier check");
                return Err(SafetyError::ContentPolicy {
                    categories: cats,
                    param,
                    output: false,
                }
                .into());
            }
            Some((Action::Flag, _)) => flagged = true,
            _ => {}
        }
    }
    if !matches!(endpoint, Endpoint::Chat | Endpoint::Completions) {
        note_injection_skipped(safety, "not applicable to this endpoint");
    } else if !policy.injection {
        note_injection_skipped(safety, "disabled");
    } else {
        flagged |= judge_injection(policy, &injection, injection_param, safety)?;
    }
    if moderate && !externals.is_empty() {
        let all: Vec<&str> = texts.iter().map(|t| t.text).collect();
        flagged |= external::moderate(state, settings, policy, "input", &all, safety).await?;
    } else {
        for e in externals {
            note(
                safety,
                Check::skipped(
                    "moderation",
                    "input",
                    format!("external:{}", e.name),
                    "disabled",
                ),
            );
        }
    }
    Ok(flagged)
}

fn note_injection_skipped(safety: &mut SafetyLog, reason: &'static str) {
    note(
        safety,
        Check::skipped("injection", "input", "rules", reason),
    );
}

fn judge_injection(
    policy: &Policy,
    best: &injection::Verdict,
    param: Option<texts::Loc>,
    safety: &mut SafetyLog,
) -> Result<Flagged, ApiError> {
    let mut check = Check::ran("injection", "input", "rules");
    check.score = Some(round(best.score));
    for (f, s) in &best.families {
        check.scores.insert((*f).into(), round(*s));
    }
    if best.score < policy.injection_threshold {
        note(safety, check);
        return Ok(false);
    }
    let family = best.top().unwrap_or("unknown");
    check.fired = best
        .families
        .iter()
        .filter(|f| f.1 >= 0.3)
        .map(|f| f.0.to_owned())
        .collect();
    check.action = action_name(policy.injection_action).into();
    check.param = param.map(|l| l.param());
    note(safety, check);
    match policy.injection_action {
        Action::Block => Err(SafetyError::Injection {
            family,
            score: round(best.score),
            param: param.map(|l| l.param()),
        }
        .into()),
        Action::Flag => Ok(true),
        Action::Log => Ok(false),
    }
}

/// Moderation of a non-streamed answer (`body` as `upstream` sent it).
pub async fn check_output(
    state: &AppState,
    settings: &Settings,
    policy: &Policy,
    body: &[u8],
    upstream: &str,
    safety: &mut SafetyLog,
) -> Result<Flagged, ApiError> {
    if !policy.output_moderation {
        note(
            safety,
            Check::skipped("moderation", "output", "builtin", "disabled"),
        );
        return Ok(false);
    }
    let mut text = String::new();
    if !texts::response(body, &mut text) {
        // Not JSON: nothing can be read, so nothing is let through unread.
        return Err(crate::error::UpstreamError::BadResponse(upstream.to_owned()).into());
    }
    check_output_text(state, settings, policy, &[&text], safety).await
}

/// Moderation of an answer's text, gathered already.
pub async fn check_output_text(
    state: &AppState,
    settings: &Settings,
    policy: &Policy,
    texts: &[&str],
    safety: &mut SafetyLog,
) -> Result<Flagged, ApiError> {
    if texts.iter().all(|t| t.is_empty()) {
        note(
            safety,
            Check::skipped("moderation", "output", "builtin", "no text in the answer"),
        );
        return Ok(false);
    }
    // Each text (a choice) on its own: one's phrase is not read on into
    // the next.
    let moderator = state.safety.moderator().await?;
    let mut scores = Scores::default();
    for t in texts {
        scores.merge(&moderator.scan(t));
    }
    let (check, verdict) = judge_scores(
        Check::ran("moderation", "output", "builtin"),
        &scores,
        &[],
        settings,
        policy,
    );
    note(safety, check);
    let mut flagged = false;
    match verdict {
        Some((Action::Block, cats)) => {
            return Err(SafetyError::ContentPolicy {
                categories: cats,
                param: None,
                output: true,
            }
            .into())
        }
        Some((Action::Flag, _)) => flagged = true,
        _ => {}
    }
    if !settings.safety.external.is_empty() {
        flagged |= external::moderate(state, settings, policy, "output", texts, safety).await?;
    }
    Ok(flagged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_with_a_reason_of_its_own_is_not_generic() {
        let fixed = SafetyLog {
            checks: vec![Check::skipped("moderation", "input", "builtin", "disabled")],
        };
        assert!(fixed.is_generic());
        let own = SafetyLog {
            checks: vec![Check::skipped(
                "moderation",
                "input",
                "x",
                format!("{} of 7", 3),
            )],
        };
        assert!(!own.is_generic());
    }
}
