//! Typed configuration: built-in defaults, then a TOML file, then `ASSISTERS_*`
//! environment variables, then command-line flags; validated once, unknown keys
//! rejected at every layer.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};

mod ops;
use figment::Figment;
pub use ops::{
    HealthConfig, NotifyConfig, RouteConfig, SmtpConfig, SmtpSecurity, StatusConfig, TlsConfig,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the store, keys and runtime files live. Defaults to the
    /// platform's data folder (e.g. `~/.local/share/assisters`).
    pub data_dir: Option<PathBuf>,
    /// The OpenAI-compatible API listener.
    pub listen: SocketAddr,
    /// The admin API (and dashboard) listener. Loopback unless
    /// `admin_allow_remote` is set, because it grants full control.
    pub admin_listen: SocketAddr,
    pub admin_allow_remote: bool,
    /// Serve the built-in `assisters-echo` model (no network needed).
    pub echo_model: bool,
    /// How long in-flight requests and streams may run after SIGINT/SIGTERM.
    #[serde(with = "duration_str")]
    pub shutdown_grace: Duration,
    pub limits: Limits,
    pub access: AccessConfig,
    pub logs: LogsConfig,
    pub validation: crate::validate::ValidationConfig,
    pub safety: crate::safety::SafetyConfig,
    pub upstream_defaults: UpstreamTimeouts,
    pub edge: EdgeConfig,
    /// Upstreams declared in the file; they are read-only in the admin API.
    pub upstreams: Vec<UpstreamConfig>,
    /// Per model, the primary upstream and its ordered fallbacks. A model
    /// without a route fails over across every upstream serving it, in
    /// declaration order.
    pub routes: Vec<RouteConfig>,
    /// Active health checks and the circuit breaker per upstream.
    pub health: HealthConfig,
    /// HTTPS on the gateway listener; verification of upstream certificates.
    pub tls: TlsConfig,
    /// The status page and its uptime sampling.
    pub status: StatusConfig,
    /// How subscribers to the status page are told about incidents.
    pub notify: NotifyConfig,
    /// `tracing` filter, e.g. `info` or `assisters=debug`.
    pub log_level: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: u64,
    /// Largest upstream response the gateway buffers for a non-streaming call.
    pub max_response_bytes: u64,
    /// Completion tokens reserved against tokens/min when a request sets no
    /// `max_tokens`; settled against the real usage afterwards.
    pub default_max_tokens: u32,
    /// After a client leaves a stream, how long the gateway keeps reading the
    /// upstream for its usage report, so the tokens are still charged.
    #[serde(with = "duration_str")]
    #[schema(value_type = String, example = "30s")]
    pub usage_drain_timeout: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// Keep request bodies (sealed with AES-256-GCM) in the request log.
    pub store_bodies: bool,
    /// What to redact from bodies before they are stored.
    pub redact: crate::logs::redact::RedactConfig,
    pub retention: Retention,
}

/// How long each kind of data is kept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    #[serde(with = "duration_str")]
    #[schema(value_type = String, example = "30days")]
    pub request_logs: Duration,
    #[serde(with = "duration_str")]
    #[schema(value_type = String, example = "90days")]
    pub usage: Duration,
    /// `forever` (default: kept for the life of the install) or a duration
    /// of at least a day. Pruning keeps the hash chain verifiable from an
    /// anchor (the last pruned entry's hash).
    #[serde(with = "duration_or_forever")]
    #[schema(value_type = String, example = "forever")]
    pub audit: Option<Duration>,
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            store_bodies: true,
            redact: Default::default(),
            retention: Retention::default(),
        }
    }
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            request_logs: Duration::from_secs(30 * 86_400),
            usage: Duration::from_secs(90 * 86_400),
            audit: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// Proxies (CIDRs) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    /// When non-empty, only these addresses (CIDRs) may call `/v1` at all.
    pub allowed_ips: Vec<String>,
    /// Failed authentications allowed per client address per minute.
    pub auth_failures_per_min: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamTimeouts {
    #[serde(with = "duration_str")]
    #[schema(value_type = String, example = "5s")]
    pub connect_timeout: Duration,
    /// Until the upstream's response headers arrive.
    #[serde(with = "duration_str")]
    #[schema(value_type = String, example = "60s")]
    pub first_byte_timeout: Duration,
    /// Whole request for non-streaming calls; longest stream for streaming ones.
    #[serde(with = "duration_str")]
    #[schema(value_type = String, example = "600s")]
    pub total_timeout: Duration,
    /// Longest silence between two chunks of a stream.
    #[serde(with = "duration_str")]
    #[schema(value_type = String, example = "60s")]
    pub stream_idle_timeout: Duration,
    pub pool_max_idle_per_host: usize,
}

