//! Queries on `request_logs`.

use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

use super::StoreError;
use crate::logs::Record;

type Sealed = Option<(Vec<u8>, u32)>;

/// Rows inserted between two chances for other threads to run (~0.3 ms).
const YIELD_EVERY: usize = 24;

/// The most distinct safety logs stored once and referred to; past it they
/// are stored in their records (only generic ones are shared, and their
/// variety is bounded by the configuration, so this is a safeguard).
const SHARED_SAFETY_MAX: i64 = 4096;

pub fn insert_batch(c: &Connection, rows: &[(Record, Sealed)]) -> Result<(), StoreError> {
    let mut stmt = c.prepare_cached(
        "INSERT INTO request_logs (id, at, key_id, model, upstream, status, error_code, \
         latency_ms, ttfb_ms, prompt_tokens, completion_tokens, client_ip, origin, stream, safety, \
         body_enc, key_version, client_request_id, safety_ref, unreported_tokens) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
    )?;
    // Consecutive records mostly carry the same checks with the same
    // outcome: their JSON is printed (and looked up) once per run of equal logs.
    let mut printed: Option<(&crate::safety::SafetyLog, Stored)> = None;
    for (i, (r, sealed)) in rows.iter().enumerate() {
        // The gateway may have one CPU: a batch of hundreds of rows held it
        // for milliseconds at a stretch, the p99 of every request that
        // arrived meanwhile. Between chunks the request threads go first.
        if i > 0 && i % YIELD_EVERY == 0 {
            std::thread::yield_now();
        }
        // A shared log is the same allocation: no comparison needed.
        if printed
            .as_ref()
            .is_none_or(|(log, _)| !std::ptr::eq(*log, &*r.safety) && **log != *r.safety)
        {
            printed = Some((&r.safety, Stored::of(c, &r.safety)?));
        }
        let (text, shared) = printed
            .as_ref()
            .map_or(("", None), |(_, s)| (s.text.as_str(), s.shared));
        stmt.execute(params![
            r.id,
            r.at,
            r.key_id,
            r.model,
            r.upstream,
            r.status,
            r.error_code,
            r.latency_ms as i64,
            r.ttfb_ms.map(|v| v as i64),
            r.prompt_tokens.map(|v| v as i64),
            r.completion_tokens.map(|v| v as i64),
            r.client_ip,
            r.origin,
            r.stream,
            text,
            sealed.as_ref().map(|s| s.0.as_slice()),
            sealed.as_ref().map(|s| s.1),
            r.client_request_id,
            shared,
            r.unreported_tokens.map(|v| v as i64),
        ])?;
    }
    Ok(())
}

/// A safety log as a record stores it: its JSON, or a reference to the
/// shared copy of it with the record's own text left empty.
struct Stored {
    text: String,
    shared: Option<i64>,
}

impl Stored {
    fn of(c: &Connection, log: &crate::safety::SafetyLog) -> Result<Stored, StoreError> {
        let json = serde_json::to_string(log).unwrap_or_default();
        let shared = if log.is_generic() {
            shared_safety(c, &json)?
        } else {
            None
        };
        Ok(match shared {
            Some(id) => Stored {
                text: String::new(),
                shared: Some(id),
            },
            None => Stored {
                text: json,
                shared: None,
            },
        })
    }
}

/// The id of the shared copy of `json`, made if there is room.
fn shared_safety(c: &Connection, json: &str) -> Result<Option<i64>, StoreError> {
    let found = c
        .prepare_cached("SELECT id FROM safety_texts WHERE json = ?1")?
        .query_row([json], |r| r.get(0))
        .optional()?;
    if found.is_some() {
        return Ok(found);
    }
    let newest: i64 = c.query_row("SELECT COALESCE(MAX(id), 0) FROM safety_texts", [], |r| {
        r.get(0)
    })?;
    if newest >= SHARED_SAFETY_MAX {
        return Ok(None);
    }
    c.prepare_cached("INSERT INTO safety_texts (json) VALUES (?1)")?
        .execute([json])?;
    Ok(Some(c.last_insert_rowid()))
}

/// A record's safety log, whether shared or its own.
const SAFETY: &str = "COALESCE((SELECT json FROM safety_texts WHERE id = safety_ref), safety)";

