//! Usage rollups: requests, errors, tokens and latency per key, model and
//! hour or day, folded from each batch of request log records in the same
//! transaction that stores them, and kept after the raw records expire.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::Record;
use crate::telemetry::histogram::Histogram;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    Hour,
    Day,
}

impl Granularity {
    pub fn seconds(self) -> i64 {
        match self {
            Granularity::Hour => 3_600,
            Granularity::Day => 86_400,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Hour => "hour",
            Granularity::Day => "day",
        }
    }

    pub fn parse(s: &str) -> Option<Granularity> {
        match s {
            "hour" => Some(Granularity::Hour),
            "day" => Some(Granularity::Day),
            _ => None,
        }
    }

    /// Start (unix seconds, UTC) of the bucket holding `unix_s`.
    pub fn bucket(self, unix_s: i64) -> i64 {
        unix_s - unix_s.rem_euclid(self.seconds())
    }
}

/// Hourly rollups are kept this long; daily ones for the usage retention.
pub const HOURLY_KEEP_SECS: i64 = 48 * 3_600;

/// One bucket × key × model. An empty `key_id` means the request had no
/// valid key (refused at authentication); an empty `model`, that none was
/// named.
#[derive(Debug, Clone, Default)]
pub struct Rollup {
    pub key_id: String,
    pub model: String,
    pub requests: u64,
    pub errors: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub latency_sum_ms: u64,
    pub latency: Histogram,
    /// Tokens charged without a usage report (see `Record::unreported_tokens`).
    pub unreported_tokens: u64,
}

impl Rollup {
    pub fn add(&mut self, other: &Rollup) {
        // Saturating: token counts come from upstreams.
        self.requests = self.requests.saturating_add(other.requests);
        self.errors = self.errors.saturating_add(other.errors);
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.completion_tokens = self
            .completion_tokens
            .saturating_add(other.completion_tokens);
        self.latency_sum_ms = self.latency_sum_ms.saturating_add(other.latency_sum_ms);
        self.latency.merge(&other.latency);
        self.unreported_tokens = self
            .unreported_tokens
            .saturating_add(other.unreported_tokens);
    }

    fn count(&mut self, r: &Record) {
        self.requests += 1;
        if r.status >= 400 || r.error_code.is_some() {
            self.errors += 1;
        }
        self.prompt_tokens = self
            .prompt_tokens
            .saturating_add(r.prompt_tokens.unwrap_or(0));
        self.completion_tokens = self
            .completion_tokens
            .saturating_add(r.completion_tokens.unwrap_or(0));
        self.latency_sum_ms = self.latency_sum_ms.saturating_add(r.latency_ms);
        self.latency.record(r.latency_ms);
        self.unreported_tokens = self
            .unreported_tokens
            .saturating_add(r.unreported_tokens.unwrap_or(0));
    }
}

/// Where a rollup goes: (granularity, bucket start, key id, model).
pub type Slot = (Granularity, i64, String, String);

/// Folds a batch into hourly and daily rollups.
pub fn fold<'a>(records: impl IntoIterator<Item = &'a Record>) -> FxHashMap<Slot, Rollup> {
    let mut out: FxHashMap<Slot, Rollup> = FxHashMap::default();
    for r in records {
        let key_id = r.key_id.clone().unwrap_or_default();
        let model = r.model.clone().unwrap_or_default();
        for g in [Granularity::Hour, Granularity::Day] {
            let slot = (g, g.bucket(r.at / 1000), key_id.clone(), model.clone());
            let e = out.entry(slot).or_insert_with(|| Rollup {
                key_id: key_id.clone(),
                model: model.clone(),
                ..Rollup::default()
            });
            e.count(r);
        }
    }
    out
}

/// A rollup as the admin API and exports show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UsageRow {
    /// RFC 3339 start of the hour or day (UTC).
    pub bucket: String,
    pub key_id: Option<String>,
    pub model: Option<String>,
    pub requests: u64,
    pub errors: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub latency_avg_ms: Option<u64>,
    pub latency_p50_ms: Option<u64>,
    pub latency_p95_ms: Option<u64>,
    pub latency_p99_ms: Option<u64>,
    /// Tokens charged to keys' limits without a usage report: the
    /// reservations (prompt count plus completion allowance) of requests
    /// whose upstream sent no usage, or that ended before it came. Not in
    /// the two token columns.
    pub unreported_tokens: u64,
}

impl UsageRow {
    pub fn new(bucket: i64, r: &Rollup) -> UsageRow {
        let none_if_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        UsageRow {
            bucket: crate::timefmt::rfc3339(bucket),
            key_id: none_if_empty(&r.key_id),
            model: none_if_empty(&r.model),
            requests: r.requests,
            errors: r.errors,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            latency_avg_ms: r.latency_sum_ms.checked_div(r.requests),
            latency_p50_ms: r.latency.quantile(0.5),
            latency_p95_ms: r.latency.quantile(0.95),
            latency_p99_ms: r.latency.quantile(0.99),
            unreported_tokens: r.unreported_tokens,
        }
    }

    pub const CSV_HEADER: &'static str = "bucket,key_id,model,requests,errors,prompt_tokens,\
        completion_tokens,latency_avg_ms,latency_p50_ms,latency_p95_ms,latency_p99_ms,unreported_tokens";

    /// One CSV line (no newline). Key ids and model names are quoted when
    /// they hold a comma, quote or line break; a leading `=`, `+`, `-` or `@`
    /// is prefixed with `'` so a spreadsheet does not run it as a formula.
    pub fn csv(&self) -> String {
        let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        format!(
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            self.bucket,
            csv_field(self.key_id.as_deref().unwrap_or("")),
            csv_field(self.model.as_deref().unwrap_or("")),
            self.requests,
            self.errors,
            self.prompt_tokens,
            self.completion_tokens,
            opt(self.latency_avg_ms),
            opt(self.latency_p50_ms),
            opt(self.latency_p95_ms),
            opt(self.latency_p99_ms),
            self.unreported_tokens,
        )
    }
}

fn csv_field(s: &str) -> String {
    // OWASP's formula triggers, tab and carriage return included.
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        assert_eq!(csv_field("gpt-4o"), "gpt-4o");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("\t=1+1"), "'\t=1+1");
        assert_eq!(csv_field("\r=1"), "\"'\r=1\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn buckets_are_utc_aligned() {
        assert_eq!(Granularity::Day.bucket(86_400 * 3 + 5), 86_400 * 3);
        assert_eq!(Granularity::Hour.bucket(7_201), 7_200);
    }
}