/// How the gateway listener protects itself from slow, excessive or hostile
/// clients. Read at start.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeConfig {
    /// A client must send a request's headers within this time (408, close).
    #[serde(with = "duration_str")]
    pub header_read_timeout: Duration,
    /// Longest silence while a request body arrives (408, close).
    #[serde(with = "duration_str")]
    pub body_idle_timeout: Duration,
    /// Longest a whole request body may take to arrive (408, close): a byte
    /// every few seconds passed the idle timeout for ever, holding one of
    /// `max_in_flight` places.
    #[serde(with = "duration_str")]
    pub body_read_timeout: Duration,
    /// Open connections on the gateway listener, in all.
    pub max_connections: u32,
    /// Open connections from one client address.
    pub max_connections_per_ip: u32,
    /// `/v1` requests being handled at once; beyond, new ones get 503 with
    /// `Retry-After` instead of queueing.
    pub max_in_flight: u32,
    /// Largest request head (request line and headers), HTTP/1.
    pub max_header_bytes: usize,
    /// HTTP/2 streams per connection.
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2 flow-control windows (bytes): per stream and per connection.
    pub h2_stream_window: u32,
    pub h2_connection_window: u32,
    /// An HTTP/2 connection with no open stream for this long is closed
    /// (GOAWAY). HTTP/1 keep-alive is bounded by `header_read_timeout`.
    #[serde(with = "duration_str")]
    pub h2_idle_timeout: Duration,
    /// Bytes of a stream buffered for a client that stops reading, after
    /// which the stream is cancelled and the upstream call dropped.
    pub max_stream_buffer_bytes: usize,
    /// Bytes the request log's queue may hold (bodies included) while its
    /// writer is behind, a stalled disk say; at 90 % new `/v1` requests are
    /// shed (503), and a finished request waits for room.
    pub max_log_queue_bytes: u64,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            header_read_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(120),
            max_connections: 4096,
            max_connections_per_ip: 256,
            max_in_flight: 1024,
            max_header_bytes: 32 * 1024,
            h2_max_concurrent_streams: 128,
            h2_stream_window: 1024 * 1024,
            h2_connection_window: 4 * 1024 * 1024,
            h2_idle_timeout: Duration::from_secs(60),
            max_stream_buffer_bytes: 1024 * 1024,
            max_log_queue_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub name: String,
    pub base_url: String,
    /// Name of an environment variable holding the upstream's API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Models served; empty means discover them from `GET {base_url}/models`.
    #[serde(default)]
    pub models: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8788)),
            admin_allow_remote: false,
            echo_model: true,
            shutdown_grace: Duration::from_secs(30),
            limits: Limits::default(),
            access: AccessConfig {
                auth_failures_per_min: 30,
                ..AccessConfig::default()
            },
            logs: LogsConfig::default(),
            validation: Default::default(),
            safety: Default::default(),
            upstream_defaults: UpstreamTimeouts::default(),
            edge: EdgeConfig::default(),
            upstreams: Vec::new(),
            routes: Vec::new(),
            health: HealthConfig::default(),
            tls: TlsConfig::default(),
            status: StatusConfig::default(),
            notify: NotifyConfig::default(),
            log_level: "info".to_owned(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 8 * 1024 * 1024,
            max_response_bytes: 64 * 1024 * 1024,
            default_max_tokens: 1024,
            usage_drain_timeout: Duration::from_secs(30),
        }
    }
}

