//! Request logs: one record per `/v1` request, written by a background task
//! in batches (group commit), request bodies sealed with AES-256-GCM under
//! the master key with the record id as associated data, optionally
//! redacted first.
//!
//! The queue is bounded. When it is full the finishing request waits for
//! room (backpressure) for up to `SUBMIT_WAIT`; only a store stuck for that
//! long makes a record be dropped, and every drop is counted.

pub mod redact;
pub mod reseal;
pub mod retention;
pub mod usage;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue};
use bytes::Bytes;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

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

/// A finished request, as stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Record {
    /// The gateway's own id, unique to this record.
    pub id: String,
    /// The client's `x-request-id`, when it sent a valid one: the answer
    /// echoed it, and `GET /admin/logs/{id}` finds the record by it too.
    /// Clients reuse ids (retries, fixed values), so it is not the key.
    pub client_request_id: Option<String>,
    /// Unix milliseconds.
    pub at: i64,
    pub key_id: Option<String>,
    pub model: Option<String>,
    pub upstream: Option<String>,
    pub status: u16,
    pub error_code: Option<String>,
    pub latency_ms: u64,
    pub ttfb_ms: Option<u64>,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    /// Tokens charged to the key's limits without a usage report (the
    /// upstream sent none, or the request ended first): the reservation
    /// made up front (the prompt's count plus `max_tokens` times `n`, or
    /// `limits.default_max_tokens`). `null` when usage was reported
    /// or nothing was charged.
    pub unreported_tokens: Option<u64>,
    pub client_ip: Option<String>,
    pub origin: Option<String>,
    pub stream: bool,
    /// What the safety checks did; `{"checks":[]}` means none ran. A log
    /// particular to no request is one copy shared by every record that
    /// carries it (`LogSink::share_safety`).
    #[schema(value_type = crate::safety::SafetyLog)]
    pub safety: Arc<crate::safety::SafetyLog>,
    #[serde(skip)]
    pub body: Option<Bytes>,
}

/// A record being filled in while its request runs.
pub struct Draft {
    pub record: Record,
    pub started: Instant,
    /// Held by the request's token reservation
    /// (`Reservation::report_unsettled_to`); read when the record is done.
    pub unreported: Option<Arc<AtomicU64>>,
}

impl Draft {
    pub fn new(id: String, client_ip: Option<String>, origin: Option<String>) -> Draft {
        Draft {
            record: Record {
                id,
                client_request_id: None,
                at: unix_ms(),
                key_id: None,
                model: None,
                upstream: None,
                status: 0,
                error_code: None,
                latency_ms: 0,
                ttfb_ms: None,
                prompt_tokens: None,
                completion_tokens: None,
                unreported_tokens: None,
                client_ip,
                origin,
                stream: false,
                safety: Arc::default(),
                body: None,
            },
            started: Instant::now(),
            unreported: None,
        }
    }

    /// The record of a `/v1` request with these headers.
    pub fn for_request(headers: &HeaderMap, client_ip: std::net::IpAddr) -> Draft {
        let mut d = Draft::new(
            crate::keys::new_sorted_id("req"),
            Some(crate::access::ip_text(client_ip)),
            headers
                .get(header::ORIGIN)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(200).collect()),
        );
        d.record.client_request_id = client_request_id(headers.get(&REQUEST_ID_HEADER));
        d
    }

    /// The answer's `x-request-id`: the client's own id when it sent one.
    pub fn answer_id(&self) -> &str {
        self.record
            .client_request_id
            .as_deref()
            .unwrap_or(&self.record.id)
    }

    /// The safety log, while the request fills it in (its own copy until
    /// the record is queued).
    pub fn safety_mut(&mut self) -> &mut crate::safety::SafetyLog {
        Arc::make_mut(&mut self.record.safety)
    }

    pub fn first_byte(&mut self) {
        self.record.ttfb_ms = Some(self.started.elapsed().as_millis() as u64);
    }

    pub fn finish(
        mut self,
        status: u16,
        error_code: Option<&str>,
        usage: Option<(u64, u64)>,
    ) -> Record {
        self.record.status = status;
        self.record.error_code = error_code.map(str::to_owned);
        self.record.latency_ms = self.started.elapsed().as_millis() as u64;
        if let Some((p, c)) = usage {
            self.record.prompt_tokens = Some(p);
            self.record.completion_tokens = Some(c);
        }
        let unreported = self.unreported.map_or(0, |c| c.load(Ordering::Acquire));
        self.record.unreported_tokens = (unreported > 0).then_some(unreported);
        self.record
    }
}

