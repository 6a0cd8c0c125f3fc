//! The request log's queue: `LogSink` (the requests' side) and `LogWriter`
//! (the group-commit task that seals bodies and writes batches).
//!
//! The queue is bounded twice: by records (`QUEUE`) and by the bytes they
//! hold (`edge.max_log_queue_bytes`, bodies included), so what a stalled
//! disk holds in the queue does not grow with the bodies' size (records
//! still waiting to be queued hold theirs too, at most one per request in
//! flight). When either bound is reached the finishing request waits for
//! room (backpressure) for up to `SUBMIT_WAIT`; only a store stuck for
//! that long makes a record be dropped, and every drop is counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{usage, Record};
use crate::crypto::Keyring;
use crate::safety::SafetyLog;
use crate::store::Store;
use crate::telemetry::Telemetry;

const QUEUE: usize = 8192;
const BATCH: usize = 512;
/// How long the writer gathers a batch before committing it: the most a
/// crash can lose (besides what is still queued).
pub const BATCH_WINDOW: Duration = Duration::from_millis(50);
const SUBMIT_WAIT: Duration = Duration::from_secs(5);
/// The most distinct safety logs kept to share; their variety follows the
/// settings and the keys' overrides.
const SHARED_LOGS: usize = 32;

#[derive(Default)]
pub struct Counters {
    pub written: AtomicU64,
    pub dropped: AtomicU64,
    pub queued: AtomicU64,
}

/// A queued record and its room in the byte budget, given back when the
/// writer is done with it.
struct Queued {
    record: Record,
    room: OwnedSemaphorePermit,
}

/// The sending side, held in `AppState`.
#[derive(Clone)]
pub struct LogSink {
    tx: mpsc::Sender<Queued>,
    /// The byte budget's free KiB.
    room: Arc<Semaphore>,
    budget_kib: u32,
    pub counters: Arc<Counters>,
    telemetry: Arc<Telemetry>,
    shared_logs: Arc<Mutex<Vec<Arc<SafetyLog>>>>,
}

impl LogSink {
    /// Counts the record in the live stream and metrics, then queues it;
    /// waits for room when the queue is full.
    pub async fn submit(&self, mut r: Record) {
        self.telemetry.observe(&r);
        self.share_safety(&mut r);
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        let weight = self.weight(&r);
        let (record, room) = match self.room.clone().try_acquire_many_owned(weight) {
            Ok(room) => match self.tx.try_send(Queued { record: r, room }) {
                Ok(()) => return,
                Err(TrySendError::Full(q)) => (q.record, Some(q.room)),
                Err(TrySendError::Closed(_)) => return self.lost(),
            },
            Err(_) => (r, None),
        };
        // The wait is dropped with the request when its client leaves: the
        // record is then lost, and must be counted so (it stayed "queued"
        // for good, and enough of them made `nearly_full` shed all traffic).
        let mut unsent = Unsent(Some(self));
        let send = async {
            let room = match room {
                Some(room) => room,
                None => self.room.clone().acquire_many_owned(weight).await.ok()?,
            };
            self.tx.send(Queued { record, room }).await.ok()
        };
        if let Ok(Some(())) = tokio::time::timeout(SUBMIT_WAIT, send).await {
            unsent.0 = None;
        }
    }

    /// Queues the record without waiting (from a `Drop`, which cannot): a
    /// full queue loses it, counted.
    pub fn submit_now(&self, mut r: Record) {
        self.telemetry.observe(&r);
        self.share_safety(&mut r);
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        let queued = match self.room.clone().try_acquire_many_owned(self.weight(&r)) {
            Ok(room) => self.tx.try_send(Queued { record: r, room }).is_ok(),
            Err(_) => false,
        };
        if !queued {
            self.lost();
        }
    }

    /// KiB of the byte budget the record takes: 1 plus its body's, but at
    /// most a quarter of the budget. A body near the budget's size (a body
    /// limit raised past it) would otherwise take all the room, and each
    /// one would shed all traffic until the writer had it written; so at
    /// least four records always fit, and the bound stays a bound within
    /// four bodies.
    fn weight(&self, r: &Record) -> u32 {
        let body = r.body.as_ref().map_or(0, |b| b.len().div_ceil(1024));
        u32::try_from(body.saturating_add(1))
            .unwrap_or(u32::MAX)
            .min(self.budget_kib / 4)
            .max(1)
    }

    /// Swaps a safety log particular to no request (every check skipped or
    /// passed with nothing to note) for the shared copy of an equal one, so
    /// a queued record holds none of its own: four checks of 224 bytes each
    /// were half of a queued record, and a disk that stalls the writer
    /// turns the queue into resident memory (BENCHMARKS.md, session 14).
    fn share_safety(&self, r: &mut Record) {
        if !r.safety.is_generic() {
            return;
        }
        let mut known = self.shared_logs.lock();
        if let Some(s) = known.iter().find(|s| ***s == *r.safety) {
            r.safety = s.clone();
            return;
        }
        // Settings changed often enough: the oldest make way.
        if known.len() == SHARED_LOGS {
            known.remove(0);
        }
        known.push(r.safety.clone());
    }

