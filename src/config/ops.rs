//! The operational sections of the config: failover routes, health checks,
//! TLS, the status page and its notifications (types, defaults, checks).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{duration_str, Config, ConfigError};

/// One model's upstreams: the first is the primary, the rest are tried in order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub model: String,
    /// Upstream names, primary first.
    pub upstreams: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// How often every upstream is probed with `GET {base_url}/models`.
    #[serde(with = "duration_str")]
    #[schema(value_type = String, example = "15s")]
    pub interval: Duration,
    #[serde(with = "duration_str")]
    #[schema(value_type = String, example = "5s")]
    pub timeout: Duration,
    /// Consecutive failures (requests or probes) that open the circuit.
    pub failure_threshold: u32,
    /// How long an open circuit keeps requests away before one is let through
    /// as a trial (a successful probe closes it earlier).
    #[serde(with = "duration_str")]
    #[schema(value_type = String, example = "30s")]
    pub open_for: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(5),
            failure_threshold: 3,
            open_for: Duration::from_secs(30),
        }
    }
}

/// Start-time only: certificate files are watched and reloaded, but turning
/// TLS on or off needs a restart.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain for the gateway listener (with `key`).
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// Generate a self-signed certificate on first start and keep it in the
    /// data directory.
    pub self_signed: bool,
    /// Extra host names or addresses for the self-signed certificate
    /// (`localhost`, `127.0.0.1` and `::1` are always in it).
    pub self_signed_names: Vec<String>,
    /// TLS 1.3 only unless this is set.
    pub allow_tls12: bool,
    /// How often the certificate files are checked for changes.
    #[serde(with = "duration_str")]
    pub reload_interval: Duration,
    /// PEM bundle of extra CAs trusted for upstream (and webhook) calls, on
    /// top of the Mozilla roots.
    pub upstream_ca_file: Option<PathBuf>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: None,
            key: None,
            self_signed: false,
            self_signed_names: Vec::new(),
            allow_tls12: false,
            reload_interval: Duration::from_secs(10),
            upstream_ca_file: None,
        }
    }
}

impl TlsConfig {
    pub fn enabled(&self) -> bool {
        self.self_signed || self.cert.is_some()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StatusConfig {
    /// Serve `/status` and `/status/summary.json` on the gateway listener
    /// without a key. The admin API shows the same data either way.
    pub public: bool,
    /// The page's title.
    pub name: String,
    /// The page's public address, shown in `summary.json` and notifications.
    pub url: Option<String>,
    /// How often component states are derived and uptime is recorded.
    #[serde(with = "duration_str")]
    #[schema(value_type = String, example = "30s")]
    pub sample_interval: Duration,
    /// Open an incident when a component goes down, resolve it on recovery.
    pub auto_incidents: bool,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            public: true,
            name: "Assisters Gateway".to_owned(),
            url: None,
            sample_interval: Duration::from_secs(30),
            auto_incidents: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Outgoing mail for e-mail subscribers; without it they get nothing.
    pub smtp: Option<SmtpConfig>,
    /// Deliveries tried per webhook or e-mail before giving up.
    pub attempts: u32,
    /// Wait before the first retry; doubled each time.
    #[serde(with = "duration_str")]
    #[schema(value_type = String, example = "2s")]
    pub retry_base: Duration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            smtp: None,
            attempts: 5,
            retry_base: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    /// Default: 465 with `tls`, 587 with `starttls`, 25 with `none`.
    #[serde(default)]
    pub port: Option<u16>,
    /// `starttls` (default), `tls` (implicit, port 465) or `none` (local relays only).
    #[serde(default)]
    pub security: SmtpSecurity,
    #[serde(default)]
    pub username: Option<String>,
    /// Name of the environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// The sender, e.g. `Status <status@example.com>`.
    pub from: String,
}

impl SmtpConfig {
    /// The port set, or the usual one for the security mode (implicit TLS
    /// sent to the STARTTLS port failed every time).
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            SmtpSecurity::Tls => 465,
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::None => 25,
        })
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    #[default]
    Starttls,
    Tls,
    None,
}

pub(super) fn validate_tls(t: &TlsConfig) -> Result<(), ConfigError> {
    let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
    if t.cert.is_some() != t.key.is_some() {
        return bad("tls.cert and tls.key go together (--tls-cert FILE --tls-key FILE)");
    }
    if t.cert.is_some() && t.self_signed {
        return bad("choose either certificate files (tls.cert, tls.key) or tls.self_signed");
    }
    if t.reload_interval.is_zero() {
        return bad("tls.reload_interval must be greater than 0");
    }
    Ok(())
}

pub(super) fn validate_runtime(c: &Config) -> Result<(), ConfigError> {
    let bad = |m: String| Err(ConfigError::Invalid(m));
    let h = &c.health;
    if h.interval.is_zero() || h.timeout.is_zero() || h.open_for.is_zero() {
        return bad(
            "health.interval, health.timeout and health.open_for must be greater than 0".into(),
        );
    }
    if h.failure_threshold == 0 {
        return bad("health.failure_threshold must be at least 1".into());
    }
    let mut models = std::collections::HashSet::new();
    for r in &c.routes {
        if r.model.is_empty() || r.upstreams.is_empty() {
            return bad("every route needs a model and at least one upstream".into());
        }
        if !models.insert(r.model.as_str()) {
            return bad(format!("model {} has two routes", r.model));
        }
        for u in &r.upstreams {
            crate::proxy::upstream::validate_name(u).map_err(ConfigError::Invalid)?;
        }
    }
    if c.status.sample_interval < Duration::from_millis(100) {
        return bad("status.sample_interval must be at least 100ms".into());
    }
    if c.status.name.trim().is_empty() {
        return bad("status.name must not be empty".into());
    }
    if let Some(url) = &c.status.url {
        crate::proxy::upstream::parse_base_url(url)
            .map_err(|e| ConfigError::Invalid(format!("status.url: {e}")))?;
    }
    if c.notify.attempts == 0 {
        return bad("notify.attempts must be at least 1".into());
    }
    if let Some(smtp) = &c.notify.smtp {
        if smtp.host.is_empty() {
            return bad("notify.smtp.host must not be empty".into());
        }
        smtp.from
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| ConfigError::Invalid(format!("notify.smtp.from: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smtp_port_follows_the_security_mode_unless_set() {
        let smtp = |security, port| SmtpConfig {
            host: "mail".into(),
            port,
            security,
            username: None,
            password_env: None,
            from: "s@example.com".into(),
        };
        assert_eq!(smtp(SmtpSecurity::Tls, None).port(), 465);
        assert_eq!(smtp(SmtpSecurity::Starttls, None).port(), 587);
        assert_eq!(smtp(SmtpSecurity::None, None).port(), 25);
        assert_eq!(smtp(SmtpSecurity::Tls, Some(2465)).port(), 2465);
    }
}
