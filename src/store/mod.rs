//! The SQLite store: the one owner of database connections.
//!
//! One writer connection (SQLite allows one writer at a time anyway), a
//! small pool of readers and a checkpointer, all in WAL mode. Work runs on
//! Tokio's blocking pool so no request thread ever waits on disk.
//! Table-specific queries live in the submodules as plain functions over a
//! `&Connection`.

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

/// WAL pages after which the writer checkpoints by itself: a backstop, for
/// when `checkpoint` is not being called (it normally runs every second, off
/// the writer, so the log writer does not wait on the main file's sync).
const WAL_BACKSTOP_PAGES: i64 = 16_384;

/// The size the WAL file is cut back to when it starts over after a burst.
const WAL_SIZE_LIMIT: i64 = 16 << 20;

/// Checkpoints in a row at most, while each gains on the writer.
const CHECKPOINT_ROUNDS: usize = 4;

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// Also held by whatever else checkpoints (`vacuum_incremental`,
    /// `flush`): a TRUNCATE checkpoint does not wait for a running one.
    checkpointer: Mutex<Connection>,
    wal: std::path::PathBuf,
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
        writer.pragma_update(None, "wal_autocheckpoint", WAL_BACKSTOP_PAGES)?;
        writer.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        migrations::apply(&mut writer)?;
        let readers = (0..READERS)
            .map(|_| {
                let c = Connection::open(&path)?;
                configure(&c)?;
                Ok(Mutex::new(c))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let checkpointer = Connection::open(&path)?;
        configure(&checkpointer)?;
        Ok(Store {
            inner: Arc::new(Inner {
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
                checkpointer: Mutex::new(checkpointer),
                wal: dir.join("gateway.db-wal"),
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
        self.write_with("FULL", f).await
    }

    /// Like `write`, but the commit is not synced: it survives the process
    /// (it is in the OS's cache at once) but not a power cut before the next
    /// checkpoint syncs it (`checkpoint`, every second). For the request
    /// log, whose batches each waited on a sync, and whose queue grew by
    /// thousands of records (~10 MB) while one took 200 ms. (SQLite still
    /// syncs the WAL's header when the WAL starts over, at most once per
    /// checkpoint.)
    pub async fn write_unsynced<F, R>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        self.write_with("NORMAL", f).await
    }

    /// Each write sets its own level before it begins, so none inherits
    /// another's (one that panicked half-way included).
    async fn write_with<F, R>(&self, sync: &'static str, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.writer.lock();
            conn.pragma_update(None, "synchronous", sync)?;
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::Join(e.to_string()))?
    }

    /// Copies the WAL into the main file (PASSIVE: never waits for the
    /// writer or a reader), on its own connection so the writer keeps
    /// appending meanwhile, and makes every commit so far durable: a
    /// checkpoint that copies frames syncs the WAL first; one that cannot
    /// copy them all (a reader holds an older snapshot) is followed by a
    /// sync of the WAL file itself. Repeats while it gains on the writer, so
    /// the WAL can start over rather than grow under steady load. Returns
    /// the frames it left in the WAL (synced there).
    pub async fn checkpoint(&self) -> Result<u64, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = inner.checkpointer.lock();
            let mut behind = 0;
            for _ in 0..CHECKPOINT_ROUNDS {
                // (busy, frames in the WAL, frames copied)
                let (_, log, copied): (i64, i64, i64) =
                    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })?;
                let left = log - copied;
                if left <= 0 || (behind > 0 && left >= behind) {
                    behind = left;
                    break;
                }
                behind = left;
            }
            if behind > 0 {
                std::fs::File::open(&inner.wal)
                    .and_then(|f| f.sync_data())
                    .map_err(|e| StoreError::Io(format!("{}: {e}", inner.wal.display())))?;
            }
            Ok(behind.max(0) as u64)
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
            let _checkpoints = inner.checkpointer.lock();
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
        let _checkpoints = self.inner.checkpointer.lock();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rows_in_main_file(dir: &Path) -> i64 {
        let copy = dir.join("copy.db");
        let _ = std::fs::copy(dir.join("gateway.db"), &copy);
        Connection::open(&copy)
            .and_then(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
            .unwrap_or(0)
    }

    async fn add(store: &Store, n: i64) -> Result<(), StoreError> {
        store
            .write_unsynced(move |tx| {
                for i in 0..n {
                    tx.execute("INSERT INTO t VALUES (?1)", [i])?;
                }
                Ok(())
            })
            .await
    }

    /// Unsynced commits reach the main file through `checkpoint` once no
    /// reader holds an older snapshot; until then they stay in the WAL.
    #[tokio::test]
    async fn checkpoints_copy_what_readers_allow_then_the_rest() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Io(e.to_string()))?;
        let store = Store::open(dir.path())?;
        store
            .write(|tx| Ok(tx.execute_batch("CREATE TABLE t (x INTEGER)")?))
            .await?;
        add(&store, 10).await?;
        assert_eq!(
            rows_in_main_file(dir.path()),
            0,
            "the writer does not checkpoint"
        );

        let reader = Connection::open(dir.path().join("gateway.db"))?;
        reader.execute_batch("BEGIN")?;
        let seen: i64 = reader.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?;
        assert_eq!(seen, 10);
        add(&store, 5).await?;
        // What the reader still needs stays in the WAL (synced there), and
        // the main file is not whole without it.
        assert!(store.checkpoint().await? > 0);
        assert_ne!(rows_in_main_file(dir.path()), 15);

        reader.execute_batch("COMMIT")?;
        assert_eq!(store.checkpoint().await?, 0);
        assert_eq!(rows_in_main_file(dir.path()), 15);
        // Admin writes after unsynced ones are synced as before.
        store
            .write(|tx| Ok(tx.execute("INSERT INTO t VALUES (99)", [])?))
            .await?;
        let level: i64 = store
            .inner
            .writer
            .lock()
            .query_row("PRAGMA synchronous", [], |r| r.get(0))?;
        assert_eq!(level, 2, "FULL");
        Ok(())
    }
}
