//! The retention job: deletes expired request logs, usage rollups and (when
//! configured) audit entries in small batches, so no single transaction
//! holds the writer for long, then hands the freed pages back to the file
//! system (incremental vacuum) so the data dir stays small.

use std::time::Duration;

use super::usage::{Granularity, HOURLY_KEEP_SECS};
use crate::app::AppState;
use crate::store::StoreError;

const BATCH: u32 = 1000;
pub const INTERVAL: Duration = Duration::from_secs(600);

/// What one pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub request_logs: usize,
    pub usage_rollups: usize,
    pub audit_entries: usize,
}

/// Runs `delete` (which removes up to `BATCH` rows) until it removes fewer.
async fn in_batches<F>(state: &AppState, delete: F) -> Result<usize, StoreError>
where
    F: Fn(&rusqlite::Transaction<'_>) -> Result<usize, StoreError> + Clone + Send + 'static,
{
    let mut total = 0;
    loop {
        let n = state.store.write(delete.clone()).await?;
        total += n;
        if n < BATCH as usize {
            return Ok(total);
        }
        // Let request-log batches and admin writes in between.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn run_once(state: &AppState) -> Result<Swept, StoreError> {
    let retention = state.settings().logs.retention.clone();
    let now_ms = crate::logs::unix_ms();
    let now = now_ms / 1000;

    let cutoff = now_ms - retention.request_logs.as_millis() as i64;
    let request_logs = in_batches(state, move |c| {
        crate::store::logs::delete_older_than(c, cutoff, BATCH)
    })
    .await?;

    // A bucket goes once all of it is past retention: under a day's
    // retention, comparing its start deleted today's rollup, still growing,
    // and with it what the daily token budgets are reseeded from at start.
    let ended_before = |g: Granularity, cutoff: i64| cutoff.saturating_sub(g.seconds() - 1);
    let daily_cutoff = ended_before(Granularity::Day, now - retention.usage.as_secs() as i64);
    let mut usage_rollups = in_batches(state, move |c| {
        crate::store::usage::delete_older_than(c, Granularity::Day, daily_cutoff, BATCH)
    })
    .await?;
    let hourly_cutoff = ended_before(Granularity::Hour, now - HOURLY_KEEP_SECS);
    usage_rollups += in_batches(state, move |c| {
        crate::store::usage::delete_older_than(c, Granularity::Hour, hourly_cutoff, BATCH)
    })
    .await?;

    let audit_entries = match retention.audit {
        None => 0,
        Some(keep) => {
            let cutoff = now - keep.as_secs() as i64;
            state
                .store
                .write(move |tx| crate::store::audit::prune_before(tx, cutoff, now))
                .await?
        }
    };

    let swept = Swept {
        request_logs,
        usage_rollups,
        audit_entries,
    };
    if swept != Swept::default() {
        state.store.vacuum_incremental().await?;
        tracing::info!(?swept, "data past retention deleted");
    }
    Ok(swept)
}
