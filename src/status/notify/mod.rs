//! Notifications to the page's subscribers: an event queue filled by
//! incident and maintenance changes, and a worker (started by the server)
//! that delivers each event to every subscriber, by e-mail or signed
//! webhook, each delivery retried with exponential backoff on its own task.

pub mod email;
pub mod webhook;

use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, watch};

use super::model::{Incident, Maintenance};
use super::summary;
use crate::app::AppState;
use crate::store::subscribers::Subscriber;

const QUEUE: usize = 256;

#[derive(Debug, Clone)]
pub enum Event {
    IncidentCreated(Incident),
    IncidentUpdated(Incident),
    IncidentResolved(Incident),
    MaintenanceStarted(Maintenance),
    MaintenanceCompleted(Maintenance),
}

impl Event {
    /// The event's name, as webhooks receive it in `event` and `X-Assisters-Event`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::IncidentCreated(_) => "incident.created",
            Event::IncidentUpdated(_) => "incident.updated",
            Event::IncidentResolved(_) => "incident.resolved",
            Event::MaintenanceStarted(_) => "maintenance.started",
            Event::MaintenanceCompleted(_) => "maintenance.completed",
        }
    }

    /// A one-line summary, the e-mail's subject.
    pub fn headline(&self) -> String {
        match self {
            Event::IncidentCreated(i) => format!("New incident: {}", i.name),
            Event::IncidentUpdated(i) => format!("{}: {}", title(i.status.as_str()), i.name),
            Event::IncidentResolved(i) => format!("Resolved: {}", i.name),
            Event::MaintenanceStarted(m) => format!("Maintenance started: {}", m.name),
            Event::MaintenanceCompleted(m) => format!("Maintenance completed: {}", m.name),
        }
    }
}

fn title(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// The queue's sending side, in `AppState`; the receiver goes to the worker.
/// Local listeners in the same process (the desktop app's notifications)
/// subscribe to a copy of every event.
pub struct Notifier {
    tx: mpsc::Sender<Event>,
    rx: Mutex<Option<mpsc::Receiver<Event>>>,
    local: broadcast::Sender<Event>,
}

impl Notifier {
    pub fn new() -> Notifier {
        let (tx, rx) = mpsc::channel(QUEUE);
        Notifier {
            tx,
            rx: Mutex::new(Some(rx)),
            local: broadcast::channel(QUEUE).0,
        }
    }

    /// Every event from now on (a slow listener misses the oldest ones).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.local.subscribe()
    }

    pub fn send(&self, e: Event) {
        // No local listener is the usual case, not an error.
        let _ = self.local.send(e.clone());
        if let Err(e) = self.tx.try_send(e) {
            tracing::warn!(error = %e, "notification queue full; an event is not sent");
        }
    }

    pub fn take_receiver(&self) -> Option<mpsc::Receiver<Event>> {
        self.rx.lock().take()
    }
}

impl Default for Notifier {
    fn default() -> Self {
        Notifier::new()
    }
}

/// The JSON every webhook receives.
pub fn payload(state: &AppState, e: &Event) -> Value {
    let view = state.status.view();
    let page = summary::page(state, &view);
    let mut v = json!({
        "event": e.name(),
        "created_at": crate::timefmt::rfc3339(crate::store::now()),
        "page": page,
    });
    match e {
        Event::IncidentCreated(i) | Event::IncidentUpdated(i) | Event::IncidentResolved(i) => {
            v["incident"] = summary::incident(&view, i);
        }
        Event::MaintenanceStarted(m) | Event::MaintenanceCompleted(m) => {
            v["maintenance"] = summary::maintenance(&view, m);
        }
    }
    v
}

/// Delivers events until the server stops.
pub async fn run(state: AppState, mut rx: mpsc::Receiver<Event>, mut stop: watch::Receiver<bool>) {
    loop {
        let event = tokio::select! {
            e = rx.recv() => match e { Some(e) => e, None => return },
            _ = stop.changed() => return,
        };
        let subscribers = match state.store.read(crate::store::subscribers::all).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read status subscribers");
                continue;
            }
        };
        let body = payload(&state, &event);
        for s in subscribers {
            let to = (state.clone(), s, stop.clone());
            tokio::spawn(deliver(to, event.clone(), body.clone()));
        }
    }
}

/// One subscriber, with retries: `attempts` tries, waiting `retry_base`,
/// then twice as long each time. Retries stop when the server stops or the
/// subscriber is removed.
async fn deliver(to: (AppState, Subscriber, watch::Receiver<bool>), event: Event, body: Value) {
    let (state, s, mut stop) = to;
    let notify = state.settings().notify.clone();
    let mut wait = notify.retry_base;
    for attempt in 1..=notify.attempts {
        if attempt > 1 {
            let id = s.id.clone();
            let still = state
                .store
                .read(move |c| crate::store::subscribers::exists(c, &id))
                .await;
            if matches!(still, Ok(false)) {
                return;
            }
        }
        let result = match s.kind.as_str() {
            "webhook" => webhook::send(&state, &s, event.name(), &body).await,
            "email" => email::send(&state, &s, &event, &body).await,
            other => Err(format!("unknown subscriber kind {other}")),
        };
        match result {
            Ok(()) => return,
            Err(e) if attempt < notify.attempts => {
                tracing::info!(subscriber = %s.id, attempt, error = %e, "notification failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => return,
                }
                wait = (wait * 2).min(Duration::from_secs(3600));
            }
            Err(e) => {
                tracing::warn!(subscriber = %s.id, error = %e, "notification failed; giving up");
            }
        }
    }
}
