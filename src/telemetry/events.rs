//! The live event stream: a summary of each finished request and, once a
//! second, an aggregate tick (requests, errors, tokens, p50/p95 latency).
//!
//! Events are serialised once and fanned out through a bounded broadcast
//! channel; a consumer that falls a whole buffer behind is disconnected
//! rather than allowed to slow the gateway. The last hour of ticks is kept
//! so a new consumer can draw its charts at once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::broadcast;

use super::histogram::Histogram;
use crate::logs::Record;

const CHANNEL: usize = 4096;
pub const HISTORY_SECS: usize = 3_600;

/// One serialised event: its SSE name and JSON data.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    pub name: &'static str,
    pub data: Arc<str>,
}

#[derive(Debug, Serialize)]
struct RequestSummary<'a> {
    id: &'a str,
    at: i64,
    key_id: Option<&'a str>,
    model: Option<&'a str>,
    status: u16,
    error_code: Option<&'a str>,
    latency_ms: u64,
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    /// Charged to the key's limits without a usage report from the upstream.
    unreported_tokens: Option<u64>,
    stream: bool,
    safety: &'a crate::safety::SafetyLog,
}

/// One second of traffic.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Tick {
    /// Unix seconds.
    pub at: i64,
    pub requests: u64,
    pub errors: u64,
    pub tokens: u64,
    pub p50_ms: Option<u64>,
    pub p95_ms: Option<u64>,
}

#[derive(Default)]
struct Window {
    requests: u64,
    errors: u64,
    tokens: u64,
    latency: Histogram,
}

pub struct LiveHub {
    tx: broadcast::Sender<LiveEvent>,
    /// Set at shutdown so open streams end instead of holding the listener's
    /// graceful shutdown for its whole grace period.
    closed: tokio::sync::watch::Sender<bool>,
    window: Mutex<Window>,
    history: Mutex<VecDeque<Tick>>,
}

impl LiveHub {
    pub fn new() -> LiveHub {
        LiveHub {
            tx: broadcast::channel(CHANNEL).0,
            closed: tokio::sync::watch::channel(false).0,
            window: Mutex::new(Window::default()),
            history: Mutex::new(VecDeque::with_capacity(HISTORY_SECS)),
        }
    }

    pub fn observe(&self, r: &Record) {
        {
            let mut w = self.window.lock();
            w.requests += 1;
            if r.status >= 400 || r.error_code.is_some() {
                w.errors += 1;
            }
            // Saturating: token counts come from upstreams.
            w.tokens = w
                .tokens
                .saturating_add(r.prompt_tokens.unwrap_or(0))
                .saturating_add(r.completion_tokens.unwrap_or(0));
            w.latency.record(r.latency_ms);
        }
        // Nobody watching: skip the serialisation.
        if self.tx.receiver_count() == 0 {
            return;
        }
        let summary = RequestSummary {
            id: &r.id,
            at: r.at,
            key_id: r.key_id.as_deref(),
            model: r.model.as_deref(),
            status: r.status,
            error_code: r.error_code.as_deref(),
            latency_ms: r.latency_ms,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            unreported_tokens: r.unreported_tokens,
            stream: r.stream,
            safety: &r.safety,
        };
        if let Ok(json) = serde_json::to_string(&summary) {
            let _ = self.tx.send(LiveEvent {
                name: "request",
                data: json.into(),
            });
        }
    }

    /// Closes the current second: records it in the history and sends it.
    pub fn tick(&self, at: i64) -> Tick {
        let w = std::mem::take(&mut *self.window.lock());
        let tick = Tick {
            at,
            requests: w.requests,
            errors: w.errors,
            tokens: w.tokens,
            p50_ms: w.latency.quantile(0.5),
            p95_ms: w.latency.quantile(0.95),
        };
        {
            let mut h = self.history.lock();
            if h.len() == HISTORY_SECS {
                h.pop_front();
            }
            h.push_back(tick);
        }
        if self.tx.receiver_count() > 0 {
            if let Ok(json) = serde_json::to_string(&tick) {
                let _ = self.tx.send(LiveEvent {
                    name: "tick",
                    data: json.into(),
                });
            }
        }
        tick
    }

    /// Ticks at or after `since` (unix seconds), oldest first.
    pub fn history_since(&self, since: i64) -> Vec<Tick> {
        self.history
            .lock()
            .iter()
            .filter(|t| t.at >= since)
            .copied()
            .collect()
    }

    /// A consumer's stream of events. One that falls a whole channel behind
    /// gets a final `lagged` event and the stream ends: the gateway never
    /// waits for a reader.
    pub fn stream(&self) -> impl futures_util::Stream<Item = LiveEvent> + Send + 'static {
        futures_util::stream::unfold(Some(self.tx.subscribe()), |rx| async move {
            let mut rx = rx?;
            match rx.recv().await {
                Ok(e) => Some((e, Some(rx))),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let data = format!("{{\"missed\":{n},\"message\":\"too slow; reconnect\"}}");
                    Some((
                        LiveEvent {
                            name: "lagged",
                            data: data.into(),
                        },
                        None,
                    ))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
    }

    /// Resolves when the server shuts down.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.closed.subscribe();
        async move {
            let _ = rx.wait_for(|c| *c).await;
        }
    }

    pub fn consumers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Ticks once a second, on the second, until `stop` fires.
    pub async fn run(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        every.tick().await;
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = stop.changed() => break,
            }
            self.tick(crate::store::now() - 1);
        }
        let _ = self.closed.send(true);
    }
}

impl Default for LiveHub {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    fn record(i: usize) -> Record {
        crate::logs::Draft::new(format!("req_{i}"), None, None).finish(200, None, Some((1, 1)))
    }

    #[tokio::test]
    async fn a_slow_consumer_is_cut_off_and_the_hub_never_waits() {
        let hub = LiveHub::new();
        let stream = hub.stream();
        for i in 0..CHANNEL + 10 {
            hub.observe(&record(i));
        }
        let events: Vec<LiveEvent> = stream.collect().await;
        assert_eq!(events.len(), 1, "only the notice, then the end");
        assert_eq!(events[0].name, "lagged");
        assert!(events[0].data.contains("\"missed\":10"));
    }

    #[tokio::test]
    async fn ticks_aggregate_the_second_and_keep_history() {
        let hub = LiveHub::new();
        for i in 0..10 {
            hub.observe(&record(i));
        }
        let t = hub.tick(100);
        assert_eq!((t.requests, t.errors, t.tokens), (10, 0, 20));
        assert_eq!(hub.tick(101).requests, 0);
        assert_eq!(hub.history_since(101).len(), 1);
        assert_eq!(hub.history_since(0).len(), 2);
    }
}
