//! Re-encryption after a master key rotation: request bodies sealed under an
//! older key version are opened and sealed again under the current one, in
//! small batches in the background, so rotation never blocks the gateway.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::app::AppState;

const BATCH: u32 = 500;

/// At most one pass runs at a time; a rotation during a pass is picked up
/// by the next one.
#[derive(Default)]
pub struct Resealer {
    running: AtomicBool,
    again: AtomicBool,
    /// Bodies that failed to open (tampered or unknown version), last pass.
    pub failed: AtomicU64,
}

impl Resealer {
    /// Starts a pass in the background unless one is running (which then
    /// runs once more).
    pub fn start(&self, state: &AppState) {
        self.again.store(true, Ordering::SeqCst);
        if self.running.swap(true, Ordering::SeqCst) {
            return;
        }
        let state = state.clone();
        tokio::spawn(async move {
            loop {
                while state.reseal.again.swap(false, Ordering::SeqCst) {
                    match run_once(&state).await {
                        Ok(n) if n > 0 => {
                            tracing::info!(resealed = n, "request bodies re-encrypted")
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "re-encryption pass failed"),
                    }
                }
                state.reseal.running.store(false, Ordering::SeqCst);
                // A `start` between the last check and the line above saw
                // this task running and left its pass to it: take it back.
                if !state.reseal.again.load(Ordering::SeqCst)
                    || state.reseal.running.swap(true, Ordering::SeqCst)
                {
                    break;
                }
            }
        });
    }

    pub fn running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }
}

/// One pass over every body sealed under an older key; returns how many
/// were re-sealed.
pub async fn run_once(state: &AppState) -> Result<u64, crate::store::StoreError> {
    let current = state.keyring.current_version();
    let mut after = String::new();
    let (mut done, mut failed) = (0u64, 0u64);
    loop {
        let cursor = after.clone();
        let batch = state
            .store
            .read(move |c| crate::store::logs::sealed_before_version(c, current, &cursor, BATCH))
            .await?;
        let Some((last, _)) = batch.last() else { break };
        after = last.clone();
        let n = batch.len();
        let mut rows = Vec::with_capacity(n);
        for (id, sealed) in batch {
            let fresh = state
                .keyring
                .open(&sealed, id.as_bytes())
                .and_then(|plain| state.keyring.seal(&plain, id.as_bytes()));
            match fresh {
                Ok(s) => {
                    let v = crate::crypto::Keyring::version_of(&s).unwrap_or(current);
                    rows.push((id, s, v));
                }
                Err(e) => {
                    failed += 1;
                    tracing::warn!(id = %id, error = %e, "a stored body could not be re-encrypted");
                }
            }
        }
        done += rows.len() as u64;
        state
            .store
            .write(move |tx| crate::store::logs::reseal(tx, &rows))
            .await?;
        if n < BATCH as usize {
            break;
        }
        // Leave the writer to request logs and admin calls in between.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    state.reseal.failed.store(failed, Ordering::Relaxed);
    Ok(done)
}
