//! Queries on `audit_log`, a hash chain: each entry stores the SHA-256 of the
//! previous entry's hash and its own content, so an edited, deleted or
//! reordered row breaks the chain at a point `verify` can name.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::StoreError;

/// What an admin did; `before`/`after` are summaries without secrets.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub source: String,
    pub action: String,
    pub target: String,
    /// `null` when there was nothing before (a creation).
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    /// `null` when nothing is left after (a deletion).
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
}

#[derive(Debug, Clone)]
pub struct NewAudit {
    pub actor: String,
    pub source: String,
    pub action: String,
    pub target: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

fn entry_hash(prev: &[u8], e: &AuditEntry) -> Vec<u8> {
    let content = serde_json::to_vec(&(
        e.seq, e.at, &e.actor, &e.source, &e.action, &e.target, &e.before, &e.after,
    ))
    .unwrap_or_default();
    let mut h = Sha256::new();
    h.update(prev);
    h.update(&content);
    h.finalize().to_vec()
}

/// Appends inside the caller's transaction, so the entry commits with the change.
pub fn append(c: &Connection, new: NewAudit, at: i64) -> Result<AuditEntry, StoreError> {
    let last: Option<(i64, Vec<u8>)> = c
        .query_row(
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (prev_seq, prev_hash) = match last {
        Some(l) => l,
        None => anchor(c)?.unwrap_or((0, vec![0u8; 32])),
    };
    let entry = AuditEntry {
        seq: prev_seq + 1,
        at,
        actor: new.actor,
        source: new.source,
        action: new.action,
        target: new.target,
        before: new.before,
        after: new.after,
    };
    let hash = entry_hash(&prev_hash, &entry);
    c.execute(
        "INSERT INTO audit_log (seq, at, actor, source, action, target, before, after, prev_hash, hash) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            entry.seq,
            entry.at,
            entry.actor,
            entry.source,
            entry.action,
            entry.target,
            entry.before.as_ref().map(|v| v.to_string()),
            entry.after.as_ref().map(|v| v.to_string()),
            prev_hash,
            hash,
        ],
    )?;
    Ok(entry)
}

/// The first eight columns: seq, at, actor, source, action, target, before, after.
fn entry_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        seq: r.get(0)?,
        at: r.get(1)?,
        actor: r.get(2)?,
        source: r.get(3)?,
        action: r.get(4)?,
        target: r.get(5)?,
        before: parse_json(r.get(6)?),
        after: parse_json(r.get(7)?),
    })
}

fn parse_json(s: Option<String>) -> Option<serde_json::Value> {
    s.and_then(|s| serde_json::from_str(&s).ok())
}

/// Newest first; `before_seq` pages backwards.
/// What an audit listing keeps; `None` keeps everything.
#[derive(Debug, Default)]
pub struct Filter {
    /// An action (`key.create`) or a family of them (`key`).
    pub action: Option<String>,
    pub actor: Option<String>,
    pub target: Option<String>,
}

pub fn list(
    c: &Connection,
    limit: u32,
    before_seq: Option<i64>,
    f: &Filter,
) -> Result<Vec<AuditEntry>, StoreError> {
    // A family matches by its prefix up to the dot; `substr` rather than
    // LIKE so that `_` and `%` in what the admin typed mean themselves.
    let mut stmt = c.prepare(
        "SELECT seq, at, actor, source, action, target, before, after FROM audit_log \
         WHERE seq < ?1 \
           AND (?3 IS NULL OR action = ?3 OR substr(action, 1, length(?3) + 1) = ?3 || '.') \
           AND (?4 IS NULL OR actor = ?4) AND (?5 IS NULL OR target = ?5) \
         ORDER BY seq DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(
        params![
            before_seq.unwrap_or(i64::MAX),
            limit,
            f.action,
            f.actor,
            f.target
        ],
        entry_from_row,
    )?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Where the chain starts after pruning: the last pruned entry's seq and hash.
fn anchor(c: &Connection) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
    Ok(
        c.query_row("SELECT seq, hash FROM audit_anchor WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?,
    )
}

/// Deletes entries older than `cutoff` (unix s), records the last deleted
/// one's hash as the chain's new anchor and appends an `audit.prune` entry
/// saying so, all in the caller's transaction. Returns how many went.
pub fn prune_before(c: &Connection, cutoff: i64, now: i64) -> Result<usize, StoreError> {
    let last: Option<(i64, Vec<u8>)> = c
        .query_row(
            "SELECT seq, hash FROM audit_log WHERE at < ?1 ORDER BY seq DESC LIMIT 1",
            [cutoff],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((seq, hash)) = last else {
        return Ok(0);
    };
    c.execute(
        "INSERT INTO audit_anchor (id, seq, hash, pruned_at) VALUES (1, ?1, ?2, ?3) \
         ON CONFLICT (id) DO UPDATE SET seq = ?1, hash = ?2, pruned_at = ?3",
        params![seq, hash, now],
    )?;
    let n = c.execute("DELETE FROM audit_log WHERE seq <= ?1", [seq])?;
    append(
        c,
        NewAudit {
            actor: "system".into(),
            source: "retention".into(),
            action: "audit.prune".into(),
            target: "audit_log".into(),
            before: None,
            after: Some(serde_json::json!({
                "deleted": n,
                "anchor_seq": seq,
                "anchor_hash": hex::encode(&hash),
            })),
        },
        now,
    )?;
    Ok(n)
}

/// Walks the chain from its start (or its anchor, after pruning); `Err`
/// names the first broken entry.
pub fn verify(c: &Connection) -> Result<Result<u64, String>, StoreError> {
    let (anchor_seq, anchor_hash) = anchor(c)?.unwrap_or((0, vec![0u8; 32]));
    let mut stmt = c.prepare(
        "SELECT seq, at, actor, source, action, target, before, after, prev_hash, hash \
         FROM audit_log ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    let mut expected_prev = anchor_hash;
    let mut expected_seq = anchor_seq + 1;
    let mut count = 0u64;
    while let Some(r) = rows.next()? {
        let e = entry_from_row(r)?;
        let prev: Vec<u8> = r.get(8)?;
        let hash: Vec<u8> = r.get(9)?;
        if e.seq != expected_seq {
            return Ok(Err(format!(
                "entry {expected_seq} is missing (next entry found is {})",
                e.seq
            )));
        }
        if prev != expected_prev {
            return Ok(Err(format!(
                "entry {} does not follow entry {}",
                e.seq,
                e.seq - 1
            )));
        }
        if entry_hash(&prev, &e) != hash {
            return Ok(Err(format!("entry {} was altered", e.seq)));
        }
        expected_prev = hash;
        expected_seq += 1;
        count += 1;
    }
    Ok(Ok(count))
}
