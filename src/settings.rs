//! Settings an admin can change at runtime: the config file's values, with
//! whatever the admin API stored on top. Applied on the next request.

use serde::{Deserialize, Serialize};

use crate::config::{
    AccessConfig, Config, HealthConfig, Limits, LogsConfig, NotifyConfig, RouteConfig,
    StatusConfig, UpstreamTimeouts,
};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Serve the built-in `assisters-echo` model.
    pub echo_model: bool,
    pub limits: Limits,
    pub access: AccessConfig,
    pub logs: LogsConfig,
    pub validation: crate::validate::ValidationConfig,
    pub safety: crate::safety::SafetyConfig,
    /// `connect_timeout` and `pool_max_idle_per_host` take effect at the next start.
    pub upstream_defaults: UpstreamTimeouts,
    /// Failover order per model; a change reroutes at once.
    pub routes: Vec<RouteConfig>,
    pub health: HealthConfig,
    pub status: StatusConfig,
    pub notify: NotifyConfig,
}

impl Settings {
    pub fn from_config(c: &Config) -> Settings {
        Settings {
            echo_model: c.echo_model,
            limits: c.limits.clone(),
            access: c.access.clone(),
            logs: c.logs.clone(),
            validation: c.validation.clone(),
            safety: c.safety.clone(),
            upstream_defaults: c.upstream_defaults.clone(),
            routes: c.routes.clone(),
            health: c.health.clone(),
            status: c.status.clone(),
            notify: c.notify.clone(),
        }
    }

    /// Applies a JSON merge patch (RFC 7396) and validates the result.
    pub fn patched(&self, patch: &serde_json::Value) -> Result<Settings, String> {
        let mut doc = serde_json::to_value(self).map_err(|e| e.to_string())?;
        merge(&mut doc, patch);
        let next: Settings =
            serde_json::from_value(doc).map_err(|e| format!("invalid settings: {e}"))?;
        let probe = Config {
            limits: next.limits.clone(),
            access: next.access.clone(),
            validation: next.validation.clone(),
            safety: next.safety.clone(),
            upstream_defaults: next.upstream_defaults.clone(),
            logs: next.logs.clone(),
            routes: next.routes.clone(),
            health: next.health.clone(),
            status: next.status.clone(),
            notify: next.notify.clone(),
            ..Config::default()
        };
        probe.validate().map_err(|e| e.to_string())?;
        Ok(next)
    }

    /// Top-level sections as stored rows: a section the admin changed is
    /// stored whole; one never changed is not stored, so later edits of the
    /// config file still apply to it.
    pub fn rows(&self) -> Vec<(&'static str, serde_json::Value)> {
        vec![
            ("echo_model", serde_json::json!(self.echo_model)),
            (
                "limits",
                serde_json::to_value(&self.limits).unwrap_or_default(),
            ),
            (
                "access",
                serde_json::to_value(&self.access).unwrap_or_default(),
            ),
            ("logs", serde_json::to_value(&self.logs).unwrap_or_default()),
            (
                "validation",
                serde_json::to_value(&self.validation).unwrap_or_default(),
            ),
            (
                "safety",
                serde_json::to_value(&self.safety).unwrap_or_default(),
            ),
            (
                "upstream_defaults",
                serde_json::to_value(&self.upstream_defaults).unwrap_or_default(),
            ),
            (
                "routes",
                serde_json::to_value(&self.routes).unwrap_or_default(),
            ),
            (
                "health",
                serde_json::to_value(&self.health).unwrap_or_default(),
            ),
            (
                "status",
                serde_json::to_value(&self.status).unwrap_or_default(),
            ),
            (
                "notify",
                serde_json::to_value(&self.notify).unwrap_or_default(),
            ),
        ]
    }
}

/// RFC 7396: `null` removes a member (a map's entry, such as one
/// moderation category's action; a setting then takes its default).
fn merge(doc: &mut serde_json::Value, patch: &serde_json::Value) {
    match (doc, patch) {
        (serde_json::Value::Object(d), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    d.remove(k);
                    continue;
                }
                match d.get_mut(k) {
                    Some(slot) if v.is_object() => merge(slot, v),
                    _ => {
                        d.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (d, p) => *d = p.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_removes_a_map_entry_and_resets_a_setting() {
        let s = Settings::from_config(&Config::default());
        let s = s
            .patched(
                &serde_json::json!({"safety": {"moderation": {"actions": {"harassment": "flag"}}},
                                         "limits": {"max_body_bytes": 1000}}),
            )
            .unwrap();
        let v = serde_json::to_value(&s.safety).unwrap();
        assert_eq!(v["moderation"]["actions"]["harassment"], "flag");
        let s = s
            .patched(
                &serde_json::json!({"safety": {"moderation": {"actions": {"harassment": null}}},
                                         "limits": {"max_body_bytes": null}}),
            )
            .unwrap();
        let v = serde_json::to_value(&s.safety).unwrap();
        assert!(
            v["moderation"]["actions"].get("harassment").is_none(),
            "{v}"
        );
        assert_eq!(
            s.limits.max_body_bytes,
            Settings::from_config(&Config::default())
                .limits
                .max_body_bytes
        );
    }

    #[test]
    fn patch_merges_and_validates() {
        let s = Settings::from_config(&Config::default());
        let p = s.patched(&serde_json::json!({"limits": {"max_body_bytes": 1000}}));
        assert!(
            matches!(&p, Ok(n) if n.limits.max_body_bytes == 1000 && n.echo_model),
            "{p:?}"
        );
        assert!(s
            .patched(&serde_json::json!({"limits": {"max_body_bytes": 0}}))
            .is_err());
        assert!(s.patched(&serde_json::json!({"nope": 1})).is_err());
        assert!(s
            .patched(&serde_json::json!({"upstream_defaults": {"total_timeout": "soon"}}))
            .is_err());
    }
}
