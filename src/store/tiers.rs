//! Queries on `tiers`.

use rusqlite::{params, Connection};

use super::StoreError;
use crate::limits::Tier;

pub fn all(c: &Connection) -> Result<Vec<Tier>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT name, requests_per_min, tokens_per_min, max_concurrent_streams, daily_token_budget \
         FROM tiers ORDER BY requests_per_min, name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Tier {
            name: r.get(0)?,
            requests_per_min: r.get(1)?,
            tokens_per_min: r.get(2)?,
            max_concurrent_streams: r.get(3)?,
            daily_token_budget: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub fn upsert(c: &Connection, t: &Tier, now: i64) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO tiers (name, requests_per_min, tokens_per_min, max_concurrent_streams, \
         daily_token_budget, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) \
         ON CONFLICT(name) DO UPDATE SET requests_per_min = ?2, tokens_per_min = ?3, \
         max_concurrent_streams = ?4, daily_token_budget = ?5, updated_at = ?6",
        params![
            t.name,
            t.requests_per_min,
            t.tokens_per_min,
            t.max_concurrent_streams,
            t.daily_token_budget,
            now
        ],
    )?;
    Ok(())
}

pub fn delete(c: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(c.execute("DELETE FROM tiers WHERE name = ?1", [name])? > 0)
}

/// Ids of the keys (revoked ones included) that name this tier.
pub fn keys_using(c: &Connection, name: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = c.prepare("SELECT id FROM api_keys WHERE tier = ?1 ORDER BY created_at")?;
    let rows = stmt.query_map([name], |r| r.get(0))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
