//! The SQLite store: the one owner of database connections.
//!
//! One writer connection (SQLite allows one writer at a time anyway) and a
//! small pool of readers, all in WAL mode. Work runs on Tokio's blocking pool
//! so no request thread ever waits on disk. Table-specific queries live in the
//! submodules as plain functions over a `&Connection`.

pub mod audit;
pub mod incidents;
pub mod keys;
pub mod logs;
pub mod maintenances;
mod migrations;
pub mod settings;
pub mod subscribers;
pub mod tiers;
pub mod upstreams;
pub mod uptime;
pub mod usage;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::Connection;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration: {0}")]
    Migration(String),
    #[error("background task failed: {0}")]
    Join(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Io(String),
}

const READERS: usize = 4;

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

impl Store {
    /// Opens (creating if needed) `gateway.db` in `dir` and applies migrations.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join("gateway.db");
        for suffix in ["", "-wal", "-shm"] {
            let file = dir.join(format!("gateway.db{suffix}"));
            if suffix.is_empty() || file.exists() {
                crate::fsutil::private_file(&file)
                    .map_err(|e| StoreError::Io(format!("{}: {e}", file.display())))?;
            }
        }
        let mut writer = Connection::open(&path)?;
        // auto_vacuum must be chosen before the first table exists.
        writer.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        configure(&writer)?;
        // FULL: an admin change is on disk when its transaction returns.
        writer.pragma_update(None, "synchronous", "FULL")?;
        migrations::apply(&mut writer)?;
        let readers = (0..READERS)
            .map(|_| {
                let c = Connection::open(&path)?;
                configure(&c)?;
                Ok(Mutex::new(c))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Store {
            inner: Arc::new(Inner {
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
            }),
        })
    }

    /// Runs `f` in one write transaction on the blocking pool; committed
    /// (and synced) before this returns.
    pub async fn write<F, R>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.writer.lock();
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::Join(e.to_string()))?
    }

    /// Runs `f` on a reader connection on the blocking pool.
    pub async fn read<F, R>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let i = inner.next_reader.fetch_add(1, Ordering::Relaxed) % inner.readers.len();
            let conn = inner.readers[i].lock();
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Join(e.to_string()))?
    }

    /// Synchronous read for start-up, before the runtime serves anything.
    pub fn read_now<R>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let conn = self.inner.readers[0].lock();
        f(&conn)
    }

    /// Returns free pages to the file system and truncates the WAL.
    pub async fn vacuum_incremental(&self) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = inner.writer.lock();
            // Each step of this pragma frees one page, so step it to the end
            // (`execute_batch` would step it only once).
            let mut stmt = conn.prepare("PRAGMA incremental_vacuum")?;
            let mut rows = stmt.query([])?;
            while rows.next()?.is_some() {}
            drop(rows);
            drop(stmt);
            conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Join(e.to_string()))?
    }

    /// Checkpoints the WAL into the main file; called on clean shutdown.
    pub fn flush(&self) -> Result<(), StoreError> {
        let conn = self.inner.writer.lock();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        Ok(())
    }
}

fn configure(c: &Connection) -> Result<(), StoreError> {
    let _mode: String = c.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    // 1 MiB of page cache per connection instead of SQLite's 2 MiB: writes
    // append at the right edge of each index, and the kernel caches the
    // file anyway; the difference showed in the gateway's peak RSS.
    c.pragma_update(None, "cache_size", -1024)?;
    c.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

/// Current time as Unix seconds, the unit every timestamp column uses.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
