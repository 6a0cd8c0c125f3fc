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

fn table(headers: &[&str], rows: Vec<Vec<String>>) -> anyhow::Result<()> {
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

pub fn keys(list: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        return json_out(list);
    }
    let rows = list
        .as_array()
        .map(|a| {
            a.iter()
                .map(|k| {
                    vec![
                        s(k, "id").to_owned(),
                        s(k, "name").to_owned(),
                        s(k, "prefix").to_owned(),
                        s(k, "environment").to_owned(),
                        s(k, "tier").to_owned(),
                        s(k, "status").to_owned(),
                        s(k, "last_used_at").to_owned(),
                        s(k, "expires_at").to_owned(),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    table(
        &[
            "ID",
            "NAME",
            "PREFIX",
            "ENV",
            "TIER",
            "STATUS",
            "LAST USED",
            "EXPIRES",
        ],
        rows,
    )
}

pub fn logs(list: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        return json_out(list);
    }
    let n = |v: &Value, f: &str| {
        v.get(f)
            .filter(|x| !x.is_null())
            .map_or_else(|| "-".to_owned(), |x| x.to_string())
    };
    let rows = list
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    vec![
                        s(r, "time").to_owned(),
                        s(r, "id").to_owned(),
                        s(r, "key_id").to_owned(),
                        s(r, "model").to_owned(),
                        n(r, "status"),
                        s(r, "error_code").to_owned(),
                        format!("{} ms", n(r, "latency_ms")),
                        format!("{}/{}", n(r, "prompt_tokens"), n(r, "completion_tokens")),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    table(
        &[
            "TIME", "ID", "KEY", "MODEL", "STATUS", "ERROR", "LATENCY", "TOKENS",
        ],
        rows,
    )
}

pub fn tiers(list: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        return json_out(list);
    }
    let num = |v: &Value, f: &str| {
        v.get(f)
            .filter(|x| !x.is_null())
            .map_or_else(|| "-".to_owned(), |x| x.to_string())
    };
    let rows = list
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    vec![
                        s(t, "name").to_owned(),
                        num(t, "requests_per_min"),
                        num(t, "tokens_per_min"),
                        num(t, "max_concurrent_streams"),
                        num(t, "daily_token_budget"),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    table(
        &[
            "NAME",
            "REQ/MIN",
            "TOKENS/MIN",
            "MAX STREAMS",
            "DAILY TOKENS",
        ],
        rows,
    )
}

pub fn upstreams(list: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        return json_out(list);
    }
    let rows = list
        .as_array()
        .map(|a| {
            a.iter()
                .map(|u| {
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
                    vec![
                        s(u, "name").to_owned(),
                        s(u, "base_url").to_owned(),
                        if u.get("has_api_key") == Some(&Value::Bool(true)) {
                            "yes"
                        } else {
                            "no"
                        }
                        .to_owned(),
                        s(u, "source").to_owned(),
                        models,
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    table(&["NAME", "BASE URL", "API KEY", "SOURCE", "MODELS"], rows)
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
