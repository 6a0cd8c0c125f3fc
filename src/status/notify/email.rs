//! E-mail deliveries over SMTP (`notify.smtp`): a plain-text message per
//! event, sent with `lettre` over rustls (STARTTLS or implicit TLS; plain
//! only when the operator says `security = "none"`, for local relays).

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;

use super::Event;
use crate::app::AppState;
use crate::config::{SmtpConfig, SmtpSecurity};
use crate::store::subscribers::Subscriber;

const TIMEOUT: Duration = Duration::from_secs(20);

fn transport(smtp: &SmtpConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let builder = match smtp.security {
        SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host),
        SmtpSecurity::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host),
        SmtpSecurity::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            &smtp.host,
        )),
    }
    .map_err(|e| format!("SMTP setup: {e}"))?;
    let mut builder = builder.port(smtp.port()).timeout(Some(TIMEOUT));
    if let Some(user) = &smtp.username {
        let password = smtp
            .password_env
            .as_deref()
            .and_then(crate::config::secret_env)
            .unwrap_or_default();
        builder = builder.credentials(Credentials::new(user.clone(), password));
    }
    Ok(builder.build())
}

/// The message's text: what happened, the latest word, where to read more.
pub fn text(event: &Event, payload: &Value) -> String {
    let mut out = format!("{}\n\n", event.headline());
    let item = payload
        .get("incident")
        .or_else(|| payload.get("maintenance"))
        .cloned()
        .unwrap_or(Value::Null);
    let field = |k: &str| {
        item.get(k)
            .and_then(Value::as_str)
            .unwrap_or("-")
            .to_owned()
    };
    out.push_str(&format!("Status: {}\n", field("status")));
    if payload.get("incident").is_some() {
        out.push_str(&format!("Impact: {}\n", field("impact")));
    } else {
        out.push_str(&format!(
            "Window: {} to {}\n",
            field("scheduled_for"),
            field("scheduled_until")
        ));
    }
    let names: Vec<&str> = item
        .get("components")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|c| c.get("name")?.as_str()).collect())
        .unwrap_or_default();
    if !names.is_empty() {
        out.push_str(&format!("Affected: {}\n", names.join(", ")));
    }
    if let Some(latest) = item
        .get("incident_updates")
        .and_then(Value::as_array)
        .and_then(|u| u.first())
        .and_then(|u| u.get("body"))
        .and_then(Value::as_str)
    {
        out.push_str(&format!("\n{latest}\n"));
    }
    if let Some(url) = payload.pointer("/page/url").and_then(Value::as_str) {
        out.push_str(&format!("\nStatus page: {url}\n"));
    }
    out
}

pub async fn send(
    state: &AppState,
    s: &Subscriber,
    event: &Event,
    payload: &Value,
) -> Result<(), String> {
    let settings = state.settings();
    let Some(smtp) = settings.notify.smtp.as_ref() else {
        return Err("no SMTP server is configured (notify.smtp)".into());
    };
    let from: Mailbox = smtp
        .from
        .parse()
        .map_err(|e| format!("notify.smtp.from: {e}"))?;
    let to: Mailbox = s.target.parse().map_err(|e| format!("{}: {e}", s.target))?;
    let page = payload
        .pointer("/page/name")
        .and_then(Value::as_str)
        .unwrap_or("Status");
    let message = Message::builder()
        .from(from)
        .to(to)
        .subject(format!("[{page}] {}", event.headline()))
        .header(ContentType::TEXT_PLAIN)
        .body(text(event, payload))
        .map_err(|e| format!("cannot build the message: {e}"))?;
    transport(smtp)?
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| format!("SMTP: {e}"))
}