/// A request's record until it is written. If the request's future is
/// dropped first (its client left before the answer, so the server stopped
/// serving it), the record is written anyway, as `499 client_disconnected`
/// (`500 internal_error` when a panic unwound it).
pub struct Pending<'a> {
    pub draft: Option<Draft>,
    sink: &'a LogSink,
}

impl<'a> Pending<'a> {
    pub fn new(draft: Draft, sink: &'a LogSink) -> Pending<'a> {
        Pending {
            draft: Some(draft),
            sink,
        }
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        let Some(draft) = self.draft.take() else {
            return;
        };
        // Unwinding from a panic: the client got a 500 (`CatchPanicLayer`).
        let record = if std::thread::panicking() {
            draft.finish(500, Some("internal_error"), None)
        } else {
            draft.finish(499, Some("client_disconnected"), None)
        };
        // Queued at once: a task spawned for it never ran when the request
        // was dropped with the runtime (a shutdown that ran out of grace).
        self.sink.submit_now(record);
    }
}

pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Default)]
pub struct Counters {
    pub written: AtomicU64,
    pub dropped: AtomicU64,
    pub queued: AtomicU64,
}

/// The sending side, held in `AppState`.
#[derive(Clone)]
pub struct LogSink {
    tx: mpsc::Sender<Record>,
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
        let r = match self.tx.try_send(r) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(r)) => r,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.lost();
                return;
            }
        };
        // The wait is dropped with the request when its client leaves: the
        // record is then lost, and must be counted so (it stayed "queued"
        // for good, and enough of them made `nearly_full` shed all traffic).
        let mut unsent = Unsent(Some(self));
        if self.tx.send_timeout(r, SUBMIT_WAIT).await.is_ok() {
            unsent.0 = None;
        }
    }

    /// Queues the record without waiting (from a `Drop`, which cannot): a
    /// full queue loses it, counted.
    pub fn submit_now(&self, mut r: Record) {
        self.telemetry.observe(&r);
        self.share_safety(&mut r);
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        if self.tx.try_send(r).is_err() {
            self.lost();
        }
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

    /// The writer is falling behind: 90 % of the queue is taken.
    pub fn nearly_full(&self) -> bool {
        self.counters.queued.load(Ordering::Relaxed) as usize >= QUEUE / 10 * 9
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
    rx: mpsc::Receiver<Record>,
    counters: Arc<Counters>,
}

pub fn channel(telemetry: Arc<Telemetry>) -> (LogSink, LogWriter) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let counters = Arc::new(Counters::default());
    (
        LogSink {
            tx,
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
        for chunk in rest.chunks(BATCH) {
            self.write(store, keyring, chunk.to_vec()).await;
        }
    }

    async fn write(&self, store: &Store, keyring: &Keyring, batch: Vec<Record>) {
        let n = batch.len() as u64;
        let mut rows = Vec::with_capacity(batch.len());
        for r in batch {
            let sealed = match &r.body {
                Some(b) => match keyring.seal(b, r.id.as_bytes()) {
                    Ok(s) => Keyring::version_of(&s).map(|v| (s, v)),
                    Err(e) => {
                        tracing::error!(error = %e, "sealing a request body failed; stored without it");
                        None
                    }
                },
                None => None,
            };
            rows.push((r, sealed));
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

/// Named once: a header name given as `&str` is parsed on every use.
pub const REQUEST_ID_HEADER: axum::http::HeaderName =
    axum::http::HeaderName::from_static("x-request-id");

/// A client-supplied request id is echoed and logged only if it is short
/// and plain; anything else is ignored (the answer carries the record's id).
pub fn client_request_id(client: Option<&HeaderValue>) -> Option<String> {
    let v = client?.to_str().ok()?;
    (!v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)))
    .then(|| v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safety::{Check, Word};

    fn record(id: &str, reason: Word) -> Record {
        let mut d = Draft::new(id.to_owned(), None, None);
        d.safety_mut()
            .checks
            .push(Check::skipped("moderation", "input", "builtin", reason));
        d.finish(200, None, None)
    }

    /// Queued records with equal logs particular to no request hold one
    /// copy between them; a log with something of its own request keeps
    /// its copy, and what each record says is unchanged.
    #[tokio::test]
    async fn queued_records_share_logs_that_say_nothing_of_their_request() {
        let (sink, mut writer) = channel(Arc::new(Telemetry::new()));
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
        assert!(Arc::ptr_eq(&a.safety, &b.safety));
        assert_eq!(b.safety.checks[0].reason.as_deref(), Some("disabled"));
        assert!(!Arc::ptr_eq(&c.safety, &d.safety));
        assert_eq!(c.safety, d.safety);
        assert_eq!(d.safety.checks[0].reason.as_deref(), Some("3 of 7"));
    }
}
