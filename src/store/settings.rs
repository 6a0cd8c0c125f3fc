//! Queries on `settings`: runtime-editable values stored as JSON by name.

use std::collections::HashMap;

use rusqlite::{params, Connection};

use super::StoreError;

pub fn all(c: &Connection) -> Result<HashMap<String, serde_json::Value>, StoreError> {
    let mut stmt = c.prepare("SELECT name, value FROM settings")?;
    let mut rows = stmt.query([])?;
    let mut out = HashMap::new();
    while let Some(r) = rows.next()? {
        let name: String = r.get(0)?;
        let value: String = r.get(1)?;
        let value = serde_json::from_str(&value)
            .map_err(|e| StoreError::Corrupt(format!("settings.{name}: {e}")))?;
        out.insert(name, value);
    }
    Ok(out)
}

pub fn put(c: &Connection, name: &str, value: &serde_json::Value) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO settings (name, value) VALUES (?1, ?2) \
         ON CONFLICT(name) DO UPDATE SET value = ?2",
        params![name, value.to_string()],
    )?;
    Ok(())
}
