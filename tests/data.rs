//! Usage rollups and their export, the live event stream, Prometheus
//! metrics, master key rotation, and retention of usage and audit data,
//! through the real server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{config_with, Gateway, MockUpstream};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

fn chat(content: &str, model: &str) -> Value {
    json!({"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": content}]})
}

/// Polls until `ok` holds for the admin answer at `path`.
async fn wait_for(gw: &Gateway, path: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let (s, v) = gw.admin_call(Method::GET, path, None).await;
        if s == 200 && ok(&v) {
            return v;
        }
        last = v;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    panic!("{path} never became ready: {last}");
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_rolls_up_per_key_model_and_exports() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config_with(Some(&up), "")).await;
    let (a, key_a) = gw.create_key(json!({"name": "a", "tier": "startup"})).await;
    let (b, key_b) = gw.create_key(json!({"name": "b", "tier": "startup"})).await;
    for _ in 0..3 {
        let r = gw
            .post(
                &key_a,
                "/v1/chat/completions",
                chat("hello", "assisters-echo"),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    let r = gw
        .post(&key_a, "/v1/chat/completions", chat("x", "mock-500"))
        .await;
    assert_eq!(r.status(), 502);
    let r = gw
        .post(&key_b, "/v1/chat/completions", chat("hi", "mock"))
        .await;
    assert_eq!(r.status(), 200);

    let v = wait_for(&gw, "/admin/usage", |v| {
        v["data"].as_array().is_some_and(|d| d.len() >= 3)
    })
    .await;
    assert_eq!(v["granularity"], "day");
    assert_eq!(v["truncated"], false);
    let rows = v["data"].as_array().unwrap();
    let row = |k: &str, m: &str| {
        rows.iter()
            .find(|r| r["key_id"] == k && r["model"] == m)
            .unwrap_or_else(|| panic!("no row {k} {m} in {v}"))
    };
    let echo = row(&a, "assisters-echo");
    assert_eq!(echo["requests"], 3);
    assert_eq!(echo["errors"], 0);
    assert_eq!(echo["prompt_tokens"], 24, "8 prompt tokens each");
    assert_eq!(echo["completion_tokens"], 3);
    assert!(echo["latency_p50_ms"].is_u64() && echo["latency_p95_ms"].is_u64());
    assert!(echo["bucket"].as_str().unwrap().ends_with("T00:00:00Z"));
    assert_eq!(row(&a, "mock-500")["errors"], 1);
    assert_eq!(row(&b, "mock")["requests"], 1);

    // Hourly rollups and filters.
    let (s, h) = gw
        .admin_call(
            Method::GET,
            &format!("/admin/usage?granularity=hour&key_id={b}"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let hrows = h["data"].as_array().unwrap();
    assert_eq!(hrows.len(), 1, "{h}");
    assert_eq!(hrows[0]["model"], "mock");
    let (s, e) = gw
        .admin_call(Method::GET, "/admin/usage?granularity=week", None)
        .await;
    assert_eq!(
        (s, e["error"]["param"].as_str()),
        (400, Some("granularity"))
    );

    // CSV and JSON Lines downloads from the API…
    let resp = gw
        .admin_get(&format!("/admin/usage?format=csv&key_id={a}"))
        .await;
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert!(resp.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("attachment"));
    let csv = resp.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("bucket,key_id,model,requests,errors"),
        "{csv}"
    );
    assert_eq!(lines.len(), 3, "header + echo + mock-500: {csv}");
    assert!(
        csv.contains(&format!(",{a},assisters-echo,3,0,24,3,")),
        "{csv}"
    );

    // …and from the CLI.
    let out = gw.cli(&["usage", "export", "--format", "jsonl", "--key", &b], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let parsed: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(parsed.len(), 1);
    assert_eq!(parsed[0]["requests"], 1);
    let file = gw.path().join("usage.csv");
    let out = gw.cli(
        &[
            "usage",
            "export",
            "--format",
            "csv",
            "-o",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 4);
    let out = gw.cli(&["usage", "show", "--granularity", "hour"], &[]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("assisters-echo") && table.contains("REQUESTS"),
        "{table}"
    );
}

/// A key whose tier has a daily token budget of `budget` (and room enough
/// per minute): `(id, secret)`.
async fn daily_key(gw: &Gateway, budget: u64) -> (String, String) {
    let tier = json!({"name": "daily", "requests_per_min": 1000, "tokens_per_min": 1000000,
                      "daily_token_budget": budget});
    let (s, _) = gw
        .admin_call(Method::POST, "/admin/tiers", Some(tier))
        .await;
    assert_eq!(s, 201);
    gw.create_key(json!({"name": "k", "tier": "daily"})).await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daily_budget_survives_a_restart() {
    let mut gw = Gateway::start(&config_with(None, "")).await;
    let (key_id, key) = daily_key(&gw, 100).await;
    let big = json!({"model": "assisters-echo", "max_tokens": 5, "messages": [{"role": "user", "content": "word ".repeat(75)}]});
    let r = gw.post(&key, "/v1/chat/completions", big).await;
    assert_eq!(r.status(), 200);
    let small = json!({"model": "assisters-echo", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]});
    wait_for(&gw, "/admin/usage", |v| {
        v["data"].as_array().is_some_and(|d| !d.is_empty())
    })
    .await;
    gw.terminate();
    // Usage kept an hour: a day that ended two days ago goes, today's is
    // not over yet and stays (it was deleted by its start time, and the
    // next start's budget with it).
    {
        let db = rusqlite::Connection::open(gw.path().join("gateway.db")).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let old_day = now - now % 86_400 - 2 * 86_400;
        db.execute(
            "INSERT INTO usage_rollups (granularity, bucket, key_id, model, requests, errors, \
             prompt_tokens, completion_tokens, latency_sum_ms, latency_hist) \
             VALUES ('day', ?1, ?2, 'old', 1, 0, 1, 1, 1, x'')",
            rusqlite::params![old_day, key_id],
        )
        .unwrap();
    }
    let cfg = config_with(None, "[logs.retention]\nusage = \"1h\"\n");
    let mut gw = Gateway::start_in(gw.take_dir(), &cfg, &[]).await;
    let v = wait_for(&gw, "/admin/usage", |v| {
        v["data"]
            .as_array()
            .is_some_and(|d| d.iter().all(|r| r["model"] != "old"))
    })
    .await;
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["model"] == "assisters-echo"),
        "today's rollup was swept: {v}"
    );
    gw.terminate();
    let gw = Gateway::start_in(gw.take_dir(), &cfg, &[]).await;
    // 8 prompt + 10 reserved tokens fit in a fresh day's 100, not in what
    // is left of today's after the first request's ~85.
    let r = gw.post(&key, "/v1/chat/completions", small).await;
    assert_eq!(r.status(), 429, "today's usage was remembered");
}

/// Tokens charged without a usage report (the upstream sent none) are on
/// the record and in the rollups, and a restart counts them against the
/// daily budget (it counted reported usage alone, so they were forgotten).
#[tokio::test(flavor = "multi_thread")]
async fn tokens_charged_without_a_usage_report_survive_a_restart() {
    let up = MockUpstream::start().await;
    let cfg = config_with(Some(&up), "");
    let mut gw = Gateway::start(&cfg).await;
    let (key_id, key) = daily_key(&gw, 1000).await;
    let mut events = gw.admin_get("/admin/events?history=0").await.bytes_stream();
    let ask = |model: &str, stream: bool, max_tokens: u64| {
        json!({"model": model, "stream": stream, "max_tokens": max_tokens,
               "messages": [{"role": "user", "content": "hi"}]})
    };
    for stream in [false, true] {
        let r = gw
            .post(
                &key,
                "/v1/chat/completions",
                ask("mock-no-usage", stream, 300),
            )
            .await;
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    let r = gw
        .post(&key, "/v1/chat/completions", ask("mock", false, 300))
        .await;
    assert_eq!(r.status(), 200);
    let r = gw
        .post(&key, "/v1/chat/completions", ask("mock-500", false, 300))
        .await;
    assert_eq!(r.status(), 502);
    let logs = wait_for(&gw, "/admin/logs", |v| {
        v["data"].as_array().is_some_and(|d| d.len() == 4)
    })
    .await;
    let by_model = |model: &str| -> Vec<Value> {
        logs["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["model"] == model)
            .cloned()
            .collect()
    };
    let unreported: Vec<u64> = by_model("mock-no-usage")
        .iter()
        .map(|r| {
            assert!(r["prompt_tokens"].is_null(), "{r}");
            r["unreported_tokens"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(unreported.len(), 2);
    for n in &unreported {
        // The prompt's count plus the 300 of max_tokens.
        assert!((301..320).contains(n), "{n}");
    }
    // The live view's request events carry them too.
    let mut live: Vec<u64> = request_events(&mut events, "mock-no-usage", 2)
        .await
        .iter()
        .map(|e| e["unreported_tokens"].as_u64().unwrap())
        .collect();
    let mut logged = unreported.clone();
    live.sort_unstable();
    logged.sort_unstable();
    assert_eq!(live, logged);
    assert!(
        by_model("mock")[0]["unreported_tokens"].is_null(),
        "usage was reported"
    );
    assert!(
        by_model("mock-500")[0]["unreported_tokens"].is_null(),
        "a refused call is refunded"
    );
    let usage = wait_for(
        &gw,
        &format!("/admin/usage?granularity=day&key_id={key_id}"),
        |v| {
            v["data"].as_array().is_some_and(|d| {
                d.iter()
                    .any(|r| r["model"] == "mock-no-usage" && r["requests"] == 2)
            })
        },
    )
    .await;
    let row = usage["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == "mock-no-usage")
        .unwrap();
    assert_eq!(row["unreported_tokens"], unreported.iter().sum::<u64>());
    assert_eq!(row["prompt_tokens"], 0);

    // ~620 unreported and 10 reported of 1000: 400 more do not fit.
    gw.terminate();
    let gw = Gateway::start_in(gw.take_dir(), &cfg, &[]).await;
    let r = gw
        .post(&key, "/v1/chat/completions", ask("mock", false, 400))
        .await;
    assert_eq!(r.status(), 429, "the unreported tokens were forgotten");
    let r = gw
        .post(&key, "/v1/chat/completions", ask("mock", false, 300))
        .await;
    assert_eq!(r.status(), 200);
}

type EventBody = dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin;

/// The next chunk of an event stream, before `deadline`.
async fn next_chunk(body: &mut EventBody, deadline: tokio::time::Instant) -> bytes::Bytes {
    tokio::time::timeout_at(deadline, body.next())
        .await
        .expect("events arrive")
        .unwrap()
        .unwrap()
}

/// The first `n` `event: request` data of `model` from an `/admin/events` body.
async fn request_events(body: &mut EventBody, model: &str, n: usize) -> Vec<Value> {
    let (mut text, mut found) = (String::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while found.len() < n {
        let chunk = next_chunk(body, deadline).await;
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            if let Some(data) = event.strip_prefix("event: request\ndata: ") {
                let v: Value = serde_json::from_str(data.trim_end()).unwrap();
                if v["model"] == model {
                    found.push(v);
                }
            }
        }
    }
    found
}

/// A rotated key's successor counts its predecessor's day after a restart,
/// and the predecessor, in its grace period, shares it (each started the
/// day afresh).
#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_keys_day_survives_a_restart() {
    let mut gw = Gateway::start(&config_with(None, "")).await;
    let (id, old) = daily_key(&gw, 1000).await;
    let half = json!({"model": "assisters-echo", "max_tokens": 5, "messages": [{"role": "user", "content": "word ".repeat(30)}]});
    let spent = |v: Value| v["usage"]["total_tokens"].as_u64().unwrap();
    let r = gw.post(&old, "/v1/chat/completions", half.clone()).await;
    assert_eq!(r.status(), 200);
    let first = spent(r.json().await.unwrap());
    let (s, v) = gw
        .admin_call(
            Method::POST,
            &format!("/admin/keys/{id}/rotate"),
            Some(json!({"grace": "1h"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let new = v["new"]["key"].as_str().unwrap().to_owned();
    let r = gw.post(&new, "/v1/chat/completions", half).await;
    assert_eq!(r.status(), 200);
    let second = spent(r.json().await.unwrap());
    // The budget leaves 10 tokens of the chain's day: too few for the
    // next request (8 prompt + 10 reserved), plenty for either key's own.
    let (s, v) = gw
        .admin_call(
            Method::PATCH,
            "/admin/tiers/daily",
            Some(json!({"daily_token_budget": first + second + 10})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    wait_for(&gw, "/admin/usage", |v| {
        v["data"].as_array().is_some_and(|d| {
            d.iter()
                .map(|r| r["requests"].as_u64().unwrap_or(0))
                .sum::<u64>()
                == 2
        })
    })
    .await;
    gw.terminate();
    let gw = Gateway::start_in(gw.take_dir(), &config_with(None, ""), &[]).await;
    let small = json!({"model": "assisters-echo", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]});
    for key in [&old, &new] {
        let r = gw.post(key, "/v1/chat/completions", small.clone()).await;
        assert_eq!(r.status(), 429, "the day is the chain's");
        let v: Value = r.json().await.unwrap();
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("Daily token budget"),
            "{v}"
        );
    }
}

/// An upstream's token figures are not trusted: absurd ones are capped, and
/// summing them neither breaks the usage figures nor the next start.
#[tokio::test(flavor = "multi_thread")]
async fn absurd_usage_from_an_upstream_is_capped_and_the_gateway_restarts() {
    let up = MockUpstream::start().await;
    let mut gw = Gateway::start(&config_with(Some(&up), "")).await;
    let (_, key) = gw.create_key(json!({"name": "k", "tier": "startup"})).await;
    // 2^62 + 2^62 tokens: their sum alone overflowed a 64-bit integer.
    let r = gw
        .post(&key, "/v1/chat/completions", chat("hi", "mock-huge-usage"))
        .await;
    assert_eq!(r.status(), 200);
    let v = wait_for(&gw, "/admin/usage", |v| {
        v["data"].as_array().is_some_and(|d| !d.is_empty())
    })
    .await;
    let cap = 1u64 << 40;
    assert_eq!(v["data"][0]["prompt_tokens"], cap, "{v}");
    assert_eq!(v["data"][0]["completion_tokens"], cap, "{v}");
    gw.terminate();
    let gw = Gateway::start_in(gw.take_dir(), &config_with(Some(&up), ""), &[]).await;
    let (s, v) = gw.admin_call(Method::GET, "/admin/usage", None).await;
    assert_eq!(s, 200, "{v}");
}

/// A range with more rows than one answer carries says so, and keeps the
/// newest rows (it had silently dropped them).
#[tokio::test(flavor = "multi_thread")]
async fn a_usage_range_too_large_is_flagged_and_keeps_the_newest() {
    let mut gw = Gateway::start(&config_with(None, "")).await;
    gw.terminate();
    {
        let mut db = rusqlite::Connection::open(gw.path().join("gateway.db")).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let today = now - now % 86_400;
        let tx = db.transaction().unwrap();
        {
            let mut put = tx
                .prepare(
                    "INSERT INTO usage_rollups (granularity, bucket, key_id, model, requests, \
                     errors, prompt_tokens, completion_tokens, latency_sum_ms, latency_hist) \
                     VALUES ('day', ?1, ?2, ?3, 1, 0, 1, 1, 1, x'')",
                )
                .unwrap();
            for i in 0..100_000 {
                put.execute(rusqlite::params![today - 86_400, format!("key_{i}"), "old"])
                    .unwrap();
            }
            put.execute(rusqlite::params![today, "key_new", "new"])
                .unwrap();
        }
        tx.commit().unwrap();
    }
    let gw = Gateway::start_in(gw.take_dir(), &config_with(None, ""), &[]).await;
    let (s, v) = gw.admin_call(Method::GET, "/admin/usage", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["truncated"], true);
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 100_000);
    assert_eq!(
        data[data.len() - 1]["model"],
        "new",
        "the newest row is kept"
    );
    let r = gw.admin_get("/admin/usage?format=csv").await;
    assert_eq!(r.headers()["x-assisters-truncated"], "true");
}

#[tokio::test(flavor = "multi_thread")]
async fn live_events_carry_requests_and_ticks() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let key = gw.key().await;
    let resp = gw.admin_get("/admin/events?history=0").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut body = resp.bytes_stream();
    let r = gw
        .post(&key, "/v1/chat/completions", chat("live", "assisters-echo"))
        .await;
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();

    let mut text = String::new();
    let (mut saw_request, mut saw_tick) = (false, false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(saw_request && saw_tick) {
        let chunk = next_chunk(&mut body, deadline).await;
        text.push_str(&String::from_utf8_lossy(&chunk));
        for ev in text.split("\n\n") {
            if let Some(data) = ev.strip_prefix("event: request\ndata: ") {
                let v: Value = serde_json::from_str(data).unwrap();
                if v["id"] == id.as_str() {
                    assert_eq!(v["status"], 200);
                    assert_eq!(v["model"], "assisters-echo");
                    assert_eq!(v["prompt_tokens"], 8);
                    saw_request = true;
                }
            }
            if let Some(data) = ev.strip_prefix("event: tick\ndata: ") {
                let v: Value = serde_json::from_str(data).unwrap();
                assert!(v["at"].is_i64() && v["requests"].is_u64());
                saw_tick = true;
            }
        }
    }

    // Without the admin token there is no stream.
    let r = gw
        .http
        .get(format!("{}/admin/events", gw.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // History replays past ticks for a new consumer's charts.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let resp = gw.admin_get("/admin/events?history=60").await;
    let first = resp.bytes_stream().next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with("event: tick"));

    // A rotated token ends the stream it opened (it kept streaming every
    // request's details after the token stopped working elsewhere).
    let resp = gw.admin_get("/admin/events?history=0").await;
    let mut stream = resp.bytes_stream();
    let (s, _) = gw
        .admin_call(Method::POST, "/admin/token/rotate", None)
        .await;
    assert_eq!(s, 200);
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the stream ended with its token");
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_metrics_count_requests_errors_and_tokens() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config_with(Some(&up), "")).await;
    let key = gw.key().await;
    for _ in 0..2 {
        gw.post(&key, "/v1/chat/completions", chat("m", "assisters-echo"))
            .await;
    }
    gw.post(&key, "/v1/chat/completions", chat("m", "mock-500"))
        .await;
    gw.post(
        "ask_wrong",
        "/v1/chat/completions",
        chat("m", "assisters-echo"),
    )
    .await;

    let r = gw
        .http
        .get(format!("{}/metrics", gw.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "metrics need the admin token");
    let r = gw.admin_get("/metrics").await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    for needle in [
        "assisters_requests_total{status=\"200\"} 2",
        "assisters_requests_total{status=\"502\"} 1",
        "assisters_requests_total{status=\"401\"} 1",
        "assisters_errors_total{code=\"upstream_error\"} 1",
        "assisters_errors_total{code=\"invalid_api_key\"} 1",
        "assisters_tokens_total{kind=\"prompt\"} 16",
        "assisters_request_duration_seconds_count 4",
        "assisters_log_queue_depth",
        "assisters_log_records_dropped_total 0",
        "# EOF",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert!(!text.contains(&gw.token), "no secret in metrics");
}

#[tokio::test(flavor = "multi_thread")]
async fn master_key_rotation_reseals_everything_and_survives_restart() {
    let up = MockUpstream::start().await;
    let mut gw = Gateway::start(&config_with(None, "")).await;
    let secret = "sk-rotated-upstream-secret-555";
    let (s, _) = gw
        .admin_call(
            Method::POST,
            "/admin/upstreams",
            Some(json!({"name": "local", "base_url": up.base_url(), "api_key": secret, "models": ["mock"]})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, sub) = gw
        .admin_call(
            Method::POST,
            "/admin/status/subscribers",
            Some(json!({"kind": "webhook", "target": "https://hooks.example.com/status"})),
        )
        .await;
    assert_eq!(s, 201, "{sub}");
    let (sub_id, hook_secret) = (
        sub["id"].as_str().unwrap().to_owned(),
        sub["secret"].as_str().unwrap().to_owned(),
    );
    let key = gw.key().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = gw
            .post(
                &key,
                "/v1/chat/completions",
                chat(&format!("before {i}"), "assisters-echo"),
            )
            .await;
        ids.push(r.headers()["x-request-id"].to_str().unwrap().to_owned());
    }
    let v = wait_for(&gw, "/admin/crypto", |v| v["records_by_version"]["1"] == 5).await;
    assert_eq!(v["current_version"], 1);
    // Where the key lives is shown; the key never is.
    assert_eq!(v["storage"]["kind"], "file");
    assert!(v["storage"]["location"]
        .as_str()
        .is_some_and(|l| l.ends_with("master.key")));
    assert!(v["storage"].get("warning").is_none());
    let key_file = std::fs::read_to_string(gw.path().join("master.key")).unwrap();
    let key_b64 = key_file.split_whitespace().nth(1).unwrap();
    assert!(!v.to_string().contains(key_b64));

    let out = gw.cli(&["crypto", "rotate", "--json"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["current_version"], 2);
    assert_eq!(v["versions"], json!([1, 2]));
    let key_file = std::fs::read_to_string(gw.path().join("master.key")).unwrap();
    assert_eq!(key_file.lines().count(), 2);

    // New records use the new key; old ones are re-sealed in the background.
    let r = gw
        .post(
            &key,
            "/v1/chat/completions",
            chat("after", "assisters-echo"),
        )
        .await;
    ids.push(r.headers()["x-request-id"].to_str().unwrap().to_owned());
    let v = wait_for(&gw, "/admin/crypto", |v| {
        v["reencrypt_pending"] == 0 && v["records_by_version"]["2"] == 6
    })
    .await;
    assert!(v["records_by_version"].get("1").is_none(), "{v}");
    let (_, audit) = gw.admin_call(Method::GET, "/admin/audit", None).await;
    assert_eq!(audit["data"][0]["action"], "crypto.rotate");
    assert_eq!(audit["data"][0]["after"]["upstream_keys_resealed"], 1);
    assert_eq!(audit["data"][0]["after"]["webhook_secrets_resealed"], 1);
    // The small secrets are sealed under the new version at once, and still
    // open to what they were.
    let db = rusqlite::Connection::open(gw.path().join("gateway.db")).unwrap();
    let sealed: Vec<u8> = db
        .query_row(
            "SELECT secret_enc FROM status_subscribers WHERE id = ?1",
            [&sub_id],
            |r| r.get(0),
        )
        .unwrap();
    let up_sealed: Vec<u8> = db
        .query_row("SELECT api_key_enc FROM upstreams", [], |r| r.get(0))
        .unwrap();
    drop(db);
    assert_eq!(assisters::crypto::Keyring::version_of(&sealed), Some(2));
    assert_eq!(assisters::crypto::Keyring::version_of(&up_sealed), Some(2));
    let keyring = assisters::crypto::Keyring::load_or_create(gw.path(), None).unwrap();
    assert_eq!(
        keyring.open(&sealed, sub_id.as_bytes()).unwrap(),
        hook_secret.as_bytes()
    );

    // After a restart the upstream key (re-sealed) and every body still open.
    gw.terminate();
    let gw = Gateway::start_in(gw.take_dir(), &config_with(None, ""), &[]).await;
    let r = gw
        .post(&key, "/v1/chat/completions", chat("x", "mock"))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        up.last().authorization.as_deref(),
        Some(format!("Bearer {secret}").as_str())
    );
    for (i, id) in ids.iter().enumerate() {
        let (s, b) = gw
            .admin_call(Method::POST, &format!("/admin/logs/{id}/body"), None)
            .await;
        assert_eq!(s, 200, "{b}");
        let expected = if i < 5 {
            format!("before {i}")
        } else {
            "after".into()
        };
        assert!(b["body"].as_str().unwrap().contains(&expected));
    }
    let out = gw.cli(&["audit", "verify"], &[]);
    assert!(out.status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_is_refused_for_a_key_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start_in(
        dir,
        &config_with(None, ""),
        &[("ASSISTERS_MASTER_KEY", &"ab".repeat(32))],
    )
    .await;
    let (s, v) = gw
        .admin_call(Method::POST, "/admin/crypto/rotate", None)
        .await;
    assert_eq!(s, 409);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("ASSISTERS_MASTER_KEY"));

    // Started again without the variable, the gateway refuses instead of
    // making a new key (everything sealed so far would be unreadable).
    gw.terminate();
    let out = std::process::Command::new(common::bin())
        .arg("--data-dir")
        .arg(gw.path())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .env_remove("ASSISTERS_MASTER_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ASSISTERS_MASTER_KEY"), "{err}");
    assert!(!gw.path().join("master.key").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_retention_prunes_behind_a_verifiable_anchor() {
    let mut gw = Gateway::start(&config_with(None, "")).await;
    for i in 0..3 {
        gw.create_key(json!({"name": format!("k{i}")})).await;
    }
    gw.terminate();
    // The shortest audit retention is a day: make these entries two old.
    let db = rusqlite::Connection::open(gw.path().join("gateway.db")).unwrap();
    db.execute("UPDATE audit_log SET at = at - 2 * 86400", [])
        .unwrap();
    drop(db);
    let cfg = config_with(None, "[logs.retention]\naudit = \"1day\"\n");
    let gw = Gateway::start_in(gw.take_dir(), &cfg, &[]).await;
    let v = wait_for(&gw, "/admin/audit", |v| {
        v["data"][0]["action"] == "audit.prune"
    })
    .await;
    assert_eq!(v["data"][0]["after"]["deleted"], 3);
    assert_eq!(v["data"][0]["after"]["anchor_seq"], 3);
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    gw.create_key(json!({"name": "after"})).await;
    let (s, ver) = gw
        .admin_call(Method::GET, "/admin/audit/verify", None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(ver["ok"], true, "{ver}");

    // The settings say forever by default, and refuse nonsense.
    let (_, st) = gw.admin_call(Method::GET, "/admin/settings", None).await;
    assert_eq!(st["settings"]["logs"]["retention"]["audit"], "1days");
    let (s, _) = gw
        .admin_call(
            Method::PATCH,
            "/admin/settings",
            Some(json!({"logs": {"retention": {"audit": "forever"}}})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, e) = gw
        .admin_call(
            Method::PATCH,
            "/admin/settings",
            Some(json!({"logs": {"retention": {"audit": "soon"}}})),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    // An audit trail kept for seconds is none; centuries overflowed the
    // cutoff into the future, which deleted every record.
    for (part, bad, says) in [
        ("audit", "1h", "at least a day"),
        ("request_logs", "300000000y", "at most 100 years"),
        ("usage", "10000y", "at most 100 years"),
    ] {
        let (s, e) = gw
            .admin_call(
                Method::PATCH,
                "/admin/settings",
                Some(json!({"logs": {"retention": {part: bad}}})),
            )
            .await;
        assert_eq!(s, 400, "{e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(says),
            "{e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_deletes_and_the_file_shrinks() {
    let mut gw = Gateway::start(&config_with(None, "")).await;
    let (_, key) = gw
        .create_key(json!({"name": "bulk", "tier": "startup"}))
        .await;
    let padding = "lorem ipsum dolor sit amet ".repeat(400);
    let bodies = futures_util::stream::iter(0..400)
        .map(|i| {
            let gw = &gw;
            let key = &key;
            let content = format!("{i} {padding}");
            async move {
                gw.post(key, "/v1/chat/completions", json!({"model": "assisters-echo", "max_tokens": 1, "messages": [{"role": "user", "content": content}]})).await.status()
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    assert!(bodies.iter().all(|s| s.as_u16() == 200));
    gw.terminate();
    let db = gw.path().join("gateway.db");
    let before = std::fs::metadata(&db).unwrap().len();
    assert!(before > 2_000_000, "bodies take room: {before}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let cfg = config_with(None, "[logs.retention]\nrequest_logs = \"1s\"\n");
    let mut gw = Gateway::start_in(gw.take_dir(), &cfg, &[]).await;
    wait_for(&gw, "/admin/logs", |v| {
        v["data"].as_array().is_some_and(|d| d.is_empty())
    })
    .await;
    gw.terminate();
    let after = std::fs::metadata(&db).unwrap().len();
    assert!(after * 4 < before, "the file shrank: {before} -> {after}");
}

/// A data dir made beforehand and readable by others still gets a store
/// only its owner can read (SQLite had created it with the umask, 0644).
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn the_store_is_private_in_a_data_dir_made_beforehand() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let gw = Gateway::start_in(dir, &config_with(None, ""), &[]).await;
    let key = gw.key().await;
    gw.post(&key, "/v1/chat/completions", chat("hi", "assisters-echo"))
        .await;
    for name in ["gateway.db", "gateway.db-wal", "gateway.db-shm"] {
        let mode = std::fs::metadata(gw.path().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
}