/// The columns `from_row` reads, in its order (the 15th is `SAFETY`).
fn columns() -> String {
    format!(
        "id, at, key_id, model, upstream, status, error_code, latency_ms, ttfb_ms, \
         prompt_tokens, completion_tokens, client_ip, origin, stream, {SAFETY}, \
         body_enc IS NOT NULL, client_request_id, unreported_tokens"
    )
}

/// A stored record and whether it has a sealed body.
pub type Row2 = (Record, bool);

fn from_row(r: &Row<'_>) -> rusqlite::Result<Row2> {
    let safety: String = r.get(14)?;
    Ok((
        Record {
            id: r.get(0)?,
            client_request_id: r.get(16)?,
            at: r.get(1)?,
            key_id: r.get(2)?,
            model: r.get(3)?,
            upstream: r.get(4)?,
            status: r.get(5)?,
            error_code: r.get(6)?,
            latency_ms: r.get::<_, i64>(7)? as u64,
            ttfb_ms: r.get::<_, Option<i64>>(8)?.map(|v| v as u64),
            prompt_tokens: r.get::<_, Option<i64>>(9)?.map(|v| v as u64),
            completion_tokens: r.get::<_, Option<i64>>(10)?.map(|v| v as u64),
            unreported_tokens: r.get::<_, Option<i64>>(17)?.map(|v| v as u64),
            client_ip: r.get(11)?,
            origin: r.get(12)?,
            stream: r.get(13)?,
            safety: std::sync::Arc::new(serde_json::from_str(&safety).unwrap_or_default()),
            body: None,
        },
        r.get(15)?,
    ))
}

#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub key_id: Option<String>,
    pub model: Option<String>,
    pub status: Option<u16>,
    /// Records with this id, or sent with it as the client's `x-request-id`.
    pub request_id: Option<String>,
    /// Only records where a safety check took this action (`block`, `flag`, `log`).
    pub safety_action: Option<String>,
    /// Keyset cursor: records strictly older than (at, id).
    pub before: Option<(i64, String)>,
    pub limit: u32,
}

