//! Queries on `upstreams`. The API key column holds only sealed bytes.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::StoreError;

#[derive(Debug, Clone)]
pub struct UpstreamRow {
    pub id: String,
    pub name: String,
    pub base_url: String,
    pub api_key_enc: Option<Vec<u8>>,
    pub models: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, name, base_url, api_key_enc, models, created_at, updated_at";

fn from_row(r: &Row<'_>) -> Result<UpstreamRow, StoreError> {
    let models: String = r.get(4)?;
    Ok(UpstreamRow {
        id: r.get(0)?,
        name: r.get(1)?,
        base_url: r.get(2)?,
        api_key_enc: r.get(3)?,
        models: serde_json::from_str(&models)
            .map_err(|e| StoreError::Corrupt(format!("upstreams.models: {e}")))?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

pub fn all(c: &Connection) -> Result<Vec<UpstreamRow>, StoreError> {
    let mut stmt = c.prepare(&format!(
        "SELECT {COLUMNS} FROM upstreams ORDER BY created_at, rowid"
    ))?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(from_row(r)?);
    }
    Ok(out)
}

/// Finds an upstream by id or by name.
pub fn find(c: &Connection, id_or_name: &str) -> Result<Option<UpstreamRow>, StoreError> {
    let mut stmt = c.prepare(&format!(
        "SELECT {COLUMNS} FROM upstreams WHERE id = ?1 OR name = ?1"
    ))?;
    stmt.query_row([id_or_name], |r| Ok(from_row(r)))
        .optional()?
        .transpose()
}

pub fn upsert(c: &Connection, u: &UpstreamRow) -> Result<(), StoreError> {
    c.execute(
        &format!(
            "INSERT INTO upstreams ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT(id) DO UPDATE SET name = ?2, base_url = ?3, api_key_enc = ?4, \
             models = ?5, updated_at = ?7"
        ),
        params![
            u.id,
            u.name,
            u.base_url,
            u.api_key_enc,
            serde_json::to_string(&u.models).unwrap_or_else(|_| "[]".into()),
            u.created_at,
            u.updated_at,
        ],
    )?;
    Ok(())
}

pub fn delete(c: &Connection, id: &str) -> Result<bool, StoreError> {
    Ok(c.execute("DELETE FROM upstreams WHERE id = ?1", [id])? > 0)
}

/// Replaces an upstream's sealed API key (master key rotation).
pub fn set_sealed_key(c: &Connection, id: &str, sealed: &[u8]) -> Result<(), StoreError> {
    c.execute(
        "UPDATE upstreams SET api_key_enc = ?2 WHERE id = ?1",
        params![id, sealed],
    )?;
    Ok(())
}
