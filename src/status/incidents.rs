//! Incidents: opening one (by an admin, or by the sampler when a component
//! goes down), changing it and adding to its timeline, resolving it (by
//! hand, or automatically when the component recovers). Every change is one
//! store transaction (with the audit entry when an admin made it), then the
//! view is refreshed and subscribers are notified.

use serde::Deserialize;

use super::model::{ComponentStatus, Impact, Incident, IncidentStatus, IncidentUpdate};
use super::notify::Event;
use super::Component;
use crate::admin::Actor;
use crate::app::AppState;
use crate::error::ApiError;
use crate::store::now;

/// What an admin may change; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Change {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub impact: Option<Impact>,
    /// Component ids affected.
    #[serde(default)]
    pub components: Option<Vec<String>>,
    /// A new stage; with `body`, or alone, it adds an update to the timeline.
    #[serde(default)]
    pub status: Option<IncidentStatus>,
    /// The update's text.
    #[serde(default)]
    pub body: Option<String>,
}

fn summary(i: &Incident) -> serde_json::Value {
    serde_json::json!({
        "name": i.name, "status": i.status, "impact": i.impact, "components": i.components,
    })
}

fn check(
    state: &AppState,
    name: Option<&str>,
    impact: Option<Impact>,
    components: Option<&[String]>,
) -> Result<(), ApiError> {
    // `maintenance` is the impact of maintenance windows, which have their
    // own life cycle; as an incident's it turned the page's indicator into
    // "under maintenance".
    if impact == Some(Impact::Maintenance) {
        return Err(ApiError::invalid(
            "an incident's impact is none, minor, major or critical (schedule a maintenance window instead)",
            Some("impact"),
        ));
    }
    if name.is_some_and(|n| n.trim().is_empty() || n.len() > 200) {
        return Err(ApiError::invalid(
            "name must be 1 to 200 characters",
            Some("name"),
        ));
    }
    super::check_components(state, components.unwrap_or_default())
}

/// Opens an incident with its first update.
pub async fn open(
    state: &AppState,
    name: String,
    impact: Impact,
    components: Vec<String>,
    body: String,
    auto_component: Option<String>,
    actor: Option<Actor>,
) -> Result<Incident, ApiError> {
    check(state, Some(&name), Some(impact), Some(&components))?;
    let t = now();
    let id = crate::keys::new_id("inc");
    let update = IncidentUpdate {
        id: crate::keys::new_id("upd"),
        status: IncidentStatus::Investigating,
        body,
        created_at: t,
    };
    let mut incident = Incident {
        id: id.clone(),
        name,
        status: IncidentStatus::Investigating,
        impact,
        components,
        auto_component,
        created_at: t,
        updated_at: t,
        monitoring_at: None,
        resolved_at: None,
        updates: vec![],
    };
    let entry = actor.map(|a| a.audit("incident.create", &id, None, Some(summary(&incident))));
    let (row, first) = (incident.clone(), update.clone());
    state
        .store
        .write(move |tx| {
            crate::store::incidents::put(tx, &row)?;
            crate::store::incidents::add_update(tx, &row.id, &first)?;
            if let Some(e) = entry {
                crate::store::audit::append(tx, e, t)?;
            }
            Ok(())
        })
        .await?;
    incident.updates.push(update);
    after(state, Event::IncidentCreated(incident.clone())).await;
    Ok(incident)
}

/// Applies a change; `None` when there is no such incident.
pub async fn change(
    state: &AppState,
    id: &str,
    change: Change,
    actor: Option<Actor>,
) -> Result<Option<Incident>, ApiError> {
    check(
        state,
        change.name.as_deref(),
        change.impact,
        change.components.as_deref(),
    )?;
    if change.body.as_ref().is_some_and(|b| b.trim().is_empty()) {
        return Err(ApiError::invalid("body must not be empty", Some("body")));
    }
    let id = id.to_owned();
    let t = now();
    let by_admin = actor.is_some();
    let result = state
        .store
        .write(move |tx| {
            let Some(old) = crate::store::incidents::get(tx, &id)? else {
                return Ok(None);
            };
            // Resolving what is resolved adds nothing (it added a second
            // "resolved" to the timeline and told the subscribers again),
            // unless it says something new (a post-mortem note).
            let said = old.updates.first().map(|u| u.body.as_str());
            if old.status == IncidentStatus::Resolved
                && change.status == Some(IncidentStatus::Resolved)
                && change.name.is_none()
                && change.impact.is_none()
                && change.components.is_none()
                && change.body.as_deref().is_none_or(|b| Some(b) == said)
            {
                return Ok(Some((old.status, old, false)));
            }
            let mut new = old.clone();
            if let Some(n) = change.name {
                new.name = n;
            }
            if let Some(i) = change.impact {
                new.impact = i;
            }
            if let Some(c) = change.components {
                new.components = c;
            }
            if change.status.is_some() || change.body.is_some() {
                let status = change.status.unwrap_or(old.status);
                new.status = status;
                match status {
                    IncidentStatus::Resolved => new.resolved_at = old.resolved_at.or(Some(t)),
                    IncidentStatus::Monitoring => {
                        new.monitoring_at = old.monitoring_at.or(Some(t));
                        new.resolved_at = None;
                    }
                    _ => new.resolved_at = None,
                }
                let update = IncidentUpdate {
                    id: crate::keys::new_id("upd"),
                    status,
                    body: change
                        .body
                        .unwrap_or_else(|| format!("The incident is now {}.", status.as_str())),
                    created_at: t,
                };
                crate::store::incidents::add_update(tx, &id, &update)?;
                new.updates.insert(0, update);
            }
            new.updated_at = t;
            crate::store::incidents::put(tx, &new)?;
            let hand_resolved = by_admin
                && new.status == IncidentStatus::Resolved
                && old.status != IncidentStatus::Resolved;
            if let (true, Some(c)) = (hand_resolved, &new.auto_component) {
                crate::store::incidents::set_hand_resolved(tx, c, true)?;
            }
            if let Some(a) = actor {
                let e = a.audit(
                    "incident.update",
                    &id,
                    Some(summary(&old)),
                    Some(summary(&new)),
                );
                crate::store::audit::append(tx, e, t)?;
            }
            Ok(Some((old.status, new, true)))
        })
        .await?;
    let Some((was, incident, changed)) = result else {
        return Ok(None);
    };
    if !changed {
        return Ok(Some(incident));
    }
    let resolved_now =
        incident.status == IncidentStatus::Resolved && was != IncidentStatus::Resolved;
    if let (true, Some(c)) = (by_admin && resolved_now, &incident.auto_component) {
        state.status.hand_resolved.lock().insert(c.clone());
    }
    let event = if resolved_now {
        Event::IncidentResolved(incident.clone())
    } else {
        Event::IncidentUpdated(incident.clone())
    };
    after(state, event).await;
    Ok(Some(incident))
}