/// Newest first, paged by keyset so deep pages cost what the first one does.
pub fn list(c: &Connection, f: &Filter) -> Result<Vec<Row2>, StoreError> {
    let mut sql = format!("SELECT {} FROM request_logs WHERE 1=1", columns());
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    let mut push = |clause: &str, v: rusqlite::types::Value, sql: &mut String| {
        args.push(v);
        sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
    };
    if let Some(v) = f.since_ms {
        push(" AND at >= ?", v.into(), &mut sql);
    }
    if let Some(v) = f.until_ms {
        push(" AND at < ?", v.into(), &mut sql);
    }
    if let Some(v) = &f.key_id {
        push(" AND key_id = ?", v.clone().into(), &mut sql);
    }
    if let Some(v) = &f.model {
        push(" AND model = ?", v.clone().into(), &mut sql);
    }
    if let Some(v) = f.status {
        push(" AND status = ?", i64::from(v).into(), &mut sql);
    }
    if let Some(v) = &f.request_id {
        push(" AND (id = ?", v.clone().into(), &mut sql);
        push(" OR client_request_id = ?)", v.clone().into(), &mut sql);
    }
    if let Some(a) = &f.safety_action {
        push(
            &format!(" AND instr({SAFETY}, ?) > 0"),
            format!("\"action\":\"{a}\"").into(),
            &mut sql,
        );
    }
    if let Some((at, id)) = &f.before {
        push(" AND (at < ?", (*at).into(), &mut sql);
        push(" OR (at = ?", (*at).into(), &mut sql);
        push(" AND id < ?))", id.clone().into(), &mut sql);
    }
    sql.push_str(&format!(" ORDER BY at DESC, id DESC LIMIT {}", f.limit));
    let mut stmt = c.prepare(&sql)?;
    let rows = stmt.query_map(params_from_iter(args), from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The record with this id or, failing that, the newest one the client sent
/// with it as its `x-request-id` (the id its answer carried).
pub fn get(c: &Connection, id: &str) -> Result<Option<Row2>, StoreError> {
    let mut stmt = c.prepare(&format!(
        "SELECT {} FROM request_logs WHERE id = ?1",
        columns()
    ))?;
    if let Some(row) = stmt.query_row([id], from_row).optional()? {
        return Ok(Some(row));
    }
    let mut stmt = c.prepare(&format!(
        "SELECT {} FROM request_logs WHERE client_request_id = ?1 \
         ORDER BY at DESC, id DESC LIMIT 1",
        columns()
    ))?;
    Ok(stmt.query_row([id], from_row).optional()?)
}

pub fn sealed_body(c: &Connection, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let v: Option<Option<Vec<u8>>> = c
        .query_row(
            "SELECT body_enc FROM request_logs WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(v.flatten())
}

/// Deletes up to `batch` records older than `cutoff_ms`; returns how many.
pub fn delete_older_than(c: &Connection, cutoff_ms: i64, batch: u32) -> Result<usize, StoreError> {
    Ok(c.execute(
        "DELETE FROM request_logs WHERE rowid IN \
         (SELECT rowid FROM request_logs WHERE at < ?1 LIMIT ?2)",
        params![cutoff_ms, batch],
    )?)
}

/// How many sealed bodies each key version holds.
pub fn count_by_key_version(c: &Connection) -> Result<Vec<(u32, u64)>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT key_version, COUNT(*) FROM request_logs \
         WHERE key_version IS NOT NULL GROUP BY key_version ORDER BY key_version",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, u32>(0)?, r.get::<_, i64>(1)? as u64))
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Up to `limit` sealed bodies under a key older than `current`, with ids
/// after `after` (a cursor, so rows that cannot be re-sealed are passed over).
pub fn sealed_before_version(
    c: &Connection,
    current: u32,
    after: &str,
    limit: u32,
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT id, body_enc FROM request_logs \
         WHERE key_version < ?1 AND body_enc IS NOT NULL AND id > ?2 ORDER BY id LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![current, after, limit], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub fn reseal(c: &Connection, rows: &[(String, Vec<u8>, u32)]) -> Result<(), StoreError> {
    let mut stmt =
        c.prepare_cached("UPDATE request_logs SET body_enc = ?2, key_version = ?3 WHERE id = ?1")?;
    for (id, body, version) in rows {
        stmt.execute(params![id, body, version])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::Draft;
    use crate::safety::{Check, SafetyLog};

    fn record(id: &str, safety: SafetyLog) -> (Record, Sealed) {
        let mut d = Draft::new(id.to_owned(), None, None);
        d.record.safety = std::sync::Arc::new(safety);
        (d.finish(200, None, None), None)
    }

    /// Shared and inline logs, and rows written before logs were shared,
    /// all read back whole and answer the action filter.
    #[test]
    fn safety_logs_shared_inline_and_older_read_back_the_same() -> Result<(), StoreError> {
        let mut c = Connection::open_in_memory()?;
        super::super::migrations::apply(&mut c)?;
        let generic = SafetyLog {
            checks: vec![Check::skipped("validation", "input", "schema", "disabled")],
        };
        let mut fired = Check::ran("injection", "input", "rules");
        fired.fired.push("override".into());
        fired.action = "block".into();
        let particular = SafetyLog {
            checks: vec![fired],
        };
        let rows = [
            record("req_a", generic.clone()),
            record("req_b", generic.clone()),
            record("req_c", particular.clone()),
        ];
        insert_batch(&c, &rows)?;
        insert_batch(&c, &[record("req_d", generic.clone())])?;
        // As a build before migration 7 wrote it.
        c.execute(
            "INSERT INTO request_logs (id, at, status, latency_ms, stream, safety) \
             VALUES ('req_old', 1, 200, 0, 0, ?1)",
            [serde_json::to_string(&particular).unwrap_or_default()],
        )?;
        let texts: i64 = c.query_row("SELECT COUNT(*) FROM safety_texts", [], |r| r.get(0))?;
        assert_eq!(texts, 1);
        for (id, want) in [
            ("req_a", &generic),
            ("req_d", &generic),
            ("req_c", &particular),
            ("req_old", &particular),
        ] {
            let got = get(&c, id)?.map(|(r, _)| r.safety);
            assert_eq!(got.as_deref(), Some(want), "{id}");
        }
        let blocked = list(
            &c,
            &Filter {
                safety_action: Some("block".into()),
                limit: 10,
                ..Filter::default()
            },
        )?;
        let ids: Vec<&str> = blocked.iter().map(|(r, _)| r.id.as_str()).collect();
        assert_eq!(ids, ["req_c", "req_old"]);
        Ok(())
    }
}