impl Default for UpstreamTimeouts {
    fn default() -> Self {
        UpstreamTimeouts {
            connect_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(120),
            total_timeout: Duration::from_secs(600),
            stream_idle_timeout: Duration::from_secs(120),
            pool_max_idle_per_host: 256,
        }
    }
}

/// Values given on the command line; `None` leaves the lower layers alone.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_self_signed: bool,
}

/// Environment variables under the `ASSISTERS_` prefix that are not config keys.
const NON_CONFIG_ENV: &[&str] = &["MASTER_KEY", "CONFIG"];

impl Config {
    /// Loads the layers in order and validates the result.
    /// The file layer alone, from text: defaults, then this TOML, validated
    /// (what the fuzzer and `config check`-style callers need).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Invalid(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        fig = fig.merge(
            Env::prefixed("ASSISTERS_")
                .ignore(NON_CONFIG_ENV)
                .split("__"),
        );
        let mut config: Config = fig.extract().map_err(Box::new)?;
        if let Some(d) = &overrides.data_dir {
            config.data_dir = Some(d.clone());
        }
        if let Some(a) = overrides.listen {
            config.listen = a;
        }
        if let Some(a) = overrides.admin_listen {
            config.admin_listen = a;
        }
        if overrides.tls_cert.is_some() || overrides.tls_key.is_some() {
            config.tls.cert = overrides.tls_cert.clone();
            config.tls.key = overrides.tls_key.clone();
            config.tls.self_signed = false;
        }
        if overrides.tls_self_signed {
            config.tls.self_signed = true;
            // Flags win over the file and env; both kinds of flag together
            // are still refused by `validate`.
            if overrides.tls_cert.is_none() && overrides.tls_key.is_none() {
                config.tls.cert = None;
                config.tls.key = None;
            }
        }
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if !self.admin_listen.ip().is_loopback() && !self.admin_allow_remote {
            return bad(format!(
                "admin_listen {} is not a loopback address; the admin API grants full control, \
                 so set admin_allow_remote = true to expose it deliberately",
                self.admin_listen
            ));
        }
        if self.limits.max_body_bytes == 0 {
            return bad("limits.max_body_bytes must be greater than 0".into());
        }
        for (what, list) in [
            ("access.trusted_proxies", &self.access.trusted_proxies),
            ("access.allowed_ips", &self.access.allowed_ips),
        ] {
            for entry in list {
                crate::access::parse_cidr(entry)
                    .map_err(|e| ConfigError::Invalid(format!("{what}: {e}")))?;
            }
        }
        if self.access.auth_failures_per_min == 0 {
            return bad("access.auth_failures_per_min must be greater than 0".into());
        }
        self.validation.check().map_err(ConfigError::Invalid)?;
        self.safety.check().map_err(ConfigError::Invalid)?;
        let e = &self.edge;
        if e.header_read_timeout.is_zero()
            || e.body_idle_timeout.is_zero()
            || e.body_read_timeout.is_zero()
            || e.h2_idle_timeout.is_zero()
        {
            return bad("edge timeouts must be greater than 0".into());
        }
        if e.max_connections == 0 || e.max_connections_per_ip == 0 || e.max_in_flight == 0 {
            return bad("edge.max_connections, max_connections_per_ip and max_in_flight must be greater than 0".into());
        }
        // Counted in KiB by a semaphore of at most u32::MAX permits.
        if e.max_log_queue_bytes < 1 << 20 || e.max_log_queue_bytes >> 10 > u64::from(u32::MAX) {
            return bad(
                "edge.max_log_queue_bytes must be at least 1048576 (1 MiB) and below 4 TiB".into(),
            );
        }
        if e.max_header_bytes < 8192 || u32::try_from(e.max_header_bytes).is_err() {
            return bad(
                "edge.max_header_bytes must be at least 8192 and at most 4294967295".into(),
            );
        }
        // HTTP/2's largest window (RFC 9113); above it h2 panics on every
        // connection.
        const MAX_WINDOW: u64 = (1 << 31) - 1;
        if u64::from(e.h2_stream_window) > MAX_WINDOW
            || u64::from(e.h2_connection_window) > MAX_WINDOW
        {
            return bad(format!(
                "edge.h2_stream_window and h2_connection_window must be at most {MAX_WINDOW}"
            ));
        }
        let r = &self.logs.retention;
        for (name, d) in [
            ("request_logs", Some(r.request_logs)),
            ("usage", Some(r.usage)),
            ("audit", r.audit),
        ] {
            if d.is_some_and(|d| d.is_zero()) {
                return bad(format!("logs.retention.{name} must be greater than 0"));
            }
        }
        if r.audit.is_some_and(|d| d < Duration::from_secs(86_400)) {
            return bad("logs.retention.audit must be forever or at least a day".into());
        }
        let t = &self.upstream_defaults;
        for (name, d) in [
            ("connect_timeout", t.connect_timeout),
            ("first_byte_timeout", t.first_byte_timeout),
            ("total_timeout", t.total_timeout),
            ("stream_idle_timeout", t.stream_idle_timeout),
        ] {
            if d.is_zero() {
                return bad(format!("upstream_defaults.{name} must be greater than 0"));
            }
        }
        let mut names = std::collections::HashSet::new();
        for u in &self.upstreams {
            crate::proxy::upstream::validate_name(&u.name).map_err(ConfigError::Invalid)?;
            crate::proxy::upstream::parse_base_url(&u.base_url)
                .map_err(|e| ConfigError::Invalid(format!("upstream {}: {e}", u.name)))?;
            if !names.insert(u.name.as_str()) {
                return bad(format!("upstream {} is declared twice", u.name));
            }
        }
        ops::validate_tls(&self.tls)?;
        self.validate_runtime()
    }

    /// The checks on what `Settings` may also change at runtime.
    pub fn validate_runtime(&self) -> Result<(), ConfigError> {
        ops::validate_runtime(self)
    }

    /// The data directory: configured, else the platform's data folder.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(default_data_dir)
    }
}