/// Refreshes the page's view, then tells the subscribers.
async fn after(state: &AppState, event: Event) {
    if let Err(e) = super::refresh(state).await {
        tracing::warn!(error = %e, "status view refresh failed");
    }
    state.status.notifier.send(event);
}

/// Opens an incident for each component in major outage that has none
/// (unless an admin resolved its last one by hand while the outage lasts)
/// and resolves the gateway's own incidents of those that came back.
pub async fn automate(state: &AppState, components: &[Component]) {
    for c in components {
        let id = c.id.clone();
        let open = match state
            .store
            .read(move |db| crate::store::incidents::open_auto(db, &id))
            .await
        {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read incidents");
                return;
            }
        };
        let down = c.status == ComponentStatus::MajorOutage;
        // Recovery is claimed only when seen: after a restart an upstream
        // looks healthy until its first probe or request says otherwise.
        let up = c.observed()
            && matches!(
                c.status,
                ComponentStatus::Operational | ComponentStatus::DegradedPerformance
            );
        // One an admin resolved by hand stays so while the outage lasts,
        // through partial outages (a failed half-open trial) too; the
        // component must be seen up before a new one opens.
        let resolved_by_hand = state.status.hand_resolved.lock().contains(&c.id);
        if up && resolved_by_hand {
            forget_hand_resolved(state, vec![c.id.clone()]).await;
        }
        let result = match open {
            None if down && !resolved_by_hand => open_for(state, c).await.map(|_| ()),
            Some(i) if up => resolve(state, &i, c).await,
            _ => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(component = %c.id, error = %e, "automatic incident failed");
        }
    }
    // A component that no longer exists is forgotten, so one added again
    // under its id starts afresh.
    let gone: Vec<String> = state
        .status
        .hand_resolved
        .lock()
        .iter()
        .filter(|id| !components.iter().any(|c| &c.id == *id))
        .cloned()
        .collect();
    if !gone.is_empty() {
        forget_hand_resolved(state, gone).await;
    }
    // The incident of a component that no longer exists (an upstream
    // deleted mid-outage) would stay open, and the page in outage, for good.
    let open = state
        .store
        .read(crate::store::incidents::open_auto_components)
        .await
        .unwrap_or_default();
    for gone in open
        .iter()
        .filter(|id| !components.iter().any(|c| &c.id == *id))
    {
        let g = gone.clone();
        let Ok(Some(i)) = state
            .store
            .read(move |db| crate::store::incidents::open_auto(db, &g))
            .await
        else {
            continue;
        };
        let c = Change {
            status: Some(IncidentStatus::Resolved),
            body: Some("The component was removed from the gateway.".into()),
            ..Change::default()
        };
        if let Err(e) = change(state, &i.id, c, None).await {
            tracing::warn!(component = %gone, error = %e, "automatic incident failed");
        }
    }
}

/// Drops components from the hand-resolved set: from the store first, so a
/// failed write leaves both as they were.
async fn forget_hand_resolved(state: &AppState, ids: Vec<String>) {
    let forgotten = ids.clone();
    let written = state
        .store
        .write(move |tx| {
            for id in &forgotten {
                crate::store::incidents::set_hand_resolved(tx, id, false)?;
            }
            Ok(())
        })
        .await;
    match written {
        Ok(()) => {
            let mut hand = state.status.hand_resolved.lock();
            for id in &ids {
                hand.remove(id);
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot update incidents resolved by hand"),
    }
}

async fn open_for(state: &AppState, c: &Component) -> Result<Incident, ApiError> {
    let impact = if c.kind == "upstream" {
        Impact::Major
    } else {
        Impact::Critical
    };
    let body = format!(
        "{} is not answering: health checks and requests are failing. We are investigating.",
        c.name
    );
    open(
        state,
        format!("{} is unavailable", c.name),
        impact,
        vec![c.id.clone()],
        body,
        Some(c.id.clone()),
        None,
    )
    .await
}

async fn resolve(state: &AppState, i: &Incident, c: &Component) -> Result<(), ApiError> {
    let change_ = Change {
        status: Some(IncidentStatus::Resolved),
        body: Some(format!(
            "{} has recovered and is answering normally.",
            c.name
        )),
        ..Change::default()
    };
    change(state, &i.id, change_, None).await.map(|_| ())
}
