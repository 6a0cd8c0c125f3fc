//! What the CLI prints: aligned tables for people, JSON for scripts (`--json`,
//! a stable shape: the admin API's own objects).

use std::io::Write;

use serde_json::Value;

pub fn line(s: &str) -> anyhow::Result<()> {
    writeln!(std::io::stdout(), "{s}")?;
    Ok(())
}

fn json_out(v: &Value) -> anyhow::Result<()> {
    line(&serde_json::to_string_pretty(v)?)
}

pub fn line_or_json(v: &Value, json: bool, human: &str) -> anyhow::Result<()> {
    if json {
        json_out(v)
    } else {
        line(human)
    }
}

fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get(field).and_then(Value::as_str).unwrap_or("-")
}

pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> anyhow::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    let fmt = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    writeln!(
        out,
        "{}",
        fmt(headers.iter().map(|h| (*h).to_owned()).collect())
    )?;
    for r in rows {
        writeln!(out, "{}", fmt(r))?;
    }
    Ok(())
}

pub fn created_key(v: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        return json_out(v);
    }
    line(&format!(
        "Created key {} ({}, tier {}, {}).\n\n    {}\n\nCopy it now: the gateway stores only its hash and cannot show it again.",
        s(v, "id"),
        s(v, "name"),
        s(v, "tier"),
        s(v, "environment"),
        s(v, "key"),
    ))
}

/// A number field, or `-` when absent or null.
fn num(v: &Value, field: &str) -> String {
    v.get(field)
        .filter(|x| !x.is_null())
        .map_or_else(|| "-".to_owned(), |x| x.to_string())
}

/// Prompt/completion tokens, and those charged without a usage report.
fn tokens(r: &Value) -> String {
    let reported = format!(
        "{}/{}",
        num(r, "prompt_tokens"),
        num(r, "completion_tokens")
    );
    match r["unreported_tokens"].as_u64().filter(|&n| n > 0) {
        Some(n) => format!("{reported} +{n} unreported"),
        None => reported,
    }
}

/// A list of admin API objects: as JSON, or as a table with one row each.
fn listing(
    list: &Value,
    json: bool,
    headers: &[&str],
    row: impl Fn(&Value) -> Vec<String>,
) -> anyhow::Result<()> {
    if json {
        return json_out(list);
    }
    let rows = list
        .as_array()
        .map(|a| a.iter().map(&row).collect())
        .unwrap_or_default();
    table(headers, rows)
}

pub fn keys(list: &Value, json: bool) -> anyhow::Result<()> {
    let headers = [
        "ID",
        "NAME",
        "PREFIX",
        "ENV",
        "TIER",
        "STATUS",
        "LAST USED",
        "EXPIRES",
    ];
    listing(list, json, &headers, |k| {
        [
            "id",
            "name",
            "prefix",
            "environment",
            "tier",
            "status",
            "last_used_at",
            "expires_at",
        ]
        .iter()
        .map(|f| s(k, f).to_owned())
        .collect()
    })
}

pub fn logs(list: &Value, json: bool) -> anyhow::Result<()> {
    let headers = [
        "TIME", "ID", "KEY", "MODEL", "STATUS", "ERROR", "LATENCY", "TOKENS", "SAFETY",
    ];
    listing(list, json, &headers, |r| {
        vec![
            s(r, "time").to_owned(),
            s(r, "id").to_owned(),
            s(r, "key_id").to_owned(),
            s(r, "model").to_owned(),
            num(r, "status"),
            s(r, "error_code").to_owned(),
            format!("{} ms", num(r, "latency_ms")),
            tokens(r),
            safety_summary(&r["safety"]),
        ]
    })
}

/// `block:injection`, `flag:moderation`, or `pass`/`pass, 2 skipped`.
fn safety_summary(safety: &Value) -> String {
    let checks = safety["checks"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if checks.is_empty() {
        return "-".into();
    }
    for action in ["block", "flag"] {
        if let Some(c) = checks.iter().find(|c| c["action"] == action) {
            return format!("{action}:{}", s(c, "check"));
        }
    }
    let skipped = checks.iter().filter(|c| c["status"] == "skipped").count();
    if skipped > 0 {
        format!("pass, {skipped} skipped")
    } else {
        "pass".into()
    }
}

pub fn usage(list: &Value, json: bool) -> anyhow::Result<()> {
    let headers = [
        "BUCKET", "KEY", "MODEL", "REQUESTS", "ERRORS", "TOKENS", "P50", "P95",
    ];
    listing(list, json, &headers, |r| {
        vec![
            s(r, "bucket").to_owned(),
            s(r, "key_id").to_owned(),
            s(r, "model").to_owned(),
            num(r, "requests"),
            num(r, "errors"),
            tokens(r),
            format!("{} ms", num(r, "latency_p50_ms")),
            format!("{} ms", num(r, "latency_p95_ms")),
        ]
    })
}

pub fn tiers(list: &Value, json: bool) -> anyhow::Result<()> {
    let headers = [
        "NAME",
        "REQ/MIN",
        "TOKENS/MIN",
        "MAX STREAMS",
        "DAILY TOKENS",
    ];
    listing(list, json, &headers, |t| {
        let mut row = vec![s(t, "name").to_owned()];
        row.extend(
            [
                "requests_per_min",
                "tokens_per_min",
                "max_concurrent_streams",
                "daily_token_budget",
            ]
            .iter()
            .map(|f| num(t, f)),
        );
        row
    })
}

pub fn upstreams(list: &Value, json: bool) -> anyhow::Result<()> {
    let headers = ["NAME", "BASE URL", "API KEY", "SOURCE", "MODELS"];
    listing(list, json, &headers, |u| {
        let models = u
            .get("served_models")
            .and_then(Value::as_array)
            .map(|m| {
                m.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let has_key = if u.get("has_api_key") == Some(&Value::Bool(true)) {
            "yes"
        } else {
            "no"
        };
        vec![
            s(u, "name").to_owned(),
            s(u, "base_url").to_owned(),
            has_key.to_owned(),
            s(u, "source").to_owned(),
            models,
        ]
    })
}

pub fn verification(v: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        return json_out(v);
    }
    if v.get("ok") == Some(&Value::Bool(true)) {
        line(&format!(
            "Audit chain intact: {} entries verified.",
            v.get("entries").unwrap_or(&Value::Null)
        ))
    } else {
        line(&format!("Audit chain BROKEN: {}", s(v, "error")))
    }
}
