//! `summary.json` in the shape of Atlassian Statuspage's
//! `/api/v2/summary.json` (page, status, components, incidents,
//! scheduled_maintenances), so existing status tooling can read it. The
//! webhook payloads reuse the same incident and maintenance objects.

use serde_json::{json, Value};

use super::model::{IncidentStatus, MaintenanceStatus};
use super::{Component, View};
use crate::app::AppState;
use crate::timefmt::rfc3339;

pub const PAGE_ID: &str = "assisters";

fn ts(t: Option<i64>) -> Value {
    t.map_or(Value::Null, |t| Value::String(rfc3339(t)))
}

/// The page's public address: configured, else the gateway listener's.
pub fn page_url(state: &AppState) -> String {
    if let Some(u) = &state.settings().status.url {
        return u.clone();
    }
    state.bound().map_or_else(String::new, |b| {
        format!("{}://{}/status", b.scheme(), b.listen)
    })
}

pub fn page(state: &AppState, view: &View) -> Value {
    json!({
        "id": PAGE_ID,
        "name": state.settings().status.name,
        "url": page_url(state),
        "time_zone": "Etc/UTC",
        "updated_at": rfc3339(view.updated_at),
    })
}

pub fn component(view: &View, c: &Component) -> Value {
    // Its first recorded day stands in for when it was added.
    let since = view
        .uptime
        .get(&c.id)
        .and_then(|d| d.first())
        .map_or(view.updated_at, |d| d.day * 86_400);
    json!({
        "id": c.id, "name": c.name, "status": c.status,
        "created_at": rfc3339(since), "updated_at": rfc3339(view.updated_at),
        "position": c.position, "description": null, "showcase": true,
        "start_date": null, "group_id": null, "page_id": PAGE_ID,
        "group": false, "only_show_if_degraded": false,
    })
}

fn components_of(view: &View, ids: &[String]) -> Vec<Value> {
    ids.iter()
        .filter_map(|id| view.components.iter().find(|c| &c.id == id))
        .map(|c| component(view, c))
        .collect()
}

pub fn incident(view: &View, i: &super::model::Incident) -> Value {
    let updates: Vec<Value> = i
        .updates
        .iter()
        .map(|u| {
            json!({
                "id": u.id, "status": u.status, "body": u.body, "incident_id": i.id,
                "created_at": rfc3339(u.created_at), "updated_at": rfc3339(u.created_at),
                "display_at": rfc3339(u.created_at), "affected_components": null,
            })
        })
        .collect();
    json!({
        "id": i.id, "name": i.name, "status": i.status,
        "created_at": rfc3339(i.created_at), "updated_at": rfc3339(i.updated_at),
        "monitoring_at": ts(i.monitoring_at), "resolved_at": ts(i.resolved_at),
        "impact": i.impact, "shortlink": null, "started_at": rfc3339(i.created_at),
        "page_id": PAGE_ID, "incident_updates": updates,
        "components": components_of(view, &i.components),
    })
}

pub fn maintenance(view: &View, m: &super::model::Maintenance) -> Value {
    // Statuspage keeps a timeline for maintenance too; ours is its stages.
    let mut updates = Vec::new();
    let mut stage = |status: &str, at: i64, body: &str| {
        updates.insert(
            0,
            json!({
                "id": format!("{}_{status}", m.id), "status": status, "body": body,
                "incident_id": m.id, "created_at": rfc3339(at), "updated_at": rfc3339(at),
                "display_at": rfc3339(at), "affected_components": null,
            }),
        );
    };
    stage("scheduled", m.created_at, &m.body);
    if let Some(t) = m.started_at {
        stage("in_progress", t, "The maintenance is in progress.");
    }
    if let Some(t) = m.completed_at {
        stage("completed", t, "The maintenance has been completed.");
    }
    json!({
        "id": m.id, "name": m.name, "status": m.status,
        "created_at": rfc3339(m.created_at), "updated_at": rfc3339(m.updated_at),
        "monitoring_at": null, "resolved_at": ts(m.completed_at),
        "impact": "maintenance", "shortlink": null, "started_at": ts(m.started_at),
        "page_id": PAGE_ID, "incident_updates": updates,
        "components": components_of(view, &m.components),
        "scheduled_for": rfc3339(m.scheduled_for), "scheduled_until": rfc3339(m.scheduled_until),
    })
}

/// The whole document.
pub fn summary(state: &AppState, view: &View) -> Value {
    let indicator = view.indicator();
    let mut components: Vec<&Component> = view.components.iter().collect();
    components.sort_by_key(|c| c.position);
    json!({
        "page": page(state, view),
        "components": components.iter().map(|c| component(view, c)).collect::<Vec<_>>(),
        "incidents": view
            .incidents
            .iter()
            .filter(|i| i.status != IncidentStatus::Resolved)
            .map(|i| incident(view, i))
            .collect::<Vec<_>>(),
        "scheduled_maintenances": view
            .maintenances
            .iter()
            .filter(|m| m.status != MaintenanceStatus::Completed)
            .map(|m| maintenance(view, m))
            .collect::<Vec<_>>(),
        "status": {"indicator": indicator, "description": indicator.description()},
    })
}
