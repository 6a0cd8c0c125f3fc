//! The retention job: deletes expired request logs in small batches, so no single
//! transaction holds the writer for long, then hands the freed pages back
//! to the file system (incremental vacuum) so the data dir stays small.

use std::time::Duration;

use crate::app::AppState;

const BATCH: u32 = 1000;
pub const INTERVAL: Duration = Duration::from_secs(600);

/// One pass; returns how many request log records were deleted.
pub async fn run_once(state: &AppState) -> Result<usize, crate::store::StoreError> {
    let retention = state.settings().logs.retention.clone();
    let cutoff = crate::logs::unix_ms() - retention.request_logs.as_millis() as i64;
    let mut total = 0;
    loop {
        let n = state
            .store
            .write(move |tx| crate::store::logs::delete_older_than(tx, cutoff, BATCH))
            .await?;
        total += n;
        if n < BATCH as usize {
            break;
        }
        // Let request-log batches and admin writes in between.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if total > 0 {
        state.store.vacuum_incremental().await?;
        tracing::info!(deleted = total, "request logs past retention deleted");
    }
    Ok(total)
}