/// Whether `name` is one of the gateway's own variables (`ASSISTERS_*`, in
/// any case: Windows reads variable names so).
pub fn is_own_variable(name: &str) -> bool {
    name.get(..10)
        .is_some_and(|p| p.eq_ignore_ascii_case("ASSISTERS_"))
}

/// The secret in the environment variable `name`, as the settings name it
/// for an upstream, an external moderator or SMTP. The gateway's own
/// variables (`ASSISTERS_*`, the master key among them) are never read
/// this way: the settings can be changed at runtime and name any URL, and
/// the master key went out as a bearer token to wherever they pointed.
pub fn secret_env(name: &str) -> Option<String> {
    if is_own_variable(name) {
        tracing::warn!(
            variable = name,
            "the gateway's own variables are never sent as credentials"
        );
        return None;
    }
    std::env::var(name).ok()
}

pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("assisters")
}

/// Durations written the human way (`30s`, `5m`, `1h 30m`).
pub mod duration_str {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Whole days, hours, minutes or seconds are written as one unit
    /// (`90days`, not humantime's `2months 29days 2h 52m 48s`, which
    /// counts a month as 30.44 days).
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }

    pub fn format(d: Duration) -> String {
        let secs = d.as_secs();
        if d.subsec_nanos() != 0 || secs == 0 {
            return humantime::format_duration(d).to_string();
        }
        for (unit, name) in [(86_400, "days"), (3_600, "h"), (60, "m")] {
            if secs.is_multiple_of(unit) {
                return format!("{}{name}", secs / unit);
            }
        }
        format!("{secs}s")
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        crate::timefmt::parse_duration_or(&s, r#"try "30s", "5m""#)
            .map_err(serde::de::Error::custom)
    }
}

