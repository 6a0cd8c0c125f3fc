//! `/admin/logs`: request log records, newest first, filtered and paged on
//! the server; a record's body is decrypted only on explicit request, and
//! that read is audited.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

use super::{Actor, AdminQuery, Path};
use crate::app::AppState;
use crate::error::ApiError;
use crate::logs::Record;
use crate::store::logs::Filter;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/logs", get(list))
        .route("/admin/logs/{id}", get(get_one))
        .route("/admin/logs/{id}/body", post(body))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// RFC 3339; only records at or after this time.
    pub since: Option<String>,
    /// RFC 3339; only records before this time.
    pub until: Option<String>,
    pub key_id: Option<String>,
    pub model: Option<String>,
    pub status: Option<u16>,
    /// Records with this id, or sent with it as the client's `x-request-id`.
    pub request_id: Option<String>,
    /// Only records where a safety check took this action: `block`, `flag` or `log`.
    pub safety_action: Option<String>,
    /// At most this many (default 50, at most 500).
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LogView {
    #[serde(flatten)]
    pub record: Record,
    /// RFC 3339 form of `at`.
    pub time: String,
    pub has_body: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LogPage {
    pub data: Vec<LogView>,
    /// Pass as `cursor` for the next (older) page; `null` at the end.
    pub next: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LogBody {
    pub id: String,
    /// The request body as stored (after redaction, if enabled).
    pub body: String,
}

fn view((record, has_body): crate::store::logs::Row2) -> LogView {
    LogView {
        time: crate::timefmt::rfc3339(record.at / 1000),
        record,
        has_body,
    }
}

fn ms(field: &str, v: Option<&str>) -> Result<Option<i64>, ApiError> {
    v.map(|s| crate::timefmt::parse_rfc3339(s).map(|t| t * 1000))
        .transpose()
        .map_err(|e| ApiError::invalid(e, Some(field)))
}

#[utoipa::path(get, path = "/admin/logs", operation_id = "logs_list", tag = "logs", params(LogQuery),
    responses((status = 200, body = LogPage), (status = 400, body = crate::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    AdminQuery(q): AdminQuery<LogQuery>,
) -> Result<Json<LogPage>, ApiError> {
    let before = match q.cursor.as_deref() {
        None => None,
        Some(c) => {
            let (at, id) = c
                .split_once('_')
                .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_owned())))
                .ok_or_else(|| ApiError::invalid("Invalid cursor.", Some("cursor")))?;
            Some((at, id))
        }
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let filter = Filter {
        since_ms: ms("since", q.since.as_deref())?,
        until_ms: ms("until", q.until.as_deref())?,
        key_id: q.key_id,
        model: q.model,
        status: q.status,
        request_id: q.request_id,
        safety_action: match q.safety_action.as_deref() {
            None => None,
            Some(a @ ("block" | "flag" | "log")) => Some(a.to_owned()),
            Some(_) => {
                return Err(ApiError::invalid(
                    "safety_action must be block, flag or log.",
                    Some("safety_action"),
                ))
            }
        },
        before,
        limit,
    };
    let rows = state
        .store
        .read(move |c| crate::store::logs::list(c, &filter))
        .await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|(r, _)| format!("{}_{}", r.at, r.id)))
        .flatten();
    Ok(Json(LogPage {
        data: rows.into_iter().map(view).collect(),
        next,
    }))
}

#[utoipa::path(get, path = "/admin/logs/{id}", operation_id = "logs_get_one", tag = "logs",
    responses((status = 200, body = LogView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<LogView>, ApiError> {
    let lookup = id.clone();
    state
        .store
        .read(move |c| crate::store::logs::get(c, &lookup))
        .await?
        .map(|r| Json(view(r)))
        .ok_or_else(|| ApiError::not_found(format!("No request log record {id:?}.")))
}

/// Decrypts the stored request body; the read itself is audited.
#[utoipa::path(post, path = "/admin/logs/{id}/body", operation_id = "logs_body", tag = "logs",
    responses((status = 200, body = LogBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn body(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Json<LogBody>, ApiError> {
    let no_body = || ApiError::not_found(format!("Request log record {id:?} has no stored body."));
    // Found by either of its ids, as `get_one` does; sealed under its own.
    let lookup = id.clone();
    let (id, sealed) = state
        .store
        .read(move |c| {
            let Some((record, true)) = crate::store::logs::get(c, &lookup)? else {
                return Ok(None);
            };
            Ok(crate::store::logs::sealed_body(c, &record.id)?.map(|b| (record.id, b)))
        })
        .await?
        .ok_or_else(no_body)?;
    let entry = actor.audit("log.read_body", &id, None, None);
    let t = crate::store::now();
    state
        .store
        .write(move |tx| crate::store::audit::append(tx, entry, t).map(|_| ()))
        .await?;
    let plain = state.keyring.open(&sealed, id.as_bytes()).map_err(|e| {
        crate::error::InternalError::Integrity(format!(
            "The stored body of {id} cannot be decrypted ({e}); it was altered on disk or the master key that sealed it is missing."
        ))
    })?;
    Ok(Json(LogBody {
        id,
        body: String::from_utf8_lossy(&plain).into_owned(),
    }))
}
