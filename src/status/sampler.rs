//! The status sampler, run every `status.sample_interval`: advances
//! maintenance windows, derives each component's state from the health
//! checks and the live error rates, records one uptime sample per
//! component, opens and resolves automatic incidents, refreshes the view.

use std::collections::HashSet;
use std::time::Duration;

use super::model::{ComponentStatus, MaintenanceStatus};
use super::{Component, UpstreamHealth};
use crate::app::AppState;
use crate::proxy::health::Circuit;
use crate::proxy::upstream::Upstream;

/// Above these shares of failed attempts in a window, an upstream is
/// degraded, then in partial outage.
const DEGRADED_RATE: f64 = 0.1;
const PARTIAL_RATE: f64 = 0.5;
const STORE_PROBE: Duration = Duration::from_secs(2);
/// The ids of the two components that are not upstreams.
pub const GATEWAY: &str = "gateway";
pub const STORE: &str = "store";

pub async fn run_once(state: &AppState) {
    if let Err(e) = super::maintenance::advance(state).await {
        tracing::warn!(error = %e, "maintenance transitions failed");
    }
    // The windows as they now stand (at the first sample after a start the
    // view had none loaded, so a component under maintenance was not).
    if let Err(e) = super::refresh(state).await {
        tracing::warn!(error = %e, "status view refresh failed");
    }
    let in_maintenance: HashSet<String> = state
        .status
        .view()
        .maintenances
        .iter()
        .filter(|m| m.status == MaintenanceStatus::InProgress)
        .flat_map(|m| m.components.iter().cloned())
        .collect();
    let mut components = derive(state).await;
    for c in &mut components {
        if in_maintenance.contains(&c.id) {
            c.status = ComponentStatus::UnderMaintenance;
        }
    }
    let now = crate::store::now();
    // An upstream not yet seen since the start has no state to record.
    let samples: Vec<_> = components
        .iter()
        .filter(|c| c.observed() || c.status == ComponentStatus::UnderMaintenance)
        .map(|c| (c.id.clone(), c.status))
        .collect();
    let oldest = super::model::day_of(now) - super::HISTORY_DAYS;
    let written = state
        .store
        .write(move |tx| {
            crate::store::uptime::record(tx, now, &samples)?;
            crate::store::uptime::prune(tx, oldest)?;
            Ok(())
        })
        .await;
    if let Err(e) = &written {
        tracing::warn!(error = %e, "cannot record uptime");
    }
    state.status.set_store_writes_ok(written.is_ok());
    state.status.update(|v| {
        v.components = components.clone();
        v.updated_at = now;
    });
    if state.settings().status.auto_incidents {
        super::incidents::automate(state, &components).await;
    }
    if let Err(e) = super::refresh(state).await {
        tracing::warn!(error = %e, "status view refresh failed");
    }
}

/// Every component's state right now (maintenance aside).
pub async fn derive(state: &AppState) -> Vec<Component> {
    let mut out = vec![Component {
        id: GATEWAY.into(),
        name: "Gateway API".into(),
        kind: "gateway",
        // It answers this very page.
        status: ComponentStatus::Operational,
        position: 1,
        health: None,
    }];
    let probe = state.store.read(|c| {
        c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?;
        Ok(())
    });
    let readable = matches!(tokio::time::timeout(STORE_PROBE, probe).await, Ok(Ok(())));
    out.push(Component {
        id: STORE.into(),
        name: "Store".into(),
        kind: "store",
        status: if !readable {
            ComponentStatus::MajorOutage
        } else if !state.status.store_writes_ok() {
            ComponentStatus::PartialOutage
        } else {
            ComponentStatus::Operational
        },
        position: 2,
        health: None,
    });
    for (i, u) in state.upstreams.list().iter().enumerate() {
        out.push(upstream(u, 3 + i as u32));
    }
    out
}

fn upstream(u: &Upstream, position: u32) -> Component {
    let h = &u.health;
    let (requests, failures) = h.take_counts();
    let circuit = h.circuit();
    let rate = if requests > 0 {
        failures.min(requests) as f64 / requests as f64
    } else {
        0.0
    };
    let status = match circuit {
        Circuit::Open => ComponentStatus::MajorOutage,
        Circuit::HalfOpen => ComponentStatus::PartialOutage,
        Circuit::Closed if rate >= PARTIAL_RATE => ComponentStatus::PartialOutage,
        Circuit::Closed if rate >= DEGRADED_RATE || h.consecutive_failures() > 0 => {
            ComponentStatus::DegradedPerformance
        }
        Circuit::Closed => ComponentStatus::Operational,
    };
    let probe = h.last_probe();
    Component {
        id: u.id.clone(),
        name: u.name.clone(),
        kind: "upstream",
        status,
        position,
        health: Some(UpstreamHealth {
            circuit,
            consecutive_failures: h.consecutive_failures(),
            last_probe_ok: probe.map(|p| p.0),
            last_probe_ms: probe.map(|p| p.1.as_millis() as u64),
            requests,
            failures,
        }),
    }
}