    /// The writer is falling behind: 90 % of the queue is taken, in
    /// records or in bytes.
    pub fn nearly_full(&self) -> bool {
        self.counters.queued.load(Ordering::Relaxed) as usize >= QUEUE / 10 * 9
            || self.room.available_permits() < self.budget_kib as usize / 10
    }

    /// Bytes the queued records hold, by their weights (a record being
    /// written still counts, and so does room already set aside for the
    /// record that waits first).
    pub fn queued_bytes(&self) -> u64 {
        let free = self.room.available_permits() as u64;
        u64::from(self.budget_kib).saturating_sub(free) * 1024
    }

    fn lost(&self) {
        self.counters.queued.fetch_sub(1, Ordering::Relaxed);
        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        tracing::error!("request log record dropped: the log writer is stuck or stopped");
    }
}

/// A record still being submitted; counted lost unless it was sent.
struct Unsent<'a>(Option<&'a LogSink>);

impl Drop for Unsent<'_> {
    fn drop(&mut self) {
        if let Some(sink) = self.0 {
            sink.lost();
        }
    }
}

pub struct LogWriter {
    rx: mpsc::Receiver<Queued>,
    counters: Arc<Counters>,
}

/// The queue, bounded at `max_bytes` by its records' weights: a record
/// weighs 1 KiB (its fields; ~0.8 KB measured) plus its body. Bounded by
/// count alone, 8,192 records with the default 8 MiB body limit could have
/// held 64 GiB.
pub fn channel(telemetry: Arc<Telemetry>, max_bytes: u64) -> (LogSink, LogWriter) {
    // A semaphore counts at most `MAX_PERMITS` (2^29 − 1 on 32-bit targets).
    let budget_kib = u32::try_from((max_bytes >> 10).min(Semaphore::MAX_PERMITS as u64))
        .unwrap_or(u32::MAX)
        .max(1);
    let (tx, rx) = mpsc::channel(QUEUE);
    let counters = Arc::new(Counters::default());
    (
        LogSink {
            tx,
            room: Arc::new(Semaphore::new(budget_kib as usize)),
            budget_kib,
            counters: counters.clone(),
            telemetry,
            shared_logs: Arc::default(),
        },
        LogWriter { rx, counters },
    )
}

