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
         prompt_tokens, completion_tokens, latency_sum_ms, latency_hist, unreported_tokens) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?12) \
         ON CONFLICT (granularity, bucket, key_id, model) DO UPDATE SET \
           requests = MIN(requests + excluded.requests, ?11), \
           errors = MIN(errors + excluded.errors, ?11), \
           prompt_tokens = MIN(prompt_tokens + excluded.prompt_tokens, ?11), \
           completion_tokens = MIN(completion_tokens + excluded.completion_tokens, ?11), \
           latency_sum_ms = MIN(latency_sum_ms + excluded.latency_sum_ms, ?11), \
           latency_hist = excluded.latency_hist, \
           unreported_tokens = MIN(unreported_tokens + excluded.unreported_tokens, ?11)",
    )?;
    // SQLite turns an integer sum that overflows into a REAL, which no
    // later read takes as an integer: sums stop at i64::MAX instead.
    let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
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
            int(r.requests),
            int(r.errors),
            int(r.prompt_tokens),
            int(r.completion_tokens),
            int(r.latency_sum_ms),
            hist.to_bytes(),
            i64::MAX,
            int(r.unreported_tokens),
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

/// The newest `limit` rows, in time order, then key and model.
pub fn query(
    c: &Connection,
    f: &UsageFilter,
    limit: usize,
) -> Result<Vec<(i64, Rollup)>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT bucket, key_id, model, requests, errors, prompt_tokens, completion_tokens, \
         latency_sum_ms, latency_hist, unreported_tokens FROM usage_rollups \
         WHERE granularity = ?1 AND bucket >= ?2 AND bucket < ?3 \
           AND (?4 IS NULL OR key_id = ?4) AND (?5 IS NULL OR model = ?5) \
         ORDER BY bucket DESC, key_id DESC, model DESC LIMIT ?6",
    )?;
    let rows = stmt.query_map(
        params![
            f.granularity.as_str(),
            f.since,
            f.until,
            f.key_id,
            f.model,
            i64::try_from(limit).unwrap_or(i64::MAX)
        ],
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
                    unreported_tokens: r.get::<_, i64>(9)? as u64,
                },
            ))
        },
    )?;
    let mut rows = rows.collect::<Result<Vec<_>, _>>()?;
    rows.reverse();
    Ok(rows)
}

/// Tokens each key was charged in the UTC day starting at `day_start` (unix
/// s): reported usage, and the reservations that stood without a report.
pub fn tokens_on_day(c: &Connection, day_start: i64) -> Result<Vec<(String, u64)>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT key_id, CAST(MIN(total(prompt_tokens) + total(completion_tokens) \
         + total(unreported_tokens), 9e18) AS INTEGER) \
         FROM usage_rollups \
         WHERE granularity = 'day' AND bucket = ?1 AND key_id != '' GROUP BY key_id",
    )?;
    let rows = stmt.query_map([day_start], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Deletes up to `limit` rollups of `g` whose bucket starts before `cutoff` (unix s).
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
