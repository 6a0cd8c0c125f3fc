//! Queries on `api_keys`.

use std::sync::atomic::AtomicI64;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::StoreError;
use crate::keys::{ApiKey, Environment};

const COLUMNS: &str = "id, name, hash, prefix, environment, tier, models, created_at, \
                       last_used_at, expires_at, revoked_at, allowed_domains, allowed_ips, \
                       overrides, replaced_by";

fn json_col<T: serde::de::DeserializeOwned>(
    r: &Row<'_>,
    i: usize,
    what: &str,
) -> Result<T, StoreError> {
    let text: String = r.get(i)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("api_keys.{what}: {e}")))
}

fn from_row(r: &Row<'_>) -> Result<ApiKey, StoreError> {
    let hash: Vec<u8> = r.get(2)?;
    let env: String = r.get(4)?;
    let models: String = r.get(6)?;
    Ok(ApiKey {
        id: r.get(0)?,
        name: r.get(1)?,
        hash: hash
            .try_into()
            .map_err(|_| StoreError::Corrupt("api_keys.hash is not 32 bytes".into()))?,
        prefix: r.get(3)?,
        environment: Environment::parse(&env)
            .ok_or_else(|| StoreError::Corrupt(format!("api_keys.environment {env:?}")))?,
        tier: r.get(5)?,
        models: serde_json::from_str(&models)
            .map_err(|e| StoreError::Corrupt(format!("api_keys.models: {e}")))?,
        created_at: r.get(7)?,
        last_used_at: AtomicI64::new(r.get::<_, Option<i64>>(8)?.unwrap_or(0)),
        last_used_flushed: AtomicI64::new(r.get::<_, Option<i64>>(8)?.unwrap_or(0)),
        expires_at: r.get(9)?,
        revoked_at: r.get(10)?,
        allowed_domains: json_col::<Vec<String>>(r, 11, "allowed_domains")?
            .iter()
            .map(|d| crate::access::origin::parse_pattern(d))
            .collect::<Result<_, _>>()
            .map_err(StoreError::Corrupt)?,
        allowed_ips: json_col::<Vec<String>>(r, 12, "allowed_ips")?
            .iter()
            .map(|d| crate::access::parse_cidr(d))
            .collect::<Result<_, _>>()
            .map_err(StoreError::Corrupt)?,
        overrides: json_col(r, 13, "overrides")?,
        replaced_by: r.get(14)?,
    })
}

pub fn all(c: &Connection) -> Result<Vec<ApiKey>, StoreError> {
    let mut stmt = c.prepare(&format!(
        "SELECT {COLUMNS} FROM api_keys ORDER BY created_at"
    ))?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(from_row(r)?);
    }
    Ok(out)
}

pub fn get(c: &Connection, id: &str) -> Result<Option<ApiKey>, StoreError> {
    let mut stmt = c.prepare(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1"))?;
    let row = stmt.query_row([id], |r| Ok(from_row(r))).optional()?;
    row.transpose()
}

pub fn insert(c: &Connection, k: &ApiKey) -> Result<(), StoreError> {
    c.execute(
        &format!("INSERT INTO api_keys ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, ?9, ?10, ?11, ?12, ?13, ?14)"),
        params![
            k.id,
            k.name,
            k.hash.as_slice(),
            k.prefix,
            k.environment.as_str(),
            k.tier,
            models_json(&k.models),
            k.created_at,
            k.expires_at,
            k.revoked_at,
            domains_json(k),
            ips_json(k),
            overrides_json(k),
            k.replaced_by,
        ],
    )?;
    Ok(())
}

fn domains_json(k: &ApiKey) -> String {
    serde_json::to_string(
        &k.allowed_domains
            .iter()
            .map(|p| p.as_string())
            .collect::<Vec<_>>(),
    )
    .unwrap_or_else(|_| "[]".into())
}

fn ips_json(k: &ApiKey) -> String {
    serde_json::to_string(
        &k.allowed_ips
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>(),
    )
    .unwrap_or_else(|_| "[]".into())
}

fn overrides_json(k: &ApiKey) -> String {
    serde_json::to_string(&k.overrides).unwrap_or_else(|_| "{}".into())
}

/// Writes the editable fields of `k` (everything but id, hash and creation).
pub fn update(c: &Connection, k: &ApiKey) -> Result<(), StoreError> {
    c.execute(
        "UPDATE api_keys SET name = ?2, environment = ?3, tier = ?4, models = ?5, \
         expires_at = ?6, revoked_at = ?7, allowed_domains = ?8, allowed_ips = ?9, \
         overrides = ?10, replaced_by = ?11 WHERE id = ?1",
        params![
            k.id,
            k.name,
            k.environment.as_str(),
            k.tier,
            models_json(&k.models),
            k.expires_at,
            k.revoked_at,
            domains_json(k),
            ips_json(k),
            overrides_json(k),
            k.replaced_by,
        ],
    )?;
    Ok(())
}

pub fn touch_last_used(c: &Connection, seen: &[(String, i64)]) -> Result<(), StoreError> {
    let mut stmt = c.prepare(
        "UPDATE api_keys SET last_used_at = max(coalesce(last_used_at, 0), ?2) WHERE id = ?1",
    )?;
    for (id, at) in seen {
        stmt.execute(params![id, at])?;
    }
    Ok(())
}

fn models_json(models: &[String]) -> String {
    serde_json::to_string(models).unwrap_or_else(|_| "[]".into())
}