impl LogWriter {
    /// Writes batches until `stop` fires, then drains the queue and returns.
    pub async fn run(
        mut self,
        state: crate::app::AppState,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let (store, keyring) = (&state.store, &state.keyring);
        let mut stopping = false;
        while !stopping {
            let mut batch = Vec::with_capacity(64);
            let got = tokio::select! {
                n = self.rx.recv_many(&mut batch, BATCH) => n,
                _ = stop.changed() => 0,
            };
            if got == 0 {
                break;
            }
            // Gather the rest of the window asleep, then take what queued:
            // a receiver that is not polling is not woken by each `try_send`,
            // which under load was a cross-thread wake-up per request.
            if batch.len() < BATCH {
                tokio::select! {
                    _ = tokio::time::sleep(BATCH_WINDOW) => {}
                    _ = stop.changed() => stopping = true,
                }
                while batch.len() < BATCH {
                    match self.rx.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
            }
            self.write(store, keyring, batch).await;
        }
        // Clean shutdown: nothing queued is lost, and what comes later is
        // refused (and counted) rather than queued for nobody.
        self.rx.close();
        let mut rest = Vec::new();
        while let Ok(r) = self.rx.try_recv() {
            rest.push(r);
        }
        while !rest.is_empty() {
            let chunk = rest.drain(..rest.len().min(BATCH)).collect();
            self.write(store, keyring, chunk).await;
        }
    }

    async fn write(&self, store: &Store, keyring: &Keyring, batch: Vec<Queued>) {
        let n = batch.len() as u64;
        let mut rows = Vec::with_capacity(batch.len());
        let mut rooms = Vec::with_capacity(batch.len());
        for Queued { mut record, room } in batch {
            // Taken: the plain body is not kept beside its sealed copy.
            let sealed = match record.body.take() {
                Some(b) => match keyring.seal(&b, record.id.as_bytes()) {
                    Ok(s) => Keyring::version_of(&s).map(|v| (s, v)),
                    Err(e) => {
                        tracing::error!(error = %e, "sealing a request body failed; stored without it");
                        None
                    }
                },
                None => None,
            };
            rows.push((record, sealed));
            rooms.push(room);
        }
        let rollups: Vec<_> = usage::fold(rows.iter().map(|(r, _)| r))
            .into_iter()
            .collect();
        // Records and their rollups commit together, so usage never counts
        // a request the log lost or misses one it kept.
        let result = store
            .write(move |tx| {
                crate::store::logs::insert_batch(tx, &rows)?;
                crate::store::usage::add(tx, &rollups)
            })
            .await;
        // The rows are gone with the write: their room is free again.
        drop(rooms);
        self.counters.queued.fetch_sub(n, Ordering::Relaxed);
        match result {
            Ok(()) => {
                self.counters.written.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                self.counters.dropped.fetch_add(n, Ordering::Relaxed);
                tracing::error!(error = %e, records = n, "writing request logs failed");
            }
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::Draft;
    use crate::safety::{Check, Word};

    fn record(id: &str, reason: Word) -> Record {
        let mut d = Draft::new(id.to_owned(), None, None);
        d.safety_mut()
            .checks
            .push(Check::skipped("moderation", "input", "builtin", reason));
        d.finish(200, None, None)
    }

    fn with_body(id: &str, kib: usize) -> Record {
        let mut r = record(id, "disabled".into());
        r.body = Some(bytes::Bytes::from(vec![b'x'; kib * 1024]));
        r
    }

    /// Queued records with equal logs particular to no request hold one
    /// copy between them; a log with something of its own request keeps
    /// its copy, and what each record says is unchanged.
    #[tokio::test]
    async fn queued_records_share_logs_that_say_nothing_of_their_request() {
        let (sink, mut writer) = channel(Arc::new(Telemetry::new()), 1 << 26);
        sink.submit(record("req_a", "disabled".into())).await;
        sink.submit_now(record("req_b", "disabled".into()));
        sink.submit(record("req_c", format!("{} of 7", 3).into()))
            .await;
        sink.submit(record("req_d", format!("{} of 7", 3).into()))
            .await;
        let mut got = Vec::new();
        writer.rx.recv_many(&mut got, 8).await;
        let [a, b, c, d] = &got[..] else {
            panic!("four records queued, got {}", got.len());
        };
        let [a, b, c, d] = [a, b, c, d].map(|q| &q.record);
        assert!(Arc::ptr_eq(&a.safety, &b.safety));
        assert_eq!(b.safety.checks[0].reason.as_deref(), Some("disabled"));
        assert!(!Arc::ptr_eq(&c.safety, &d.safety));
        assert_eq!(c.safety, d.safety);
        assert_eq!(d.safety.checks[0].reason.as_deref(), Some("3 of 7"));
    }

    /// Bodies count against the byte budget: near it, `nearly_full` says
    /// so with few records queued, a record that does not fit waits until
    /// the writer is done with others, and `submit_now` loses (and counts)
    /// one rather than wait.
    #[tokio::test]
    async fn queued_bodies_are_bounded_in_bytes() {
        let (sink, mut writer) = channel(Arc::new(Telemetry::new()), 256 << 10);
        for id in ["req_a", "req_b", "req_c", "req_d"] {
            sink.submit(with_body(id, 50)).await;
        }
        assert!(!sink.nearly_full(), "204 of 256 KiB taken");
        assert_eq!(sink.queued_bytes(), 4 * 51 * 1024);
        sink.submit(with_body("req_e", 30)).await;
        assert!(sink.nearly_full(), "235 of 256 KiB taken by five records");

        sink.submit_now(with_body("req_f", 30));
        assert_eq!(sink.counters.dropped.load(Ordering::Relaxed), 1);
        let waiting = tokio::spawn({
            let sink = sink.clone();
            async move { sink.submit(with_body("req_g", 30)).await }
        });
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished(), "no room: the submit waits");
        let first = writer.rx.recv().await.map(|q| q.record.id);
        assert_eq!(first.as_deref(), Some("req_a"));
        waiting.await.unwrap();
        let mut got = Vec::new();
        writer.rx.recv_many(&mut got, 8).await;
        let ids: Vec<_> = got.iter().map(|q| q.record.id.as_str()).collect();
        assert_eq!(ids, ["req_b", "req_c", "req_d", "req_e", "req_g"]);
        assert_eq!(sink.counters.queued.load(Ordering::Relaxed), 6);
        assert_eq!(sink.counters.dropped.load(Ordering::Relaxed), 1);
        drop(got);
        assert_eq!(sink.queued_bytes(), 0);
    }

    /// A body larger than the whole budget is not refused for good, nor
    /// does it take all the room: it counts a quarter, so four such fit and
    /// nothing sheds for one. A submit that finds no room within
    /// `SUBMIT_WAIT` loses its record, counted.
    #[tokio::test(start_paused = true)]
    async fn an_oversized_body_takes_a_quarter_and_a_stuck_writer_drops() {
        let (sink, mut writer) = channel(Arc::new(Telemetry::new()), 64 << 10);
        sink.submit(with_body("req_big", 100)).await;
        assert_eq!(sink.queued_bytes(), 16 * 1024);
        assert!(!sink.nearly_full());
        for id in ["req_b", "req_c", "req_d"] {
            sink.submit(with_body(id, 100)).await;
        }
        assert!(sink.nearly_full());
        sink.submit(with_body("req_late", 1)).await;
        assert_eq!(sink.counters.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(sink.counters.queued.load(Ordering::Relaxed), 4);
        let q = writer.rx.recv().await.map(|q| q.record.id);
        assert_eq!(q.as_deref(), Some("req_big"));
    }
}
