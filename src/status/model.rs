//! The status vocabulary, spelled as Atlassian Statuspage spells it so that
//! `summary.json` reads like theirs: component states, incident statuses
//! and impacts, maintenance statuses, and the stored records.

use serde::{Deserialize, Serialize};

macro_rules! words {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:tt),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

words! {
    /// A component's state, best first (the order is used to find the worst).
    ComponentStatus {
        Operational = "operational",
        UnderMaintenance = "under_maintenance",
        DegradedPerformance = "degraded_performance",
        PartialOutage = "partial_outage",
        MajorOutage = "major_outage",
    }
}

words! {
    /// An incident's stage; `resolved` closes it.
    IncidentStatus {
        Investigating = "investigating",
        Identified = "identified",
        Monitoring = "monitoring",
        Resolved = "resolved",
    }
}

words! {
    /// How bad an incident is, and the page's overall indicator.
    Impact {
        None = "none",
        Maintenance = "maintenance",
        Minor = "minor",
        Major = "major",
        Critical = "critical",
    }
}

words! {
    MaintenanceStatus {
        Scheduled = "scheduled",
        InProgress = "in_progress",
        Completed = "completed",
    }
}

impl ComponentStatus {
    pub fn label(self) -> &'static str {
        match self {
            ComponentStatus::Operational => "Operational",
            ComponentStatus::UnderMaintenance => "Under maintenance",
            ComponentStatus::DegradedPerformance => "Degraded performance",
            ComponentStatus::PartialOutage => "Partial outage",
            ComponentStatus::MajorOutage => "Major outage",
        }
    }
}

impl Impact {
    /// Statuspage's own descriptions of the overall indicator.
    pub fn description(self) -> &'static str {
        match self {
            Impact::None => "All Systems Operational",
            Impact::Maintenance => "Service Under Maintenance",
            Impact::Minor => "Minor Service Outage",
            Impact::Major => "Partial System Outage",
            Impact::Critical => "Major Service Outage",
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IncidentUpdate {
    pub id: String,
    pub status: IncidentStatus,
    pub body: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Incident {
    pub id: String,
    pub name: String,
    pub status: IncidentStatus,
    pub impact: Impact,
    /// Component ids affected.
    pub components: Vec<String>,
    /// Set when the gateway opened it for this component on its own.
    pub auto_component: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub monitoring_at: Option<i64>,
    pub resolved_at: Option<i64>,
    /// Newest first.
    pub updates: Vec<IncidentUpdate>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Maintenance {
    pub id: String,
    pub name: String,
    pub body: String,
    pub status: MaintenanceStatus,
    pub components: Vec<String>,
    pub scheduled_for: i64,
    pub scheduled_until: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
}

/// One component's samples on one UTC day.
#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
pub struct UptimeDay {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    pub operational: u32,
    pub degraded: u32,
    pub partial: u32,
    pub major: u32,
    pub maintenance: u32,
}

impl UptimeDay {
    pub fn total(&self) -> u32 {
        self.operational + self.degraded + self.partial + self.major + self.maintenance
    }

    /// Statuspage's weighting: a major outage counts fully as downtime, a
    /// partial one at 30%; degraded and maintenance time count as up.
    pub fn uptime(&self) -> Option<f64> {
        let total = self.total();
        (total > 0).then(|| {
            1.0 - (f64::from(self.major) + 0.3 * f64::from(self.partial)) / f64::from(total)
        })
    }

    /// The worst state seen that day, for the bar's colour.
    pub fn worst(&self) -> Option<ComponentStatus> {
        [
            (self.major, ComponentStatus::MajorOutage),
            (self.partial, ComponentStatus::PartialOutage),
            (self.degraded, ComponentStatus::DegradedPerformance),
            (self.maintenance, ComponentStatus::UnderMaintenance),
            (self.operational, ComponentStatus::Operational),
        ]
        .into_iter()
        .find(|(n, _)| *n > 0)
        .map(|(_, s)| s)
    }

    pub fn add(&mut self, s: ComponentStatus) {
        match s {
            ComponentStatus::Operational => self.operational += 1,
            ComponentStatus::DegradedPerformance => self.degraded += 1,
            ComponentStatus::PartialOutage => self.partial += 1,
            ComponentStatus::MajorOutage => self.major += 1,
            ComponentStatus::UnderMaintenance => self.maintenance += 1,
        }
    }
}

/// Days since the epoch for a Unix time, the uptime table's key.
pub fn day_of(unix: i64) -> i64 {
    unix.div_euclid(86_400)
}
