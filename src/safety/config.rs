//! The safety settings (global, runtime-editable) and the per-key switches
//! that override them, resolved into one [`Policy`] per request.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::moderation::Category;

/// What happens when a check fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Refuse the request (input) or withhold the answer (output).
    Block,
    /// Let it pass, mark the record as flagged and tell the client in the
    /// `x-assisters-safety` header.
    Flag,
    /// Let it pass and only record the scores.
    Log,
}

/// When an external moderator cannot be reached or times out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Go on without it (recorded as skipped).
    Open,
    /// Refuse the request with 503 `moderation_unavailable`.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExternalKind {
    /// An OpenAI-compatible `POST …/moderations` endpoint at `url`.
    Openai,
    /// A Llama-Guard-style chat model on a configured upstream, answering
    /// `safe` or `unsafe` and a line of `S1,S10…` codes.
    LlamaGuard,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExternalModerator {
    pub name: String,
    pub kind: ExternalKind,
    /// `openai`: the full moderations URL, e.g. `https://api.openai.com/v1/moderations`.
    #[serde(default)]
    pub url: Option<String>,
    /// `openai`: environment variable holding the bearer key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// `llama_guard`: the upstream (by name) serving the model.
    #[serde(default)]
    pub upstream: Option<String>,
    /// The model to ask (`llama_guard`: required; `openai`: optional).
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default = "default_timeout", with = "crate::config::duration_str")]
    #[schema(value_type = String, example = "2s")]
    pub timeout: Duration,
    #[serde(default = "default_fail")]
    pub fail: FailMode,
}

fn default_timeout() -> Duration {
    Duration::from_secs(2)
}

fn default_fail() -> FailMode {
    FailMode::Open
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ModerationConfig {
    /// Moderate every text the model will read (messages, tool arguments, prompts, inputs).
    pub input: bool,
    /// Moderate what the model says, streams included.
    pub output: bool,
    /// A category is flagged at this score (0–1).
    pub threshold: f32,
    /// The action for categories not listed in `actions`.
    pub default_action: Action,
    /// Per-category actions, e.g. `{"harassment": "flag"}`.
    #[schema(value_type = BTreeMap<String, Action>)]
    pub actions: BTreeMap<Category, Action>,
    /// Characters of streamed text the gateway may hold back at most while
    /// a phrase could still be completing (bounded latency).
    pub stream_hold_back_chars: u32,
}

impl Default for ModerationConfig {
    fn default() -> Self {
        ModerationConfig {
            input: true,
            output: true,
            threshold: 0.5,
            default_action: Action::Block,
            actions: BTreeMap::new(),
            stream_hold_back_chars: 256,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct InjectionConfig {
    pub enabled: bool,
    /// A prompt scoring at least this (0–1) fires.
    pub threshold: f32,
    pub action: Action,
}

impl Default for InjectionConfig {
    fn default() -> Self {
        InjectionConfig {
            enabled: true,
            threshold: 0.5,
            action: Action::Block,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SafetyConfig {
    pub moderation: ModerationConfig,
    pub injection: InjectionConfig,
    /// External moderators, asked besides the built-in one (input, non-stream
    /// output and `/v1/moderations`).
    pub external: Vec<ExternalModerator>,
}

impl SafetyConfig {
    pub fn check(&self) -> Result<(), String> {
        for (what, t) in [
            ("safety.moderation.threshold", self.moderation.threshold),
            ("safety.injection.threshold", self.injection.threshold),
        ] {
            if !(0.0..=1.0).contains(&t) || t == 0.0 {
                return Err(format!("{what} must be above 0 and at most 1"));
            }
        }
        let mut names = std::collections::HashSet::new();
        for e in &self.external {
            if e.api_key_env
                .as_deref()
                .is_some_and(crate::config::is_own_variable)
            {
                return Err(format!(
                    "safety.external: {}'s api_key_env may not name one of the gateway's own \
                     ASSISTERS_* variables",
                    e.name
                ));
            }
            if !names.insert(e.name.as_str()) {
                return Err(format!("safety.external: {} is declared twice", e.name));
            }
            match e.kind {
                ExternalKind::Openai => {
                    let url = e.url.as_deref().unwrap_or("");
                    url.parse::<http::Uri>()
                        .ok()
                        .filter(|u| u.scheme().is_some() && u.host().is_some())
                        .ok_or_else(|| {
                            format!("safety.external {}: `url` must be an http(s) URL", e.name)
                        })?;
                }
                ExternalKind::LlamaGuard => {
                    if e.upstream.is_none() || e.model.is_none() {
                        return Err(format!(
                            "safety.external {}: llama_guard needs `upstream` and `model`",
                            e.name
                        ));
                    }
                }
            }
            if e.timeout.is_zero() {
                return Err(format!(
                    "safety.external {}: timeout must be above 0",
                    e.name
                ));
            }
        }
        Ok(())
    }
}

/// A key's own safety switches (in its `overrides.safety`); absent fields
/// keep the global settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeySafety {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_moderation: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_moderation: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moderation_action: Option<Action>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injection: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injection_threshold: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injection_action: Option<Action>,
}

impl KeySafety {
    pub fn check(&self) -> Result<(), String> {
        if let Some(t) = self.injection_threshold {
            if !(t > 0.0 && t <= 1.0) {
                return Err("safety.injection_threshold must be above 0 and at most 1".into());
            }
        }
        Ok(())
    }
}

/// The switches in force for one request: global settings, key on top.
#[derive(Debug, Clone)]
pub struct Policy {
    pub input_moderation: bool,
    pub output_moderation: bool,
    pub moderation_threshold: f32,
    /// Replaces every category's action when the key sets one.
    pub moderation_action: Option<Action>,
    pub injection: bool,
    pub injection_threshold: f32,
    pub injection_action: Action,
}

impl Policy {
    pub fn resolve(global: &SafetyConfig, key: Option<&KeySafety>) -> Policy {
        let d = KeySafety::default();
        let k = key.unwrap_or(&d);
        Policy {
            input_moderation: k.input_moderation.unwrap_or(global.moderation.input),
            output_moderation: k.output_moderation.unwrap_or(global.moderation.output),
            moderation_threshold: global.moderation.threshold,
            moderation_action: k.moderation_action,
            injection: k.injection.unwrap_or(global.injection.enabled),
            injection_threshold: k.injection_threshold.unwrap_or(global.injection.threshold),
            injection_action: k.injection_action.unwrap_or(global.injection.action),
        }
    }

    /// The action for a fired category.
    pub fn action_for(&self, global: &ModerationConfig, c: Category) -> Action {
        self.moderation_action
            .or_else(|| global.actions.get(&c).copied())
            .unwrap_or(global.default_action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_external_moderator_may_not_take_the_gateways_own_variables() {
        let with = |var: &str| -> SafetyConfig {
            serde_json::from_value(serde_json::json!({"external": [
                {"name": "x", "kind": "openai", "url": "http://127.0.0.1:1/v1/moderations", "api_key_env": var}
            ]}))
            .unwrap()
        };
        assert!(with("OPENAI_API_KEY").check().is_ok());
        let e = with("ASSISTERS_MASTER_KEY").check().unwrap_err();
        assert!(e.contains("ASSISTERS_"), "{e}");
        assert!(with("assisters_master_key").check().is_err());
    }
}
