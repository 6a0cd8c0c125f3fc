//! Queries on `incidents` and their timeline, `incident_updates`.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::StoreError;
use crate::status::model::{Impact, Incident, IncidentStatus, IncidentUpdate};

const COLUMNS: &str = "id, name, status, impact, components, auto_component, created_at, \
                       updated_at, monitoring_at, resolved_at";

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("incidents.{what}"))
}

fn from_row(r: &Row<'_>) -> Result<Incident, StoreError> {
    let status: String = r.get(2)?;
    let impact: String = r.get(3)?;
    let components: String = r.get(4)?;
    Ok(Incident {
        id: r.get(0)?,
        name: r.get(1)?,
        status: IncidentStatus::parse(&status).ok_or_else(|| corrupt("status"))?,
        impact: Impact::parse(&impact).ok_or_else(|| corrupt("impact"))?,
        components: serde_json::from_str(&components).map_err(|_| corrupt("components"))?,
        auto_component: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
        monitoring_at: r.get(8)?,
        resolved_at: r.get(9)?,
        updates: Vec::new(),
    })
}

fn with_updates(c: &Connection, mut i: Incident) -> Result<Incident, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT id, status, body, created_at FROM incident_updates \
         WHERE incident_id = ?1 ORDER BY created_at DESC, rowid DESC",
    )?;
    let mut rows = stmt.query([&i.id])?;
    while let Some(r) = rows.next()? {
        let status: String = r.get(1)?;
        i.updates.push(IncidentUpdate {
            id: r.get(0)?,
            status: IncidentStatus::parse(&status).ok_or_else(|| corrupt("updates.status"))?,
            body: r.get(2)?,
            created_at: r.get(3)?,
        });
    }
    Ok(i)
}

fn query(c: &Connection, sql: &str, p: impl rusqlite::Params) -> Result<Vec<Incident>, StoreError> {
    let mut stmt = c.prepare(sql)?;
    let mut rows = stmt.query(p)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(from_row(r)?);
    }
    out.into_iter().map(|i| with_updates(c, i)).collect()
}

pub fn get(c: &Connection, id: &str) -> Result<Option<Incident>, StoreError> {
    let found = c
        .query_row(
            &format!("SELECT {COLUMNS} FROM incidents WHERE id = ?1"),
            [id],
            |r| Ok(from_row(r)),
        )
        .optional()?
        .transpose()?;
    found.map(|i| with_updates(c, i)).transpose()
}

/// Every open incident, and up to `limit` resolved ones created at or after
/// `since`; newest first. (The limit once applied to both, so a flapping
/// upstream's resolved incidents could push an open one off the page.)
pub fn recent(c: &Connection, since: i64, limit: u32) -> Result<Vec<Incident>, StoreError> {
    query(
        c,
        &format!(
            "SELECT {COLUMNS} FROM incidents WHERE resolved_at IS NULL OR id IN \
             (SELECT id FROM incidents WHERE resolved_at IS NOT NULL AND created_at >= ?1 \
              ORDER BY created_at DESC, id LIMIT ?2) \
             ORDER BY created_at DESC, id"
        ),
        params![since, limit],
    )
}

/// The open incident the gateway opened for this component, if any.
pub fn open_auto(c: &Connection, component: &str) -> Result<Option<Incident>, StoreError> {
    let id: Option<String> = c
        .query_row(
            "SELECT id FROM incidents WHERE auto_component = ?1 AND resolved_at IS NULL \
             ORDER BY created_at DESC LIMIT 1",
            [component],
            |r| r.get(0),
        )
        .optional()?;
    id.map(|id| get(c, &id)).transpose().map(Option::flatten)
}

/// Components whose automatic incident was resolved by hand and that have
/// not been seen up since.
pub fn hand_resolved(c: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = c.prepare("SELECT component FROM status_hand_resolved")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub fn set_hand_resolved(c: &Connection, component: &str, on: bool) -> Result<(), StoreError> {
    let sql = if on {
        "INSERT OR IGNORE INTO status_hand_resolved (component) VALUES (?1)"
    } else {
        "DELETE FROM status_hand_resolved WHERE component = ?1"
    };
    c.execute(sql, [component])?;
    Ok(())
}

/// The components of the gateway's own incidents still open.
pub fn open_auto_components(c: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT DISTINCT auto_component FROM incidents \
         WHERE auto_component IS NOT NULL AND resolved_at IS NULL",
    )?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<Vec<String>, _>>()?)
}

/// Inserts or replaces the incident's own row (not its updates).
pub fn put(c: &Connection, i: &Incident) -> Result<(), StoreError> {
    c.execute(
        &format!(
            "INSERT INTO incidents ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
             ON CONFLICT(id) DO UPDATE SET name = ?2, status = ?3, impact = ?4, components = ?5, \
             updated_at = ?8, monitoring_at = ?9, resolved_at = ?10"
        ),
        params![
            i.id,
            i.name,
            i.status.as_str(),
            i.impact.as_str(),
            serde_json::to_string(&i.components).unwrap_or_else(|_| "[]".into()),
            i.auto_component,
            i.created_at,
            i.updated_at,
            i.monitoring_at,
            i.resolved_at,
        ],
    )?;
    Ok(())
}

pub fn add_update(c: &Connection, incident_id: &str, u: &IncidentUpdate) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO incident_updates (id, incident_id, status, body, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![u.id, incident_id, u.status.as_str(), u.body, u.created_at],
    )?;
    Ok(())
}
