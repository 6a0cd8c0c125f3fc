//! Desktop notifications: incidents opened and resolved (an upstream down or
//! back, or one an admin opened), and keys about to expire.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use assisters::status::notify::Event;
use tauri::AppHandle;
use tauri_plugin_notification::NotificationExt;
use tokio::sync::broadcast::error::RecvError;

use crate::engine::Engine;

/// Keys expiring within this are announced, once per key and app run.
const EXPIRY_WINDOW: i64 = 3 * 86_400;
/// How often the key table is looked at; `GATEWAY_DESKTOP_EXPIRY_CHECK`
/// (seconds) changes it, for tests.
const EXPIRY_CHECK: Duration = Duration::from_secs(3_600);

pub fn spawn(app: &AppHandle, engine: &Arc<Engine>) {
    tauri::async_runtime::spawn(incidents(app.clone(), engine.clone()));
    tauri::async_runtime::spawn(expiring_keys(app.clone(), engine.clone()));
}

fn show(app: &AppHandle, title: &str, body: &str) {
    tracing::info!(%title, "desktop notification");
    if let Err(e) = app.notification().builder().title(title).body(body).show() {
        tracing::warn!(error = %e, "cannot show a desktop notification");
    }
}

async fn incidents(app: AppHandle, engine: Arc<Engine>) {
    let mut events = engine.state().status.notifier.subscribe();
    loop {
        let event = match events.recv().await {
            Ok(e) => e,
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        };
        let body = match &event {
            Event::IncidentCreated(i) => i.updates.first().map(|u| u.body.clone()),
            Event::IncidentResolved(_) => Some("Back to normal.".to_owned()),
            // Updates and maintenance are for the status page's subscribers.
            _ => None,
        };
        if let Some(body) = body {
            show(&app, &event.headline(), &body);
        }
    }
}

async fn expiring_keys(app: AppHandle, engine: Arc<Engine>) {
    let every = std::env::var("GATEWAY_DESKTOP_EXPIRY_CHECK")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(EXPIRY_CHECK, Duration::from_secs);
    let mut told: HashSet<String> = HashSet::new();
    loop {
        let now = assisters::store::now();
        for key in engine.state().keys.expiring(now, EXPIRY_WINDOW) {
            if !told.insert(key.id.clone()) {
                continue;
            }
            let left = key.expires_at.unwrap_or(now) - now;
            let when = if left < 7_200 {
                format!("{} minutes", left.div_euclid(60).max(1))
            } else if left < 2 * 86_400 {
                format!("{} hours", left.div_euclid(3_600))
            } else {
                format!("{} days", left.div_euclid(86_400))
            };
            show(
                &app,
                &format!("API key \u{201c}{}\u{201d} expires soon", key.name),
                &format!(
                    "It stops working in about {when}. Rotate it on the Keys page to give its app a new one."
                ),
            );
        }
        tokio::time::sleep(every).await;
    }
}
