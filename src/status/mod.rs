//! The status page's engine: components and their derived states, the
//! in-memory view the public page and `summary.json` are rendered from
//! (refreshed by the sampler and after every admin change, so serving the
//! page never touches the store), incidents, maintenance and notifications.

pub mod incidents;
pub mod maintenance;
pub mod model;
pub mod notify;
pub mod page;
pub mod routes;
pub mod sampler;
pub mod summary;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use serde::Serialize;

use crate::app::AppState;
use crate::proxy::health::Circuit;
use crate::store::StoreError;
use model::{ComponentStatus, Impact, Incident, IncidentStatus, Maintenance, UptimeDay};

/// How far back the page looks.
pub const HISTORY_DAYS: i64 = 90;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Component {
    /// `gateway`, `store`, or the upstream's id.
    pub id: String,
    pub name: String,
    /// `gateway`, `store` or `upstream`.
    pub kind: &'static str,
    pub status: ComponentStatus,
    pub position: u32,
    /// Health details of an upstream (admin API only, never on the page).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<UpstreamHealth>,
}

impl Component {
    /// Whether its state was seen rather than assumed: an upstream's
    /// breaker starts closed, so until a probe or a request has reached it
    /// since the start, "operational" is only a default.
    pub fn observed(&self) -> bool {
        self.health
            .as_ref()
            .is_none_or(|h| h.last_probe_ok.is_some() || h.requests > 0)
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UpstreamHealth {
    pub circuit: Circuit,
    pub consecutive_failures: u32,
    pub last_probe_ok: Option<bool>,
    pub last_probe_ms: Option<u64>,
    /// Attempts and failures during the last sampling window.
    pub requests: u64,
    pub failures: u64,
}

/// Everything the page shows, as of the last refresh.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub updated_at: i64,
    pub components: Vec<Component>,
    /// Open incidents and those of the last 90 days, newest first.
    pub incidents: Vec<Incident>,
    /// Maintenance not completed, and completed in the last week.
    pub maintenances: Vec<Maintenance>,
    /// Per component id, the last 90 days that have samples.
    pub uptime: HashMap<String, Vec<UptimeDay>>,
}

impl View {
    /// The overall indicator: the worst of the components' states and the
    /// open incidents' impacts.
    pub fn indicator(&self) -> Impact {
        let upstreams: Vec<_> = self
            .components
            .iter()
            .filter(|c| c.kind == "upstream")
            .collect();
        let all_down = !upstreams.is_empty()
            && upstreams
                .iter()
                .all(|c| c.status == ComponentStatus::MajorOutage);
        let from_components = self
            .components
            .iter()
            .map(|c| match c.status {
                ComponentStatus::Operational => Impact::None,
                ComponentStatus::UnderMaintenance => Impact::Maintenance,
                ComponentStatus::DegradedPerformance => Impact::Minor,
                ComponentStatus::PartialOutage => Impact::Major,
                ComponentStatus::MajorOutage if all_down || c.kind != "upstream" => {
                    Impact::Critical
                }
                ComponentStatus::MajorOutage => Impact::Major,
            })
            .max()
            .unwrap_or(Impact::None);
        let from_incidents = self
            .incidents
            .iter()
            .filter(|i| i.status != IncidentStatus::Resolved)
            .map(|i| i.impact)
            .max()
            .unwrap_or(Impact::None);
        from_components.max(from_incidents)
    }

    pub fn open_incidents(&self) -> impl Iterator<Item = &Incident> {
        self.incidents
            .iter()
            .filter(|i| i.status != IncidentStatus::Resolved)
    }

    pub fn component_name(&self, id: &str) -> String {
        self.components
            .iter()
            .find(|c| c.id == id)
            // Never an internal id on the public page.
            .map_or_else(|| "a removed component".to_owned(), |c| c.name.clone())
    }
}

/// The status state in `AppState`.
pub struct StatusHub {
    view: RwLock<Arc<View>>,
    pub notifier: notify::Notifier,
    /// Whether the sampler's last write reached the store.
    store_writes_ok: AtomicBool,
    /// Wakes the sampler at once: a window started or ended by hand shows
    /// on the page now, not at the next sample.
    pub resample: tokio::sync::Notify,
    /// Components whose automatic incident an admin resolved while they
    /// were still down: no new one opens until they have been seen up.
    /// Kept in the store too (`status_hand_resolved`), read back at start.
    pub hand_resolved: parking_lot::Mutex<std::collections::HashSet<String>>,
    /// Held by `refresh` from its read to its update: two refreshes at once
    /// (the sampler's and an admin change's) could otherwise finish in the
    /// other order, the one that read before the change putting the view
    /// back as it was, an incident just resolved open again until the next
    /// sample.
    refreshing: tokio::sync::Mutex<()>,
}

impl Default for StatusHub {
    fn default() -> Self {
        StatusHub {
            view: RwLock::default(),
            notifier: notify::Notifier::new(),
            store_writes_ok: AtomicBool::new(true),
            resample: tokio::sync::Notify::new(),
            hand_resolved: Default::default(),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }
}

impl StatusHub {
    pub fn view(&self) -> Arc<View> {
        self.view.read().clone()
    }

    /// Changes the view under the write lock, so the sampler and an admin
    /// refresh cannot undo each other's part.
    fn update(&self, f: impl FnOnce(&mut View)) {
        let mut w = self.view.write();
        let mut v = (**w).clone();
        f(&mut v);
        *w = Arc::new(v);
    }

    pub fn set_store_writes_ok(&self, ok: bool) {
        self.store_writes_ok.store(ok, Ordering::Relaxed);
    }

    pub fn store_writes_ok(&self) -> bool {
        self.store_writes_ok.load(Ordering::Relaxed)
    }
}

/// Refuses a component id that is not the gateway, the store or a current
/// upstream. Read from the registry, not the sampled view, so a window or an
/// incident can name a component from the first moment after start.
pub fn check_components(state: &AppState, ids: &[String]) -> Result<(), crate::error::ApiError> {
    let upstreams = state.upstreams.list();
    for c in ids {
        let known =
            c == sampler::GATEWAY || c == sampler::STORE || upstreams.iter().any(|u| &u.id == c);
        if !known {
            return Err(crate::error::ApiError::invalid(
                format!("unknown component {c:?} (see GET /admin/status)"),
                Some("components"),
            ));
        }
    }
    Ok(())
}

/// Reloads incidents, maintenance and uptime from the store into the view.
pub async fn refresh(state: &AppState) -> Result<(), StoreError> {
    let _one_at_a_time = state.status.refreshing.lock().await;
    let now = crate::store::now();
    let (incidents, maintenances, uptime) = state
        .store
        .read(move |c| {
            let incidents = crate::store::incidents::recent(c, now - HISTORY_DAYS * 86_400, 100)?;
            let maintenances = crate::store::maintenances::recent(c, now - 7 * 86_400)?;
            let since = model::day_of(now) - (HISTORY_DAYS - 1);
            let uptime = crate::store::uptime::since(c, since)?;
            Ok((incidents, maintenances, uptime))
        })
        .await?;
    let mut by_component: HashMap<String, Vec<UptimeDay>> = HashMap::new();
    for (component, day) in uptime {
        by_component.entry(component).or_default().push(day);
    }
    state.status.update(|v| {
        v.incidents = incidents;
        v.maintenances = maintenances;
        v.uptime = by_component;
        v.updated_at = now;
    });
    Ok(())
}
