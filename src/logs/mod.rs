//! Request logs: one record per `/v1` request (`Draft` while it runs,
//! `Record` when done, `Pending` if its request is dropped first), queued to
//! a background writer (`queue`) that commits them in batches, request
//! bodies sealed with AES-256-GCM under the master key with the record id
//! as associated data, optionally redacted first.

mod queue;
pub mod redact;
pub mod reseal;
pub mod retention;
pub mod usage;

pub use queue::{channel, Counters, LogSink, LogWriter, BATCH_WINDOW};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::http::{header, HeaderMap, HeaderValue};
use bytes::Bytes;
use serde::Serialize;
use tokio::time::Instant;

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
