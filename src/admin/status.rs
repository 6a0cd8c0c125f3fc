//! `/admin/status`: the components with their health details, the overall
//! indicator, the 90-day uptime history, and the page's subscribers (added
//! and removed with an audit entry; a webhook's signing secret is shown
//! once). The page's own settings are under `/admin/settings` (`status`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

use super::{Actor, AdminJson, Path};
use crate::app::AppState;
use crate::error::{ApiError, RequestError};
use crate::status::model::{day_of, Impact, UptimeDay};
use crate::status::{Component, HISTORY_DAYS};
use crate::store::subscribers::Subscriber;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/status", get(show))
        .route("/admin/status/uptime", get(uptime))
        .route(
            "/admin/status/subscribers",
            get(list_subscribers).post(add_subscriber),
        )
        .route("/admin/status/subscribers/{id}", delete(remove_subscriber))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatusView {
    pub indicator: Impact,
    pub description: &'static str,
    /// When the components were last derived (RFC 3339).
    pub updated_at: String,
    pub public: bool,
    pub page_url: String,
    pub components: Vec<Component>,
}

#[utoipa::path(operation_id = "status_show", get, path = "/admin/status", tag = "status", responses((status = 200, body = StatusView)))]
pub async fn show(State(state): State<AppState>) -> Json<StatusView> {
    let view = state.status.view();
    let indicator = view.indicator();
    Json(StatusView {
        indicator,
        description: indicator.description(),
        updated_at: crate::timefmt::rfc3339(view.updated_at),
        public: state.settings().status.public,
        page_url: crate::status::summary::page_url(&state),
        components: view.components.clone(),
    })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UptimeDayView {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    /// Share of the day up, 0 to 1; absent without samples.
    pub uptime: Option<f64>,
    #[serde(flatten)]
    pub samples: UptimeDay,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ComponentUptime {
    pub id: String,
    pub name: String,
    /// Over the whole 90 days.
    pub uptime: Option<f64>,
    /// Oldest first, one entry per day with samples.
    pub days: Vec<UptimeDayView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UptimeHistory {
    pub days: i64,
    pub data: Vec<ComponentUptime>,
}

#[utoipa::path(operation_id = "status_uptime", get, path = "/admin/status/uptime", tag = "status", responses((status = 200, body = UptimeHistory)))]
pub async fn uptime(State(state): State<AppState>) -> Result<Json<UptimeHistory>, ApiError> {
    let since = day_of(crate::store::now()) - (HISTORY_DAYS - 1);
    let rows = state
        .store
        .read(move |c| crate::store::uptime::since(c, since))
        .await?;
    let view = state.status.view();
    let mut ids: Vec<String> = view.components.iter().map(|c| c.id.clone()).collect();
    for (id, _) in &rows {
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    let data = ids
        .into_iter()
        .map(|id| {
            let days: Vec<UptimeDay> = rows.iter().filter(|r| r.0 == id).map(|r| r.1).collect();
            let mut total = UptimeDay::default();
            for d in &days {
                total.operational += d.operational;
                total.degraded += d.degraded;
                total.partial += d.partial;
                total.major += d.major;
                total.maintenance += d.maintenance;
            }
            ComponentUptime {
                name: view.component_name(&id),
                id,
                uptime: total.uptime(),
                days: days
                    .into_iter()
                    .map(|d| UptimeDayView {
                        date: crate::timefmt::rfc3339(d.day * 86_400)
                            .get(..10)
                            .unwrap_or("")
                            .to_owned(),
                        uptime: d.uptime(),
                        samples: d,
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(Json(UptimeHistory {
        days: HISTORY_DAYS,
        data,
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubscriberList {
    pub data: Vec<Subscriber>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscriber {
    /// `email` or `webhook`.
    pub kind: String,
    /// An e-mail address, or an `http(s)://` URL.
    pub target: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedSubscriber {
    #[serde(flatten)]
    pub subscriber: Subscriber,
    /// A webhook's signing secret: shown only now, stored sealed.
    pub secret: Option<String>,
}

#[utoipa::path(operation_id = "status_list_subscribers", get, path = "/admin/status/subscribers", tag = "status", responses((status = 200, body = SubscriberList)))]
pub async fn list_subscribers(
    State(state): State<AppState>,
) -> Result<Json<SubscriberList>, ApiError> {
    let data = state.store.read(crate::store::subscribers::all).await?;
    Ok(Json(SubscriberList { data }))
}

#[utoipa::path(operation_id = "status_add_subscriber", post, path = "/admin/status/subscribers", tag = "status", request_body = NewSubscriber,
    responses((status = 201, body = CreatedSubscriber), (status = 400, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn add_subscriber(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    AdminJson(req): AdminJson<NewSubscriber>,
) -> Result<(StatusCode, Json<CreatedSubscriber>), ApiError> {
    let id = crate::keys::new_id("sub");
    let target = req.target.trim().to_owned();
    let secret = match req.kind.as_str() {
        "email" => {
            target.parse::<lettre::Address>().map_err(|e| {
                ApiError::invalid(format!("not an e-mail address: {e}"), Some("target"))
            })?;
            None
        }
        "webhook" => {
            webhook_url(&target).map_err(|e| ApiError::invalid(e, Some("target")))?;
            Some(crate::status::notify::webhook::new_secret())
        }
        _ => {
            return Err(ApiError::invalid(
                "kind must be email or webhook",
                Some("kind"),
            ))
        }
    };
    let secret_enc = match &secret {
        Some(s) => Some(state.keyring.seal(s.as_bytes(), id.as_bytes())?),
        None => None,
    };
    let t = crate::store::now();
    let sub = Subscriber {
        id: id.clone(),
        kind: req.kind,
        target,
        created_at: t,
        secret_enc,
    };
    let entry = actor.audit(
        "status.subscriber.create",
        &id,
        None,
        Some(serde_json::json!({"kind": sub.kind, "target": sub.target})),
    );
    let row = sub.clone();
    let added = state
        .store
        .write(move |tx| {
            let added = crate::store::subscribers::insert(tx, &row)?;
            if added {
                crate::store::audit::append(tx, entry, t)?;
            }
            Ok(added)
        })
        .await?;
    if !added {
        return Err(RequestError::Conflict("That subscriber exists already.".into()).into());
    }
    Ok((
        StatusCode::CREATED,
        Json(CreatedSubscriber {
            subscriber: sub,
            secret,
        }),
    ))
}

#[utoipa::path(operation_id = "status_remove_subscriber", delete, path = "/admin/status/subscribers/{id}", tag = "status",
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn remove_subscriber(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let t = crate::store::now();
    let removed = state
        .store
        .write(move |tx| {
            let Some(old) = crate::store::subscribers::delete(tx, &id)? else {
                return Ok(false);
            };
            let entry = actor.audit(
                "status.subscriber.delete",
                &old.id,
                Some(serde_json::json!({"kind": old.kind, "target": old.target})),
                None,
            );
            crate::store::audit::append(tx, entry, t)?;
            Ok(true)
        })
        .await?;
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("No such subscriber."))
    }
}

/// A webhook target: an `http(s)://` URL with a host; a query string is
/// fine (receivers often authenticate with one), credentials in it are not.
fn webhook_url(raw: &str) -> Result<(), String> {
    let uri: axum::http::Uri = raw
        .parse()
        .map_err(|e| format!("invalid webhook URL: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err("invalid webhook URL: it must start with http:// or https://".into());
    }
    match uri.authority() {
        Some(a) if a.as_str().contains('@') => {
            Err("invalid webhook URL: credentials in the URL are not supported".into())
        }
        Some(a) if !a.host().is_empty() => Ok(()),
        _ => Err("invalid webhook URL: it has no host".into()),
    }
}
