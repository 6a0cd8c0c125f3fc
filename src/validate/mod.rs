//! Request validation: each `/v1` body against its endpoint's JSON Schema
//! (`schemas/*.json`, compiled once at start), then the configurable size
//! limits. Every refusal is a 400 whose `param` names the field.

pub mod json;
mod limits;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::proxy::Endpoint;

/// Bounds on what one request may carry (the body's byte size is
/// `limits.max_body_bytes`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ValidationConfig {
    /// Check bodies against the schemas and the limits below. The strict
    /// JSON rules (no duplicate keys, `max_depth`) apply even when off.
    pub enabled: bool,
    pub max_messages: u32,
    /// Characters in one message (all its text: content parts, names, tool arguments).
    pub max_message_chars: u64,
    /// Characters in all the text of a request together.
    pub max_total_chars: u64,
    /// Largest `max_tokens` / `max_completion_tokens`.
    pub max_tokens: u64,
    /// Largest `n` (choices per request).
    pub max_n: u32,
    /// Deepest nesting of arrays and objects.
    pub max_depth: u32,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        ValidationConfig {
            enabled: true,
            max_messages: 1024,
            max_message_chars: 1_000_000,
            max_total_chars: 4_000_000,
            max_tokens: 1_000_000,
            max_n: 16,
            max_depth: 32,
        }
    }
}

impl ValidationConfig {
    pub fn check(&self) -> Result<(), String> {
        if self.max_depth < 2 {
            return Err("validation.max_depth must be at least 2".into());
        }
        if self.max_n == 0 || self.max_messages == 0 || self.max_message_chars == 0 {
            return Err(
                "validation.max_n, max_messages and max_message_chars must be at least 1".into(),
            );
        }
        Ok(())
    }
}

/// The compiled schemas, one per endpoint.
pub struct Validators {
    chat: jsonschema::Validator,
    completions: jsonschema::Validator,
    embeddings: jsonschema::Validator,
    moderations: jsonschema::Validator,
}

const SCHEMAS: [(&str, &str); 4] = [
    (
        "chat_completions",
        include_str!("../../schemas/chat_completions.json"),
    ),
    (
        "completions",
        include_str!("../../schemas/completions.json"),
    ),
    ("embeddings", include_str!("../../schemas/embeddings.json")),
    (
        "moderations",
        include_str!("../../schemas/moderations.json"),
    ),
];

impl Validators {
    pub fn new() -> Result<Validators, String> {
        let mut compiled = Vec::with_capacity(SCHEMAS.len());
        for (name, text) in SCHEMAS {
            let doc: Value =
                serde_json::from_str(text).map_err(|e| format!("schema {name}: {e}"))?;
            compiled
                .push(jsonschema::validator_for(&doc).map_err(|e| format!("schema {name}: {e}"))?);
        }
        let mut it = compiled.into_iter();
        let mut next = || it.next().ok_or_else(|| "schemas missing".to_owned());
        Ok(Validators {
            chat: next()?,
            completions: next()?,
            embeddings: next()?,
            moderations: next()?,
        })
    }

    fn for_endpoint(&self, e: Endpoint) -> &jsonschema::Validator {
        match e {
            Endpoint::Chat => &self.chat,
            Endpoint::Completions => &self.completions,
            Endpoint::Embeddings => &self.embeddings,
            Endpoint::Moderations => &self.moderations,
        }
    }

    /// Schema, then limits. `doc` is the already-parsed body; it is moved
    /// into a `Value` for the validator and back, never copied.
    pub fn check(
        &self,
        endpoint: Endpoint,
        doc: &mut Map<String, Value>,
        cfg: &ValidationConfig,
    ) -> Result<(), ApiError> {
        let whole = Value::Object(std::mem::take(doc));
        let verdict = self
            .for_endpoint(endpoint)
            .validate(&whole)
            .map_err(|e| schema_error(&e));
        if let Value::Object(m) = whole {
            *doc = m;
        }
        verdict?;
        limits::check(endpoint, doc, cfg)
    }
}

fn schema_error(e: &jsonschema::ValidationError<'_>) -> ApiError {
    let param = pointer_to_param(e.instance_path());
    let what = e.masked().to_string();
    if param.is_empty() {
        ApiError::invalid(format!("Invalid request body: {what}."), None)
    } else {
        ApiError::invalid(
            format!("Invalid value for '{param}': {what}."),
            Some(&param),
        )
    }
}

/// `messages[3].content` from the error's instance location.
fn pointer_to_param(loc: &jsonschema::paths::Location) -> String {
    let mut out = String::new();
    for seg in loc.iter() {
        match seg {
            jsonschema::paths::LocationSegment::Property(p) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&p);
            }
            jsonschema::paths::LocationSegment::Index(i) => {
                out.push_str(&format!("[{i}]"));
            }
        }
    }
    out
}
