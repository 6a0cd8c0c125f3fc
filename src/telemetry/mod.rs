//! What the gateway tells its operators while it runs: the live event stream
//! (`events`) and Prometheus metrics (`metrics`), both fed by every finished
//! `/v1` request record, plus the mergeable latency histogram they and the
//! usage rollups share.

pub mod events;
pub mod histogram;
pub mod metrics;

use crate::logs::Record;

/// Owned by `AppState`; `observe` is called once per finished request.
pub struct Telemetry {
    pub live: events::LiveHub,
    pub metrics: metrics::Metrics,
}

impl Telemetry {
    pub fn new() -> Telemetry {
        Telemetry {
            live: events::LiveHub::new(),
            metrics: metrics::Metrics::new(),
        }
    }

    pub fn observe(&self, r: &Record) {
        self.metrics.observe(r);
        self.live.observe(r);
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}