/// An optional duration written `forever` when absent.
pub mod duration_or_forever {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::duration_str::serialize(d, s),
            None => s.serialize_str("forever"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = String::deserialize(d)?;
        if s == "forever" {
            return Ok(None);
        }
        crate::timefmt::parse_duration_or(&s, r#"try "forever", "365days""#)
            .map(Some)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window h2 cannot take is refused at start, not a panic per
    /// HTTP/2 connection.
    #[test]
    fn h2_windows_are_bounded() {
        let mut c = Config::default();
        assert!(c.validate().is_ok());
        c.edge.h2_connection_window = 4_000_000_000;
        assert!(c.validate().is_err());
    }

    /// The log queue's byte bound is counted in KiB by a semaphore: one it
    /// cannot hold, or one too small for a record with a body, is refused.
    #[test]
    fn the_log_queue_bound_is_one_the_queue_can_count() {
        let mut c = Config::default();
        for (bytes, ok) in [(1 << 20, true), ((1 << 20) - 1, false), (1 << 50, false)] {
            c.edge.max_log_queue_bytes = bytes;
            assert_eq!(c.validate().is_ok(), ok, "{bytes}");
        }
    }

    #[test]
    fn durations_are_written_in_one_unit() {
        let f = duration_str::format;
        assert_eq!(f(Duration::from_secs(90 * 86_400)), "90days");
        assert_eq!(f(Duration::from_secs(7_200)), "2h");
        assert_eq!(f(Duration::from_secs(90)), "90s");
        assert_eq!(f(Duration::from_millis(1500)), "1s 500ms");
        let back = humantime::parse_duration(&f(Duration::from_secs(86_400 + 60))).ok();
        assert_eq!(back, Some(Duration::from_secs(86_460)));
    }

    #[test]
    fn the_self_signed_flag_beats_certificate_files_in_the_file() {
        let dir = std::env::temp_dir().join(format!("assisters-tls-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("tls.toml");
        let _ = std::fs::write(&path, "[tls]\ncert = \"/x/c.pem\"\nkey = \"/x/k.pem\"\n");
        let flag = Overrides {
            tls_self_signed: true,
            ..Overrides::default()
        };
        let c = Config::load(Some(&path), &flag);
        assert!(
            matches!(&c, Ok(c) if c.tls.self_signed && c.tls.cert.is_none()),
            "{c:?}"
        );
        let both = Overrides {
            tls_cert: Some("/y/c.pem".into()),
            tls_key: Some("/y/k.pem".into()),
            ..flag
        };
        assert!(Config::load(Some(&path), &both).is_err());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let dir = std::env::temp_dir().join(format!("assisters-cfg-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("bad.toml");
        let _ = std::fs::write(&path, "listen = \"127.0.0.1:0\"\nlisten_port = 3\n");
        let err = Config::load(Some(&path), &Overrides::default());
        assert!(matches!(err, Err(ConfigError::Load(_))), "{err:?}");
        let _ = std::fs::write(&path, "[upstream_defaults]\nconnect_timeout = \"2s\"\n");
        let ok = Config::load(Some(&path), &Overrides::default());
        assert!(
            matches!(&ok, Ok(c) if c.upstream_defaults.connect_timeout == Duration::from_secs(2)),
            "{ok:?}"
        );
    }

    #[test]
    fn remote_admin_needs_opt_in() {
        let c = Config {
            admin_listen: SocketAddr::from(([0, 0, 0, 0], 8788)),
            ..Config::default()
        };
        assert!(c.validate().is_err());
        let c = Config {
            admin_allow_remote: true,
            ..c
        };
        assert!(c.validate().is_ok());
    }
}
