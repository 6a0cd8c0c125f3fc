//! Maintenance windows: scheduled by an admin, started and completed by the
//! sampler when their times come (or early, by hand). While one is in
//! progress its components show as under maintenance and get no automatic
//! incidents.

use serde::Deserialize;

use super::model::{Maintenance, MaintenanceStatus};
use super::notify::Event;
use crate::admin::Actor;
use crate::app::AppState;
use crate::error::ApiError;
use crate::store::now;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMaintenance {
    pub name: String,
    /// What will happen, shown on the page.
    #[serde(default)]
    pub body: String,
    /// Component ids affected.
    pub components: Vec<String>,
    /// RFC 3339.
    pub scheduled_for: String,
    /// RFC 3339.
    pub scheduled_until: String,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceChange {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub components: Option<Vec<String>>,
    #[serde(default)]
    pub scheduled_for: Option<String>,
    #[serde(default)]
    pub scheduled_until: Option<String>,
    /// `in_progress` starts it now, `completed` ends it now.
    #[serde(default)]
    pub status: Option<MaintenanceStatus>,
}

fn time(s: &str, field: &str) -> Result<i64, ApiError> {
    crate::timefmt::parse_rfc3339(s).map_err(|e| ApiError::invalid(e, Some(field)))
}

fn summary(m: &Maintenance) -> serde_json::Value {
    serde_json::json!({
        "name": m.name, "status": m.status, "components": m.components,
        "scheduled_for": m.scheduled_for, "scheduled_until": m.scheduled_until,
    })
}

fn validate(state: &AppState, m: &Maintenance, check_components: bool) -> Result<(), ApiError> {
    if m.name.trim().is_empty() || m.name.len() > 200 {
        return Err(ApiError::invalid(
            "name must be 1 to 200 characters",
            Some("name"),
        ));
    }
    if m.scheduled_until <= m.scheduled_for {
        return Err(ApiError::invalid(
            "scheduled_until must be after scheduled_for",
            Some("scheduled_until"),
        ));
    }
    if !check_components {
        return Ok(());
    }
    super::check_components(state, &m.components)
}

pub async fn schedule(
    state: &AppState,
    req: NewMaintenance,
    actor: Actor,
) -> Result<Maintenance, ApiError> {
    let t = now();
    let m = Maintenance {
        id: crate::keys::new_id("mnt"),
        name: req.name,
        body: req.body,
        status: MaintenanceStatus::Scheduled,
        components: req.components,
        scheduled_for: time(&req.scheduled_for, "scheduled_for")?,
        scheduled_until: time(&req.scheduled_until, "scheduled_until")?,
        created_at: t,
        updated_at: t,
        started_at: None,
        completed_at: None,
    };
    validate(state, &m, true)?;
    // A window wholly past would be announced "completed" without having run.
    if m.scheduled_until <= t {
        return Err(ApiError::invalid(
            "scheduled_until is in the past: a maintenance window must end in the future",
            Some("scheduled_until"),
        ));
    }
    let entry = actor.audit("maintenance.create", &m.id, None, Some(summary(&m)));
    let row = m.clone();
    state
        .store
        .write(move |tx| {
            crate::store::maintenances::put(tx, &row)?;
            crate::store::audit::append(tx, entry, t).map(|_| ())
        })
        .await?;
    let _ = super::refresh(state).await;
    // A window that starts now starts at the next sample, with its notice.
    Ok(m)
}

pub async fn change(
    state: &AppState,
    id: &str,
    c: MaintenanceChange,
    actor: Actor,
) -> Result<Option<Maintenance>, ApiError> {
    let key = id.to_owned();
    let Some(old) = state
        .store
        .read(move |db| crate::store::maintenances::get(db, &key))
        .await?
    else {
        return Ok(None);
    };
    let t = now();
    let moved = c.components.is_some();
    let mut m = old.clone();
    if let Some(v) = c.name {
        m.name = v;
    }
    if let Some(v) = c.body {
        m.body = v;
    }
    if let Some(v) = c.components {
        m.components = v;
    }
    if let Some(v) = &c.scheduled_for {
        m.scheduled_for = time(v, "scheduled_for")?;
    }
    if let Some(v) = &c.scheduled_until {
        m.scheduled_until = time(v, "scheduled_until")?;
    }
    let event = match c.status {
        Some(s) if s == old.status => None,
        Some(_) if old.status == MaintenanceStatus::Completed => {
            return Err(ApiError::invalid(
                "a completed maintenance is over; schedule a new one",
                Some("status"),
            ))
        }
        Some(MaintenanceStatus::InProgress) => Some(start(&mut m, t)),
        Some(MaintenanceStatus::Completed) => Some(complete(&mut m, t)),
        Some(MaintenanceStatus::Scheduled) => {
            return Err(ApiError::invalid(
                "a started maintenance cannot be scheduled again",
                Some("status"),
            ))
        }
        None => None,
    };
    // Components are checked when they are set: one deleted since (an
    // upstream) must not keep the window from being edited or completed.
    validate(state, &m, moved)?;
    m.updated_at = t;
    let entry = actor.audit(
        "maintenance.update",
        &m.id,
        Some(summary(&old)),
        Some(summary(&m)),
    );
    let row = m.clone();
    state
        .store
        .write(move |tx| {
            crate::store::maintenances::put(tx, &row)?;
            crate::store::audit::append(tx, entry, t).map(|_| ())
        })
        .await?;
    let _ = super::refresh(state).await;
    state.status.resample.notify_one();
    if let Some(e) = event {
        state.status.notifier.send(e);
    }
    Ok(Some(m))
}

fn start(m: &mut Maintenance, t: i64) -> Event {
    m.status = MaintenanceStatus::InProgress;
    m.started_at = Some(t);
    Event::MaintenanceStarted(m.clone())
}

fn complete(m: &mut Maintenance, t: i64) -> Event {
    m.status = MaintenanceStatus::Completed;
    m.started_at = m.started_at.or(Some(t));
    m.completed_at = Some(t);
    Event::MaintenanceCompleted(m.clone())
}

/// Starts the windows whose time has come and completes those that are
/// over, then tells the subscribers.
pub async fn advance(state: &AppState) -> Result<(), ApiError> {
    // An admin edit reads a window, then writes it whole: a start in between
    // would be undone and announced twice.
    let _edits = state.admin_changes.lock().await;
    let t = now();
    let due = state
        .store
        .write(move |tx| {
            let mut events = Vec::new();
            for mut m in crate::store::maintenances::recent(tx, t)? {
                let event = match m.status {
                    MaintenanceStatus::Scheduled if t >= m.scheduled_until => complete(&mut m, t),
                    MaintenanceStatus::Scheduled if t >= m.scheduled_for => start(&mut m, t),
                    MaintenanceStatus::InProgress if t >= m.scheduled_until => complete(&mut m, t),
                    _ => continue,
                };
                m.updated_at = t;
                crate::store::maintenances::put(tx, &m)?;
                events.push(event);
            }
            Ok(events)
        })
        .await?;
    if !due.is_empty() {
        super::refresh(state).await?;
    }
    for e in due {
        state.status.notifier.send(e);
    }
    Ok(())
}
