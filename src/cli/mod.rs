//! The `assisters` command line: `serve`, and admin commands that go through
//! the running server's admin API.

mod client;
mod data;
mod eval;
mod output;
mod serve;
mod status;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use hyper::Method;
use serde_json::{json, Value};

pub use client::{AdminClient, ClientError};

#[derive(Debug, Parser)]
#[command(
    name = "assisters",
    version,
    about = "Self-hosted, OpenAI-compatible LLM API gateway"
)]
pub struct Cli {
    /// Data directory (store, keys, runtime files). Defaults to the platform's data folder.
    #[arg(long, global = true, env = "ASSISTERS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (API listener and admin listener).
    Serve(ServeArgs),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Manage rate-limit tiers.
    #[command(subcommand)]
    Tiers(TiersCmd),
    /// Read the request log.
    #[command(subcommand)]
    Logs(LogsCmd),
    /// Manage upstream model servers.
    #[command(subcommand)]
    Upstreams(UpstreamsCmd),
    /// Print a one-time sign-in link for the dashboard.
    Login,
    /// Print the admin API's OpenAPI document (no server needed).
    Openapi,
    /// Inspect the audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Show the components' states and the overall status.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Open, update and resolve status-page incidents.
    #[command(subcommand)]
    Incidents(status::IncidentsCmd),
    /// Schedule, start and complete maintenance windows.
    #[command(subcommand)]
    Maintenance(status::MaintenanceCmd),
    /// Manage who is notified of incidents and maintenance.
    #[command(subcommand)]
    Subscribers(status::SubscribersCmd),
    /// Show or reload the gateway listener's TLS certificate.
    #[command(subcommand)]
    Tls(status::TlsCmd),
    /// Usage rollups per key, model and day or hour; CSV / JSON Lines export.
    #[command(subcommand)]
    Usage(data::UsageCmd),
    /// The master key: status and rotation.
    #[command(subcommand)]
    Crypto(data::CryptoCmd),
    /// Measure the safety scanners on labelled JSON Lines (`text`, `label`).
    #[command(subcommand)]
    Eval(EvalCmd),
}

