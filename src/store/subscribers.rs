//! Queries on `status_subscribers`: e-mail addresses and webhook URLs told
//! about incidents and maintenance. A webhook's signing secret is stored
//! sealed only.

use rusqlite::{params, Connection};
use serde::Serialize;

use super::StoreError;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Subscriber {
    pub id: String,
    /// `email` or `webhook`.
    pub kind: String,
    /// The address or the URL.
    pub target: String,
    pub created_at: i64,
    #[serde(skip)]
    pub secret_enc: Option<Vec<u8>>,
}

pub fn all(c: &Connection) -> Result<Vec<Subscriber>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT id, kind, target, secret_enc, created_at FROM status_subscribers ORDER BY created_at, id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Subscriber {
            id: r.get(0)?,
            kind: r.get(1)?,
            target: r.get(2)?,
            secret_enc: r.get(3)?,
            created_at: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub fn exists(c: &Connection, id: &str) -> Result<bool, StoreError> {
    Ok(c.query_row(
        "SELECT EXISTS (SELECT 1 FROM status_subscribers WHERE id = ?1)",
        [id],
        |r| r.get(0),
    )?)
}

/// False when the same kind and target is subscribed already.
pub fn insert(c: &Connection, s: &Subscriber) -> Result<bool, StoreError> {
    let n = c.execute(
        "INSERT OR IGNORE INTO status_subscribers (id, kind, target, secret_enc, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![s.id, s.kind, s.target, s.secret_enc, s.created_at],
    )?;
    Ok(n > 0)
}

/// Replaces a webhook's sealed signing secret (master key rotation).
pub fn set_sealed_secret(c: &Connection, id: &str, sealed: &[u8]) -> Result<(), StoreError> {
    c.execute(
        "UPDATE status_subscribers SET secret_enc = ?2 WHERE id = ?1",
        params![id, sealed],
    )?;
    Ok(())
}

pub fn delete(c: &Connection, id: &str) -> Result<Option<Subscriber>, StoreError> {
    let found = all(c)?.into_iter().find(|s| s.id == id);
    if found.is_some() {
        c.execute("DELETE FROM status_subscribers WHERE id = ?1", [id])?;
    }
    Ok(found)
}
