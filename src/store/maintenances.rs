//! Queries on `maintenances`: scheduled windows and their progress.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::StoreError;
use crate::status::model::{Maintenance, MaintenanceStatus};

const COLUMNS: &str = "id, name, body, status, components, scheduled_for, scheduled_until, \
                       created_at, updated_at, started_at, completed_at";

fn from_row(r: &Row<'_>) -> Result<Maintenance, StoreError> {
    let status: String = r.get(3)?;
    let components: String = r.get(4)?;
    Ok(Maintenance {
        id: r.get(0)?,
        name: r.get(1)?,
        body: r.get(2)?,
        status: MaintenanceStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt("maintenances.status".into()))?,
        components: serde_json::from_str(&components)
            .map_err(|_| StoreError::Corrupt("maintenances.components".into()))?,
        scheduled_for: r.get(5)?,
        scheduled_until: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
        started_at: r.get(9)?,
        completed_at: r.get(10)?,
    })
}

fn query(
    c: &Connection,
    filter: &str,
    p: impl rusqlite::Params,
) -> Result<Vec<Maintenance>, StoreError> {
    let mut stmt = c.prepare(&format!("SELECT {COLUMNS} FROM maintenances {filter}"))?;
    let mut rows = stmt.query(p)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(from_row(r)?);
    }
    Ok(out)
}

pub fn get(c: &Connection, id: &str) -> Result<Option<Maintenance>, StoreError> {
    c.query_row(
        &format!("SELECT {COLUMNS} FROM maintenances WHERE id = ?1"),
        [id],
        |r| Ok(from_row(r)),
    )
    .optional()?
    .transpose()
}

/// Windows not completed, and completed ones that ended at or after `since`;
/// soonest first.
pub fn recent(c: &Connection, since: i64) -> Result<Vec<Maintenance>, StoreError> {
    query(
        c,
        "WHERE status != 'completed' OR scheduled_until >= ?1 ORDER BY scheduled_for, id",
        [since],
    )
}

pub fn put(c: &Connection, m: &Maintenance) -> Result<(), StoreError> {
    c.execute(
        &format!(
            "INSERT INTO maintenances ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
             ON CONFLICT(id) DO UPDATE SET name = ?2, body = ?3, status = ?4, components = ?5, \
             scheduled_for = ?6, scheduled_until = ?7, updated_at = ?9, started_at = ?10, \
             completed_at = ?11"
        ),
        params![
            m.id,
            m.name,
            m.body,
            m.status.as_str(),
            serde_json::to_string(&m.components).unwrap_or_else(|_| "[]".into()),
            m.scheduled_for,
            m.scheduled_until,
            m.created_at,
            m.updated_at,
            m.started_at,
            m.completed_at,
        ],
    )?;
    Ok(())
}