#[derive(Debug, Subcommand)]
pub enum EvalCmd {
    /// Prompt-injection detection: label 1 = injection, 0 = benign.
    Injection(EvalArgs),
    /// Built-in moderation: label 1 = flagged, 0 = clean.
    Moderation(EvalArgs),
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// JSON Lines files, each line `{"text": …, "label": 0|1}`.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The configuration file `serve` uses.
    #[arg(long, env = "ASSISTERS_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "ASSISTERS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Gateway API address (port 0 picks a free port).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Admin API address (loopback unless admin_allow_remote is set).
    #[arg(long)]
    pub admin_listen: Option<std::net::SocketAddr>,
    /// Serve the gateway API over HTTPS with this PEM certificate chain.
    #[arg(long, requires = "tls_key", conflicts_with = "tls_self_signed")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a self-signed certificate generated on first start.
    #[arg(long)]
    pub tls_self_signed: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Create a key; its secret is printed once.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        tier: Option<String>,
        /// dev, staging or prod.
        #[arg(long = "env")]
        environment: Option<String>,
        /// Lifetime, e.g. 30d or 12h.
        #[arg(long)]
        expires_in: Option<String>,
        /// Restrict the key to these models (repeatable).
        #[arg(long = "model")]
        models: Vec<String>,
        /// Allow browser use from this domain, e.g. example.com or *.example.com (repeatable).
        #[arg(long = "allowed-domain")]
        allowed_domains: Vec<String>,
        /// Allow use from this address or CIDR (repeatable).
        #[arg(long = "allowed-ip")]
        allowed_ips: Vec<String>,
        /// Override the tier's requests per minute.
        #[arg(long)]
        rpm: Option<u32>,
        /// Override the tier's tokens per minute.
        #[arg(long)]
        tpm: Option<u32>,
        #[arg(long)]
        json: bool,
    },
    /// Change a key; list flags replace the whole list.
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        tier: Option<String>,
        #[arg(long = "env")]
        environment: Option<String>,
        #[arg(long)]
        expires_in: Option<String>,
        #[arg(long = "model")]
        models: Vec<String>,
        #[arg(long = "allowed-domain")]
        allowed_domains: Vec<String>,
        /// Remove all allowed domains.
        #[arg(long, conflicts_with = "allowed_domains")]
        clear_allowed_domains: bool,
        #[arg(long = "allowed-ip")]
        allowed_ips: Vec<String>,
        /// Remove all allowed IPs.
        #[arg(long, conflicts_with = "allowed_ips")]
        clear_allowed_ips: bool,
        #[arg(long)]
        rpm: Option<u32>,
        #[arg(long)]
        tpm: Option<u32>,
        #[arg(long)]
        json: bool,
    },
    /// Issue a successor with the same settings; the old key works until the grace period ends.
    Rotate {
        id: String,
        /// How long the old key keeps working.
        #[arg(long, default_value = "24h")]
        grace: String,
        #[arg(long)]
        json: bool,
    },
    /// List keys.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one key.
    Get {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key; it fails from the next request on.
    Revoke {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum LogsCmd {
    /// List records, newest first.
    List {
        #[arg(long)]
        key: Option<String>,
        #[arg(long)]
        model: Option<String>,
        #[arg(long)]
        status: Option<u16>,
        /// Records with this id or sent with it as `x-request-id`.
        #[arg(long)]
        request_id: Option<String>,
        /// Only requests where a safety check took this action: block, flag or log.
        #[arg(long)]
        safety: Option<String>,
        /// RFC 3339 time, e.g. 2026-11-29T00:00:00Z.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Show one record; `--body` decrypts its stored request body (audited).
    Show {
        id: String,
        #[arg(long)]
        body: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TiersCmd {
    /// List tiers.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Create a tier.
    Create {
        name: String,
        #[arg(long)]
        rpm: u32,
        #[arg(long)]
        tpm: u32,
        #[arg(long)]
        max_streams: Option<u32>,
        #[arg(long)]
        daily_tokens: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Change a tier's numbers; applies to the next request of every key in it.
    Update {
        name: String,
        #[arg(long)]
        rpm: Option<u32>,
        #[arg(long)]
        tpm: Option<u32>,
        #[arg(long)]
        max_streams: Option<u32>,
        #[arg(long)]
        daily_tokens: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Delete a tier no key uses.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum UpstreamsCmd {
    /// Add an OpenAI-compatible upstream.
    Add {
        name: String,
        #[arg(long)]
        base_url: String,
        /// Read the upstream's API key from this environment variable.
        #[arg(long)]
        api_key_env: Option<String>,
        /// Models it serves, comma-separated; omit to discover them.
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List upstreams.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove an upstream added through the admin API.
    Remove { name: String },
    /// Check that an upstream answers.
    Test {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Check the audit log's hash chain.
    Verify {
        #[arg(long)]
        json: bool,
    },
}

/// Runs the parsed command; errors are for the caller to print.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let data_dir = cli
        .data_dir
        .clone()
        .unwrap_or_else(crate::config::default_data_dir);
    match cli.command {
        Command::Serve(args) => serve::run(args, cli.data_dir).await,
        Command::Eval(EvalCmd::Injection(a)) => eval::run(
            eval::Kind::Injection,
            &a.files,
            a.config.as_deref(),
            cli.data_dir,
        ),
        Command::Eval(EvalCmd::Moderation(a)) => eval::run(
            eval::Kind::Moderation,
            &a.files,
            a.config.as_deref(),
            cli.data_dir,
        ),
        Command::Keys(cmd) => keys(&AdminClient::from_data_dir(&data_dir)?, cmd).await,
        Command::Upstreams(cmd) => upstreams(&AdminClient::from_data_dir(&data_dir)?, cmd).await,
        Command::Tiers(cmd) => tiers(&AdminClient::from_data_dir(&data_dir)?, cmd).await,
        Command::Logs(cmd) => logs(&AdminClient::from_data_dir(&data_dir)?, cmd).await,
        Command::Status { json } => {
            status::status(&AdminClient::from_data_dir(&data_dir)?, json).await
        }
        Command::Incidents(cmd) => {
            status::incidents(&AdminClient::from_data_dir(&data_dir)?, cmd).await
        }
        Command::Maintenance(cmd) => {
            status::maintenance(&AdminClient::from_data_dir(&data_dir)?, cmd).await
        }
        Command::Subscribers(cmd) => {
            status::subscribers(&AdminClient::from_data_dir(&data_dir)?, cmd).await
        }
        Command::Tls(cmd) => status::tls(&AdminClient::from_data_dir(&data_dir)?, cmd).await,
        Command::Usage(cmd) => data::usage(&AdminClient::from_data_dir(&data_dir)?, cmd).await,
        Command::Crypto(cmd) => data::crypto(&AdminClient::from_data_dir(&data_dir)?, cmd).await,
        Command::Openapi => {
            use utoipa::OpenApi;
            output::line(&crate::admin::ApiDoc::openapi().to_pretty_json()?)
        }
        Command::Login => {
            let v = AdminClient::from_data_dir(&data_dir)?
                .call(Method::POST, "/admin/login-links", None)
                .await?;
            output::line(v.get("url").and_then(Value::as_str).unwrap_or(""))
        }
        Command::Audit(AuditCmd::Verify { json }) => {
            let v = AdminClient::from_data_dir(&data_dir)?
                .call(Method::GET, "/admin/audit/verify", None)
                .await?;
            output::verification(&v, json)?;
            if v.get("ok") != Some(&Value::Bool(true)) {
                anyhow::bail!("the audit log's chain is broken");
            }
            Ok(())
        }
    }
}

async fn keys(c: &AdminClient, cmd: KeysCmd) -> anyhow::Result<()> {
    match cmd {
        KeysCmd::Create {
            name,
            tier,
            environment,
            expires_in,
            models,
            allowed_domains,
            allowed_ips,
            rpm,
            tpm,
            json,
        } => {
            let body = json!({
                "name": name, "tier": tier, "environment": environment,
                "expires_in": expires_in, "models": models,
                "allowed_domains": allowed_domains, "allowed_ips": allowed_ips,
                "overrides": overrides(&Value::Null, rpm, tpm),
            });
            let v = c.call(Method::POST, "/admin/keys", Some(body)).await?;
            output::created_key(&v, json)
        }
        KeysCmd::Update {
            id,
            name,
            tier,
            environment,
            expires_in,
            models,
            allowed_domains,
            clear_allowed_domains,
            allowed_ips,
            clear_allowed_ips,
            rpm,
            tpm,
            json,
        } => {
            let mut body = serde_json::Map::new();
            let mut set = |k: &str, v: Value| {
                body.insert(k.to_owned(), v);
            };
            if let Some(v) = name {
                set("name", json!(v));
            }
            if let Some(v) = tier {
                set("tier", json!(v));
            }
            if let Some(v) = environment {
                set("environment", json!(v));
            }
            if let Some(v) = expires_in {
                set("expires_in", json!(v));
            }
            if !models.is_empty() {
                set("models", json!(models));
            }
            if !allowed_domains.is_empty() || clear_allowed_domains {
                set("allowed_domains", json!(allowed_domains));
            }
            if !allowed_ips.is_empty() || clear_allowed_ips {
                set("allowed_ips", json!(allowed_ips));
            }
            if rpm.is_some() || tpm.is_some() {
                // The API's `overrides` replaces them all: the key's others
                // (its body logging and safety switches among them) are
                // sent back with the two changed.
                let key = c
                    .call(Method::GET, &format!("/admin/keys/{id}"), None)
                    .await?;
                set("overrides", overrides(&key["overrides"], rpm, tpm));
            }
            let v = c
                .call(
                    Method::PATCH,
                    &format!("/admin/keys/{id}"),
                    Some(Value::Object(body)),
                )
                .await?;
            output::line_or_json(&v, json, &format!("Updated {id}."))
        }
        KeysCmd::Rotate { id, grace, json } => {
            let v = c
                .call(
                    Method::POST,
                    &format!("/admin/keys/{id}/rotate"),
                    Some(json!({"grace": grace})),
                )
                .await?;
            if json {
                return output::line_or_json(&v, true, "");
            }
            output::created_key(&v["new"], false)?;
            output::line(&format!(
                "The old key {id} keeps working until {}.",
                v["old"]["expires_at"].as_str().unwrap_or("-")
            ))
        }
        KeysCmd::List { json } => {
            let v = c.call(Method::GET, "/admin/keys", None).await?;
            output::keys(v.get("data").unwrap_or(&Value::Null), json)
        }
        KeysCmd::Get { id, json } => {
            let v = c
                .call(Method::GET, &format!("/admin/keys/{id}"), None)
                .await?;
            if json {
                return output::line_or_json(&v, true, "");
            }
            output::keys(&Value::Array(vec![v]), false)
        }
        KeysCmd::Revoke { id, json } => {
            let v = c
                .call(Method::POST, &format!("/admin/keys/{id}/revoke"), None)
                .await?;
            output::line_or_json(&v, json, &format!("Revoked {id}."))
        }
    }
}

async fn logs(c: &AdminClient, cmd: LogsCmd) -> anyhow::Result<()> {
    match cmd {
        LogsCmd::List {
            key,
            model,
            status,
            request_id,
            safety,
            since,
            until,
            limit,
            json,
        } => {
            let mut q = vec![format!("limit={limit}")];
            let mut add = |k: &str, v: Option<String>| {
                if let Some(v) = v {
                    q.push(format!("{k}={}", encode(&v)));
                }
            };
            add("key_id", key);
            add("model", model);
            add("status", status.map(|s| s.to_string()));
            add("request_id", request_id);
            add("safety_action", safety);
            add("since", since);
            add("until", until);
            let v = c
                .call(Method::GET, &format!("/admin/logs?{}", q.join("&")), None)
                .await?;
            output::logs(v.get("data").unwrap_or(&Value::Null), json)
        }
        LogsCmd::Show { id, body } => {
            let v = if body {
                c.call(Method::POST, &format!("/admin/logs/{id}/body"), None)
                    .await?
            } else {
                c.call(Method::GET, &format!("/admin/logs/{id}"), None)
                    .await?
            };
            output::line_or_json(&v, true, "")
        }
    }
}

/// Percent-encodes a query value.
fn encode(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// `current` (a key's overrides) with requests/min and tokens/min set.
fn overrides(current: &Value, rpm: Option<u32>, tpm: Option<u32>) -> Value {
    let mut o = current.as_object().cloned().unwrap_or_default();
    if let Some(v) = rpm {
        o.insert("requests_per_min".into(), json!(v));
    }
    if let Some(v) = tpm {
        o.insert("tokens_per_min".into(), json!(v));
    }
    Value::Object(o)
}

async fn tiers(c: &AdminClient, cmd: TiersCmd) -> anyhow::Result<()> {
    match cmd {
        TiersCmd::List { json } => {
            let v = c.call(Method::GET, "/admin/tiers", None).await?;
            output::tiers(v.get("data").unwrap_or(&Value::Null), json)
        }
        TiersCmd::Create {
            name,
            rpm,
            tpm,
            max_streams,
            daily_tokens,
            json,
        } => {
            let body = json!({
                "name": name, "requests_per_min": rpm, "tokens_per_min": tpm,
                "max_concurrent_streams": max_streams, "daily_token_budget": daily_tokens,
            });
            let v = c.call(Method::POST, "/admin/tiers", Some(body)).await?;
            output::line_or_json(&v, json, &format!("Created tier {name}."))
        }
        TiersCmd::Update {
            name,
            rpm,
            tpm,
            max_streams,
            daily_tokens,
            json,
        } => {
            let mut body = serde_json::Map::new();
            if let Some(v) = rpm {
                body.insert("requests_per_min".into(), json!(v));
            }
            if let Some(v) = tpm {
                body.insert("tokens_per_min".into(), json!(v));
            }
            if let Some(v) = max_streams {
                body.insert("max_concurrent_streams".into(), json!(v));
            }
            if let Some(v) = daily_tokens {
                body.insert("daily_token_budget".into(), json!(v));
            }
            let v = c
                .call(
                    Method::PATCH,
                    &format!("/admin/tiers/{name}"),
                    Some(Value::Object(body)),
                )
                .await?;
            output::line_or_json(&v, json, &format!("Updated tier {name}."))
        }
        TiersCmd::Delete { name } => {
            c.call(Method::DELETE, &format!("/admin/tiers/{name}"), None)
                .await?;
            output::line(&format!("Deleted tier {name}."))
        }
    }
}

async fn upstreams(c: &AdminClient, cmd: UpstreamsCmd) -> anyhow::Result<()> {
    match cmd {
        UpstreamsCmd::Add {
            name,
            base_url,
            api_key_env,
            models,
            json,
        } => {
            let api_key = match api_key_env {
                Some(var) => Some(std::env::var(&var).map_err(|_| {
                    anyhow::anyhow!("environment variable {var} is not set (it should hold the upstream's API key)")
                })?),
                None => None,
            };
            let body =
                json!({"name": name, "base_url": base_url, "api_key": api_key, "models": models});
            let v = c.call(Method::POST, "/admin/upstreams", Some(body)).await?;
            output::line_or_json(&v, json, &format!("Added upstream {name}."))
        }
        UpstreamsCmd::List { json } => {
            let v = c.call(Method::GET, "/admin/upstreams", None).await?;
            output::upstreams(v.get("data").unwrap_or(&Value::Null), json)
        }
        UpstreamsCmd::Remove { name } => {
            c.call(Method::DELETE, &format!("/admin/upstreams/{name}"), None)
                .await?;
            output::line(&format!("Removed upstream {name}."))
        }
        UpstreamsCmd::Test { name, json } => {
            let v = c
                .call(Method::POST, &format!("/admin/upstreams/{name}/test"), None)
                .await?;
            let ok = v.get("ok") == Some(&Value::Bool(true));
            let msg = if ok {
                format!(
                    "{name} answered in {} ms.",
                    v.get("latency_ms").unwrap_or(&Value::Null)
                )
            } else {
                format!(
                    "{name} failed: {}",
                    v.get("error")
                        .and_then(Value::as_str)
                        .unwrap_or("unknown error")
                )
            };
            output::line_or_json(&v, json, &msg)?;
            if !ok {
                anyhow::bail!("upstream test failed");
            }
            Ok(())
        }
    }
}
