//! Upstream health: one circuit breaker per upstream, fed passively by the
//! requests (connect errors, 5xx, timeouts) and actively by the probe job,
//! plus the counters the status sampler turns into live error rates.
//!
//! Everything is atomics: the request path only loads and adds.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// The breaker's state, as the admin API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Circuit {
    /// Requests flow.
    Closed,
    /// Too many failures: requests go elsewhere until `open_for` has passed.
    Open,
    /// `open_for` has passed: the next request is a trial.
    HalfOpen,
}

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// The thresholds, copied from the settings when they change.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub failure_threshold: u32,
    pub open_for: Duration,
}

#[derive(Debug, Default)]
pub struct Breaker {
    state: AtomicU8,
    consecutive_failures: AtomicU32,
    /// Unix ms when the circuit opened (or when the last trial started).
    opened_at_ms: AtomicU64,
    /// Attempts and failed attempts since the sampler last took them.
    attempts: AtomicU64,
    failures: AtomicU64,
    /// The last active probe.
    probed: AtomicBool,
    probe_ok: AtomicBool,
    probe_ms: AtomicU64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Breaker {
    /// May a request go to this upstream now? An open circuit lets one
    /// request through as a trial once `open_for` has passed.
    pub fn allows(&self, p: Policy) -> bool {
        match self.state.load(Ordering::Acquire) {
            CLOSED => true,
            state => {
                let since = self.opened_at_ms.load(Ordering::Acquire);
                let now = now_ms();
                if now.saturating_sub(since) < p.open_for.as_millis() as u64 {
                    return false;
                }
                // One caller wins the trial; a trial that never reports back
                // (its client left) lets another through after `open_for`.
                if self
                    .opened_at_ms
                    .compare_exchange(since, now, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    return false;
                }
                if state == OPEN {
                    self.state.store(HALF_OPEN, Ordering::Release);
                }
                true
            }
        }
    }

    pub fn success(&self) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        self.close();
    }

    pub fn failure(&self, p: Policy) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.fail(p);
    }

    /// A failure seen after the answer started (a stream that broke): it
    /// counts towards the error rate and the breaker, but not as an attempt
    /// twice.
    pub fn broke(&self, p: Policy) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.fail(p);
    }

    fn close(&self) {
        // A load first: the common case writes nothing to the shared line.
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
        if self.state.load(Ordering::Acquire) != CLOSED {
            self.state.store(CLOSED, Ordering::Release);
            tracing::info!("upstream circuit closed");
        }
    }

    fn fail(&self, p: Policy) {
        let n = self.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
        let state = self.state.load(Ordering::Acquire);
        if state == HALF_OPEN || (state == CLOSED && n >= p.failure_threshold) {
            self.opened_at_ms.store(now_ms(), Ordering::Release);
            self.state.store(OPEN, Ordering::Release);
        }
    }

    /// The active probe's verdict: it closes or feeds the breaker like a request.
    pub fn probe(&self, ok: bool, latency: Duration, p: Policy) {
        self.probed.store(true, Ordering::Relaxed);
        self.probe_ok.store(ok, Ordering::Relaxed);
        self.probe_ms
            .store(latency.as_millis() as u64, Ordering::Relaxed);
        if ok {
            self.close();
        } else {
            self.fail(p);
        }
    }

    pub fn circuit(&self) -> Circuit {
        match self.state.load(Ordering::Acquire) {
            CLOSED => Circuit::Closed,
            OPEN => Circuit::Open,
            _ => Circuit::HalfOpen,
        }
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    /// `(ok, latency)` of the last probe, if there was one.
    pub fn last_probe(&self) -> Option<(bool, Duration)> {
        self.probed.load(Ordering::Relaxed).then(|| {
            (
                self.probe_ok.load(Ordering::Relaxed),
                Duration::from_millis(self.probe_ms.load(Ordering::Relaxed)),
            )
        })
    }

    /// `(attempts, failures)` since the last call; the sampler's window.
    pub fn take_counts(&self) -> (u64, u64) {
        (
            self.attempts.swap(0, Ordering::Relaxed),
            self.failures.swap(0, Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Policy = Policy {
        failure_threshold: 2,
        open_for: Duration::from_millis(50),
    };

    #[test]
    fn opens_after_threshold_and_trials_after_open_for() {
        let b = Breaker::default();
        assert!(b.allows(P));
        b.failure(P);
        assert_eq!(b.circuit(), Circuit::Closed);
        b.failure(P);
        assert_eq!(b.circuit(), Circuit::Open);
        assert!(!b.allows(P));
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.allows(P), "one trial after open_for");
        assert_eq!(b.circuit(), Circuit::HalfOpen);
        assert!(!b.allows(P), "only one trial at a time");
        b.failure(P);
        assert_eq!(b.circuit(), Circuit::Open, "a failed trial reopens");
        b.probe(true, Duration::from_millis(3), P);
        assert_eq!(b.circuit(), Circuit::Closed, "a good probe closes");
        assert_eq!(b.take_counts(), (3, 3));
        assert_eq!(b.take_counts(), (0, 0));
    }
}
