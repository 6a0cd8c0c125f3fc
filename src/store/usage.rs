//! Queries on `usage_rollups`: upserts folded from each request-log batch,
//! range reads for the API and exports, and retention deletes.

use rusqlite::{params, Connection};

use super::StoreError;
use crate::logs::usage::{Granularity, Rollup, Slot};
use crate::telemetry::histogram::Histogram;

/// Adds each rollup to its stored row (inside the log batch's transaction).
pub fn add(c: &Connection, rollups: &[(Slot, Rollup)]) -> Result<(), StoreError> {
    let mut get = c.prepare_cached(
        "SELECT latency_hist FROM usage_rollups \
         WHERE granularity = ?1 AND bucket = ?2 AND key_id = ?3 AND model = ?4",
    )?;
    let mut put = c.prepare_cached(
        "INSERT INTO usage_rollups (granularity, bucket, key_id, model, requests, errors, \
         prompt_tokens, completion_tokens, latency_sum_ms, latency_hist) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (granularity, bucket, key_id, model) DO UPDATE SET \
           requests = requests + excluded.requests, errors = errors + excluded.errors, \
           prompt_tokens = prompt_tokens + excluded.prompt_tokens, \
           completion_tokens = completion_tokens + excluded.completion_tokens, \
           latency_sum_ms = latency_sum_ms + excluded.latency_sum_ms, \
           latency_hist = excluded.latency_hist",
    )?;
    for ((g, bucket, key_id, model), r) in rollups {
        let mut hist = r.latency.clone();
        let mut rows = get.query(params![g.as_str(), bucket, key_id, model])?;
        if let Some(row) = rows.next()? {
            hist.merge(&Histogram::from_bytes(&row.get::<_, Vec<u8>>(0)?));
        }
        drop(rows);
        put.execute(params![
            g.as_str(),
            bucket,
            key_id,
            model,
            r.requests as i64,
            r.errors as i64,
            r.prompt_tokens as i64,
            r.completion_tokens as i64,
            r.latency_sum_ms as i64,
            hist.to_bytes(),
        ])?;
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct UsageFilter {
    pub granularity: Granularity,
    /// Unix seconds, inclusive.
    pub since: i64,
    /// Unix seconds, exclusive.
    pub until: i64,
    pub key_id: Option<String>,
    pub model: Option<String>,
}

/// Rows in time order, then key and model.
pub fn query(c: &Connection, f: &UsageFilter) -> Result<Vec<(i64, Rollup)>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT bucket, key_id, model, requests, errors, prompt_tokens, completion_tokens, \
         latency_sum_ms, latency_hist FROM usage_rollups \
         WHERE granularity = ?1 AND bucket >= ?2 AND bucket < ?3 \
           AND (?4 IS NULL OR key_id = ?4) AND (?5 IS NULL OR model = ?5) \
         ORDER BY bucket, key_id, model LIMIT 100000",
    )?;
    let rows = stmt.query_map(
        params![f.granularity.as_str(), f.since, f.until, f.key_id, f.model],
        |r| {
            Ok((
                r.get::<_, i64>(0)?,
                Rollup {
                    key_id: r.get(1)?,
                    model: r.get(2)?,
                    requests: r.get::<_, i64>(3)? as u64,
                    errors: r.get::<_, i64>(4)? as u64,
                    prompt_tokens: r.get::<_, i64>(5)? as u64,
                    completion_tokens: r.get::<_, i64>(6)? as u64,
                    latency_sum_ms: r.get::<_, i64>(7)? as u64,
                    latency: Histogram::from_bytes(&r.get::<_, Vec<u8>>(8)?),
                },
            ))
        },
    )?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Tokens each key used in the UTC day starting at `day_start` (unix s).
pub fn tokens_on_day(c: &Connection, day_start: i64) -> Result<Vec<(String, u64)>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT key_id, SUM(prompt_tokens + completion_tokens) FROM usage_rollups \
         WHERE granularity = 'day' AND bucket = ?1 AND key_id != '' GROUP BY key_id",
    )?;
    let rows = stmt.query_map([day_start], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Deletes up to `limit` rollups of `g` older than `cutoff` (unix s).
pub fn delete_older_than(
    c: &Connection,
    g: Granularity,
    cutoff: i64,
    limit: u32,
) -> Result<usize, StoreError> {
    Ok(c.execute(
        "DELETE FROM usage_rollups WHERE (granularity, bucket, key_id, model) IN \
         (SELECT granularity, bucket, key_id, model FROM usage_rollups \
          WHERE granularity = ?1 AND bucket < ?2 LIMIT ?3)",
        params![g.as_str(), cutoff, limit],
    )?)
}
