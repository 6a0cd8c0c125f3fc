//! CLI commands for the status page and TLS: `status`, `incidents`,
//! `maintenance`, `subscribers`, `tls` — each a thin call to the admin API.

use clap::Subcommand;
use hyper::Method;
use serde_json::{json, Value};

use super::output::{line, line_or_json, table};
use super::AdminClient;

#[derive(Debug, Subcommand)]
pub enum IncidentsCmd {
    /// List incidents, newest first.
    List {
        /// Only unresolved ones.
        #[arg(long)]
        open: bool,
        #[arg(long)]
        json: bool,
    },
    /// Open an incident.
    Open {
        #[arg(long)]
        name: String,
        /// none, minor, major or critical.
        #[arg(long, default_value = "minor")]
        impact: String,
        /// An affected component id, see `assisters status` (repeatable).
        #[arg(long = "component")]
        components: Vec<String>,
        /// The first update's text.
        #[arg(long)]
        body: String,
        #[arg(long)]
        json: bool,
    },
    /// Add an update: investigating, identified, monitoring or resolved.
    Update {
        id: String,
        #[arg(long)]
        status: String,
        #[arg(long)]
        body: String,
        #[arg(long)]
        json: bool,
    },
    /// Resolve an incident.
    Resolve {
        id: String,
        #[arg(long, default_value = "This incident has been resolved.")]
        body: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MaintenanceCmd {
    /// List maintenance windows.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Schedule a window (times in RFC 3339, e.g. 2027-01-31T02:00:00Z).
    Schedule {
        #[arg(long)]
        name: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        until: String,
        #[arg(long = "component")]
        components: Vec<String>,
        #[arg(long, default_value = "")]
        body: String,
        #[arg(long)]
        json: bool,
    },
    /// Start a window now.
    Start { id: String },
    /// Complete a window now.
    Complete { id: String },
}

#[derive(Debug, Subcommand)]
pub enum SubscribersCmd {
    /// List subscribers.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Subscribe an e-mail address.
    AddEmail { address: String },
    /// Subscribe a webhook URL; its signing secret is printed once.
    AddWebhook { url: String },
    /// Remove a subscriber.
    Remove { id: String },
}

#[derive(Debug, Subcommand)]
pub enum TlsCmd {
    /// Show the gateway listener's certificate and fingerprint.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Reload the certificate files without a restart.
    Reload,
}

fn s(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("-").to_owned()
}

fn rows(v: &Value) -> &[Value] {
    v.get("data")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

pub async fn status(c: &AdminClient, json: bool) -> anyhow::Result<()> {
    let v = c.call(Method::GET, "/admin/status", None).await?;
    if json {
        return line_or_json(&v, true, "");
    }
    line(&format!(
        "{} ({})",
        s(&v, "description"),
        s(&v, "indicator")
    ))?;
    let comps = v
        .get("components")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    table(
        &["ID", "NAME", "STATUS", "CIRCUIT"],
        comps
            .iter()
            .map(|c| {
                let circuit = c
                    .pointer("/health/circuit")
                    .and_then(Value::as_str)
                    .unwrap_or("-");
                vec![s(c, "id"), s(c, "name"), s(c, "status"), circuit.to_owned()]
            })
            .collect(),
    )
}

pub async fn incidents(c: &AdminClient, cmd: IncidentsCmd) -> anyhow::Result<()> {
    match cmd {
        IncidentsCmd::List { open, json } => {
            let v = c
                .call(Method::GET, &format!("/admin/incidents?open={open}"), None)
                .await?;
            if json {
                return line_or_json(&v, true, "");
            }
            table(
                &["ID", "STATUS", "IMPACT", "CREATED", "NAME"],
                rows(&v)
                    .iter()
                    .map(|i| {
                        let at = i.get("created_at").and_then(Value::as_i64).unwrap_or(0);
                        vec![
                            s(i, "id"),
                            s(i, "status"),
                            s(i, "impact"),
                            crate::timefmt::rfc3339(at),
                            s(i, "name"),
                        ]
                    })
                    .collect(),
            )
        }
        IncidentsCmd::Open {
            name,
            impact,
            components,
            body,
            json,
        } => {
            let b = json!({"name": name, "impact": impact, "components": components, "body": body});
            let v = c.call(Method::POST, "/admin/incidents", Some(b)).await?;
            line_or_json(&v, json, &format!("Opened incident {}.", s(&v, "id")))
        }
        IncidentsCmd::Update {
            id,
            status,
            body,
            json,
        } => {
            let v = c
                .call(
                    Method::POST,
                    &format!("/admin/incidents/{id}/updates"),
                    Some(json!({"status": status, "body": body})),
                )
                .await?;
            line_or_json(
                &v,
                json,
                &format!("Incident {id} is now {}.", s(&v, "status")),
            )
        }
        IncidentsCmd::Resolve { id, body } => {
            c.call(
                Method::POST,
                &format!("/admin/incidents/{id}/updates"),
                Some(json!({"status": "resolved", "body": body})),
            )
            .await?;
            line(&format!("Resolved incident {id}."))
        }
    }
}

pub async fn maintenance(c: &AdminClient, cmd: MaintenanceCmd) -> anyhow::Result<()> {
    match cmd {
        MaintenanceCmd::List { json } => {
            let v = c.call(Method::GET, "/admin/maintenances", None).await?;
            if json {
                return line_or_json(&v, true, "");
            }
            let t = |m: &Value, k: &str| {
                crate::timefmt::rfc3339(m.get(k).and_then(Value::as_i64).unwrap_or(0))
            };
            table(
                &["ID", "STATUS", "FROM", "UNTIL", "NAME"],
                rows(&v)
                    .iter()
                    .map(|m| {
                        vec![
                            s(m, "id"),
                            s(m, "status"),
                            t(m, "scheduled_for"),
                            t(m, "scheduled_until"),
                            s(m, "name"),
                        ]
                    })
                    .collect(),
            )
        }
        MaintenanceCmd::Schedule {
            name,
            from,
            until,
            components,
            body,
            json,
        } => {
            let b = json!({"name": name, "body": body, "components": components, "scheduled_for": from, "scheduled_until": until});
            let v = c.call(Method::POST, "/admin/maintenances", Some(b)).await?;
            line_or_json(&v, json, &format!("Scheduled maintenance {}.", s(&v, "id")))
        }
        MaintenanceCmd::Start { id } => set_maintenance(c, &id, "in_progress", "Started").await,
        MaintenanceCmd::Complete { id } => set_maintenance(c, &id, "completed", "Completed").await,
    }
}

async fn set_maintenance(
    c: &AdminClient,
    id: &str,
    status: &str,
    done: &str,
) -> anyhow::Result<()> {
    c.call(
        Method::PATCH,
        &format!("/admin/maintenances/{id}"),
        Some(json!({"status": status})),
    )
    .await?;
    line(&format!("{done} maintenance {id}."))
}

pub async fn subscribers(c: &AdminClient, cmd: SubscribersCmd) -> anyhow::Result<()> {
    let add = |kind: &str, target: String| json!({"kind": kind, "target": target});
    match cmd {
        SubscribersCmd::List { json } => {
            let v = c
                .call(Method::GET, "/admin/status/subscribers", None)
                .await?;
            if json {
                return line_or_json(&v, true, "");
            }
            table(
                &["ID", "KIND", "TARGET"],
                rows(&v)
                    .iter()
                    .map(|x| vec![s(x, "id"), s(x, "kind"), s(x, "target")])
                    .collect(),
            )
        }
        SubscribersCmd::AddEmail { address } => {
            let v = c
                .call(
                    Method::POST,
                    "/admin/status/subscribers",
                    Some(add("email", address)),
                )
                .await?;
            line(&format!(
                "Subscribed {} ({}).",
                s(&v, "target"),
                s(&v, "id")
            ))
        }
        SubscribersCmd::AddWebhook { url } => {
            let v = c
                .call(
                    Method::POST,
                    "/admin/status/subscribers",
                    Some(add("webhook", url)),
                )
                .await?;
            line(&format!(
                "Subscribed {} ({}).",
                s(&v, "target"),
                s(&v, "id")
            ))?;
            line(&format!(
                "Signing secret (shown once): {}\nVerify X-Assisters-Signature = sha256=HMAC-SHA256(secret, \"{{X-Assisters-Timestamp}}.{{body}}\").",
                s(&v, "secret")
            ))
        }
        SubscribersCmd::Remove { id } => {
            c.call(
                Method::DELETE,
                &format!("/admin/status/subscribers/{id}"),
                None,
            )
            .await?;
            line(&format!("Removed subscriber {id}."))
        }
    }
}

pub async fn tls(c: &AdminClient, cmd: TlsCmd) -> anyhow::Result<()> {
    let (v, verb) = match cmd {
        TlsCmd::Show { json: true } => {
            let v = c.call(Method::GET, "/admin/tls", None).await?;
            return line_or_json(&v, true, "");
        }
        TlsCmd::Show { json: false } => (c.call(Method::GET, "/admin/tls", None).await?, None),
        TlsCmd::Reload => (
            c.call(Method::POST, "/admin/tls/reload", None).await?,
            Some("Reloaded."),
        ),
    };
    let Some(cert) = v.get("certificate").filter(|c| !c.is_null()) else {
        return line("The gateway listener serves plain HTTP (no TLS configured).");
    };
    if let Some(verb) = verb {
        line(verb)?;
    }
    line(&format!("Certificate:  {}", s(cert, "cert_file")))?;
    line(&format!("SHA-256:      {}", s(cert, "fingerprint_sha256")))?;
    line(&format!(
        "Self-signed:  {}",
        cert.get("self_signed")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    ))?;
    line(&format!("TLS minimum:  {}", s(cert, "min_version")))?;
    line(&format!("Loaded at:    {}", s(cert, "loaded_at")))
}
