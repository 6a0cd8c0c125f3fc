//! Prometheus metrics, served at `/metrics` on the admin listener: requests,
//! errors by code, latency histograms, tokens, limiter refusals, safety
//! actions, upstreams and the request-log queue. Per-request values are
//! counted as records finish; the rest is read from the state at scrape time.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::logs::Record;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SafetyLabel {
    check: String,
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabel {
    pub upstream: String,
}

/// Error codes the limiter produces: 429s (requests, tokens, streams, daily
/// budget, failed-auth throttling) and the 400 for a request over the quota.
const LIMITER_CODES: [&str; 2] = ["rate_limit_exceeded", "tokens_exceed_rate_limit"];

pub struct Metrics {
    registry: Registry,
    requests: Family<StatusLabel, Counter>,
    errors: Family<CodeLabel, Counter>,
    duration: Histogram,
    ttfb: Histogram,
    tokens: Family<KindLabel, Counter>,
    limiter: Family<CodeLabel, Counter>,
    safety: Family<SafetyLabel, Counter>,
    log_queue: Gauge,
    log_queue_bytes: Gauge,
    log_written: Counter,
    log_dropped: Counter,
    live_consumers: Gauge,
    in_flight: Gauge,
    open_connections: Gauge,
    pub upstream_up: Family<UpstreamLabel, Gauge>,
    shed: Family<ReasonLabel, Counter>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("assisters");
        let m = Metrics {
            requests: Family::default(),
            errors: Family::default(),
            // 1 ms … ~65 s.
            duration: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
            ttfb: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
            tokens: Family::default(),
            limiter: Family::default(),
            safety: Family::default(),
            log_queue: Gauge::default(),
            log_queue_bytes: Gauge::default(),
            log_written: Counter::default(),
            log_dropped: Counter::default(),
            live_consumers: Gauge::default(),
            in_flight: Gauge::default(),
            open_connections: Gauge::default(),
            upstream_up: Family::default(),
            shed: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "requests",
            "Finished /v1 requests by HTTP status",
            m.requests.clone(),
        );
        registry.register(
            "errors",
            "Failed /v1 requests by OpenAI error code",
            m.errors.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Total /v1 request latency",
            m.duration.clone(),
        );
        registry.register(
            "time_to_first_byte_seconds",
            "Time until the first byte of a streamed answer",
            m.ttfb.clone(),
        );
        registry.register(
            "tokens",
            "Tokens by kind (prompt, completion; unreported: charged to limits without a usage report)",
            m.tokens.clone(),
        );
        registry.register(
            "limiter_refusals",
            "Requests refused by rate limits, budgets or stream caps",
            m.limiter.clone(),
        );
        registry.register(
            "safety_actions",
            "Safety check outcomes other than pass, by check and action",
            m.safety.clone(),
        );
        registry.register(
            "log_queue_depth",
            "Request log records waiting for the writer",
            m.log_queue.clone(),
        );
        registry.register(
            "log_queue_bytes",
            "Bytes the queued request log records hold or have set aside, bodies included (bounded by edge.max_log_queue_bytes)",
            m.log_queue_bytes.clone(),
        );
        registry.register(
            "log_records_written",
            "Request log records committed",
            m.log_written.clone(),
        );
        registry.register(
            "log_records_dropped",
            "Request log records lost (writer stuck or failing)",
            m.log_dropped.clone(),
        );
        registry.register(
            "live_consumers",
            "Connected live event stream consumers",
            m.live_consumers.clone(),
        );
        registry.register(
            "in_flight_requests",
            "/v1 requests being handled (shed past edge.max_in_flight)",
            m.in_flight.clone(),
        );
        registry.register(
            "open_connections",
            "Open connections on the gateway listener",
            m.open_connections.clone(),
        );
        registry.register(
            "shed",
            "/v1 requests refused with 503 before any work (overload), by reason; not in the request log",
            m.shed.clone(),
        );
        registry.register(
            "upstream_up",
            "1 when the upstream is considered healthy",
            m.upstream_up.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn observe(&self, r: &Record) {
        self.requests
            .get_or_create(&StatusLabel { status: r.status })
            .inc();
        if let Some(code) = &r.error_code {
            let label = CodeLabel { code: code.clone() };
            self.errors.get_or_create(&label).inc();
            if LIMITER_CODES.contains(&code.as_str()) {
                self.limiter.get_or_create(&label).inc();
            }
        }
        self.duration.observe(r.latency_ms as f64 / 1000.0);
        if let Some(t) = r.ttfb_ms {
            self.ttfb.observe(t as f64 / 1000.0);
        }
        for (kind, n) in [
            ("prompt", r.prompt_tokens),
            ("completion", r.completion_tokens),
            ("unreported", r.unreported_tokens),
        ] {
            if let Some(n) = n.filter(|&n| n > 0) {
                self.tokens.get_or_create(&KindLabel { kind }).inc_by(n);
            }
        }
        self.observe_safety(&r.safety);
    }

    /// A request shed by `edge::load` (`in_flight` or `log_queue`).
    pub fn shed(&self, reason: &'static str) {
        self.shed.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Counts each check whose action was not a plain pass; see
    /// `logs::Record::safety` for the shape.
    fn observe_safety(&self, safety: &crate::safety::SafetyLog) {
        for c in &safety.checks {
            if c.action != "pass" && c.action != "none" {
                self.safety
                    .get_or_create(&SafetyLabel {
                        check: c.check.to_string(),
                        action: c.action.to_string(),
                    })
                    .inc();
            }
        }
    }

    /// The text exposition, with scrape-time values read from `state` first.
    pub fn render(&self, state: &crate::app::AppState) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &state.logs.counters;
        self.log_queue.set(c.queued.load(Relaxed) as i64);
        self.log_queue_bytes
            .set(i64::try_from(state.logs.queued_bytes()).unwrap_or(i64::MAX));
        self.log_written
            .inner()
            .store(c.written.load(Relaxed), Relaxed);
        self.log_dropped
            .inner()
            .store(c.dropped.load(Relaxed), Relaxed);
        self.live_consumers
            .set(state.telemetry.live.consumers() as i64);
        self.in_flight.set(i64::from(state.edge.load.in_flight()));
        self.open_connections
            .set(i64::from(state.edge.conns.open()));
        // Healthy means the circuit breaker lets requests through.
        for u in state.upstreams.list() {
            let up = u.health.circuit() == crate::proxy::health::Circuit::Closed;
            self.upstream_up
                .get_or_create(&UpstreamLabel {
                    upstream: u.name.clone(),
                })
                .set(i64::from(up));
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
