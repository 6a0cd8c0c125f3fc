//! `/admin/usage`: usage rollups per key, model and hour or day, as JSON or
//! exported as CSV or JSON Lines.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::AdminQuery;
use crate::app::AppState;
use crate::error::ApiError;
use crate::logs::usage::{Granularity, UsageRow};
use crate::store::usage::UsageFilter;

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin/usage", get(usage))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// `day` (default; kept for the usage retention, 90 days by default) or
    /// `hour` (kept 48 hours).
    pub granularity: Option<String>,
    /// RFC 3339; default 30 days (or 48 hours) ago.
    pub since: Option<String>,
    /// RFC 3339; default now.
    pub until: Option<String>,
    pub key_id: Option<String>,
    pub model: Option<String>,
    /// `json` (default), `csv` or `jsonl`; the last two are downloads.
    pub format: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UsagePage {
    pub granularity: Granularity,
    pub data: Vec<UsageRow>,
    /// The range held more than `MAX_ROWS` rows: `data` is its newest
    /// ones. Narrow the range (or filter by key or model) for the rest.
    pub truncated: bool,
}

/// The most rows one answer carries.
pub const MAX_ROWS: usize = 100_000;

/// Set on a CSV or JSON Lines download that holds only the newest rows.
const TRUNCATED_HEADER: axum::http::HeaderName =
    axum::http::HeaderName::from_static("x-assisters-truncated");

/// What `format` asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Format {
    Json,
    Csv,
    Jsonl,
}

impl UsageQuery {
    /// The store filter and format, or a 400 naming the bad parameter.
    pub fn resolve(&self) -> Result<(UsageFilter, Format), ApiError> {
        let granularity = match self.granularity.as_deref() {
            None => Granularity::Day,
            Some(g) => Granularity::parse(g).ok_or_else(|| {
                ApiError::invalid("granularity must be `day` or `hour`.", Some("granularity"))
            })?,
        };
        let format = match self.format.as_deref() {
            None | Some("json") => Format::Json,
            Some("csv") => Format::Csv,
            Some("jsonl") => Format::Jsonl,
            Some(_) => {
                return Err(ApiError::invalid(
                    "format must be `json`, `csv` or `jsonl`.",
                    Some("format"),
                ))
            }
        };
        let time = |field: &str, v: &Option<String>| {
            v.as_deref()
                .map(crate::timefmt::parse_rfc3339)
                .transpose()
                .map_err(|e| ApiError::invalid(e, Some(field)))
        };
        let now = crate::store::now();
        let default_span = match granularity {
            Granularity::Day => 30 * 86_400,
            Granularity::Hour => crate::logs::usage::HOURLY_KEEP_SECS,
        };
        let until = time("until", &self.until)?.unwrap_or(now + 1);
        let since = time("since", &self.since)?.unwrap_or(now - default_span);
        // A bucket counts when it starts inside the range, so widen `since`
        // to the start of its bucket.
        let filter = UsageFilter {
            granularity,
            since: granularity.bucket(since),
            until,
            key_id: self.key_id.clone(),
            model: self.model.clone(),
        };
        Ok((filter, format))
    }
}

/// The newest `MAX_ROWS` rows of the range in time order, and whether
/// there were more.
pub async fn rows(
    state: &AppState,
    filter: UsageFilter,
) -> Result<(Vec<UsageRow>, bool), ApiError> {
    let rows = state
        .store
        .read(move |c| crate::store::usage::query(c, &filter, MAX_ROWS + 1))
        .await?;
    let truncated = rows.len() > MAX_ROWS;
    let skip = rows.len().saturating_sub(MAX_ROWS);
    Ok((
        rows[skip..]
            .iter()
            .map(|(b, r)| UsageRow::new(*b, r))
            .collect(),
        truncated,
    ))
}

#[utoipa::path(get, path = "/admin/usage", operation_id = "usage_list", tag = "usage", params(UsageQuery),
    responses((status = 200, body = UsagePage,
        description = "JSON; with `format=csv` or `format=jsonl`, a file download of the same rows"),
        (status = 400, body = crate::error::ErrorBody)))]
pub async fn usage(
    State(state): State<AppState>,
    AdminQuery(q): AdminQuery<UsageQuery>,
) -> Result<Response, ApiError> {
    let (filter, format) = q.resolve()?;
    let granularity = filter.granularity;
    let (data, truncated) = rows(&state, filter).await?;
    let download = |body: String, ext: &str, mime: &'static str| {
        let name = format!(
            "attachment; filename=\"assisters-usage-{}.{ext}\"",
            granularity.as_str()
        );
        let mut resp = (
            [
                (header::CONTENT_TYPE, mime.to_owned()),
                (header::CONTENT_DISPOSITION, name),
            ],
            body,
        )
            .into_response();
        if truncated {
            resp.headers_mut().insert(
                TRUNCATED_HEADER,
                axum::http::HeaderValue::from_static("true"),
            );
        }
        resp
    };
    Ok(match format {
        Format::Json => Json(UsagePage {
            granularity,
            data,
            truncated,
        })
        .into_response(),
        Format::Csv => download(to_csv(&data), "csv", "text/csv; charset=utf-8"),
        Format::Jsonl => download(to_jsonl(&data), "jsonl", "application/x-ndjson"),
    })
}

pub fn to_csv(rows: &[UsageRow]) -> String {
    let mut out = String::from(UsageRow::CSV_HEADER);
    out.push('\n');
    for r in rows {
        out.push_str(&r.csv());
        out.push('\n');
    }
    out
}

pub fn to_jsonl(rows: &[UsageRow]) -> String {
    rows.iter()
        .filter_map(|r| serde_json::to_string(r).ok())
        .map(|l| l + "\n")
        .collect()
}
