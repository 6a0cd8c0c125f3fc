//! Queries on `uptime_days`: one row per component and UTC day, counting the
//! status sampler's verdicts. Written once per sample, never per request.

use rusqlite::{params, Connection};

use super::StoreError;
use crate::status::model::{day_of, ComponentStatus, UptimeDay};

/// Adds one sample per component for the day of `at`.
pub fn record(
    c: &Connection,
    at: i64,
    samples: &[(String, ComponentStatus)],
) -> Result<(), StoreError> {
    let mut stmt = c.prepare_cached(
        "INSERT INTO uptime_days (component, day, operational, degraded, partial, major, maintenance) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT(component, day) DO UPDATE SET operational = operational + ?3, \
         degraded = degraded + ?4, partial = partial + ?5, major = major + ?6, \
         maintenance = maintenance + ?7",
    )?;
    let day = day_of(at);
    for (component, status) in samples {
        let mut d = UptimeDay::default();
        d.add(*status);
        stmt.execute(params![
            component,
            day,
            d.operational,
            d.degraded,
            d.partial,
            d.major,
            d.maintenance
        ])?;
    }
    Ok(())
}

/// Every component's days from `since_day` on, oldest first.
pub fn since(c: &Connection, since_day: i64) -> Result<Vec<(String, UptimeDay)>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT component, day, operational, degraded, partial, major, maintenance \
         FROM uptime_days WHERE day >= ?1 ORDER BY component, day",
    )?;
    let rows = stmt.query_map([since_day], |r| {
        Ok((
            r.get(0)?,
            UptimeDay {
                day: r.get(1)?,
                operational: r.get(2)?,
                degraded: r.get(3)?,
                partial: r.get(4)?,
                major: r.get(5)?,
                maintenance: r.get(6)?,
            },
        ))
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Drops days before `before_day`.
pub fn prune(c: &Connection, before_day: i64) -> Result<usize, StoreError> {
    Ok(c.execute(
        "DELETE FROM uptime_days WHERE day < ?1",
        params![before_day],
    )?)
}
