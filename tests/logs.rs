//! Request logs through the real server: ids, records for every kind of
//! request, sealed bodies (and what happens when one is tampered with),
//! redaction, body logging switches, retention.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{config_with, files_containing, Gateway, MockUpstream};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

const SECRET_PROMPT: &str = "the launch code is PLAINTEXT-CANARY-4242";

/// Polls the admin API until a record with this id is written.
async fn record(gw: &Gateway, id: &str) -> Value {
    for _ in 0..100 {
        let (s, v) = gw
            .admin_call(Method::GET, &format!("/admin/logs/{id}"), None)
            .await;
        if s == 200 {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    panic!("record {id} never written");
}

fn chat(content: &str) -> Value {
    json!({"model": "assisters-echo", "max_tokens": 10, "messages": [{"role": "user", "content": content}]})
}

#[tokio::test(flavor = "multi_thread")]
async fn every_request_gets_a_record_and_an_id() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config_with(Some(&up), "")).await;
    let (key_id, key) = gw.create_key(json!({"name": "k", "tier": "startup"})).await;

    let r = gw.post(&key, "/v1/chat/completions", chat("hello")).await;
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(id.starts_with("req_"));
    let rec = record(&gw, &id).await;
    assert_eq!(rec["status"], 200);
    assert_eq!(rec["key_id"], key_id.as_str());
    assert_eq!(rec["model"], "assisters-echo");
    assert_eq!(rec["prompt_tokens"], 8); // 3 priming + 3 framing + "user" + "hello"
    assert_eq!(rec["completion_tokens"], 1);
    assert_eq!(rec["stream"], false);
    assert_eq!(rec["client_ip"], "127.0.0.1");
    assert_eq!(rec["has_body"], true);
    // Every safety check that ran says so (tests/safety.rs covers the rest).
    let checks = rec["safety"]["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 4, "{rec}");
    assert!(checks
        .iter()
        .all(|c| c["status"] == "ran" && c["action"] == "pass"));

    // A valid client id is echoed and kept beside the record's own id, so
    // a client that reuses one (a retry) loses neither record.
    for content in ["first try", "retry"] {
        let r = gw
            .http
            .post(format!("{}/v1/chat/completions", gw.api))
            .bearer_auth(&key)
            .header("x-request-id", "trace-abc.123")
            .json(&chat(content))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-request-id"], "trace-abc.123");
    }
    let newest = record(&gw, "trace-abc.123").await;
    assert_eq!(newest["client_request_id"], "trace-abc.123");
    assert!(newest["id"].as_str().unwrap().starts_with("req_"));
    let mut both = Vec::new();
    for _ in 0..100 {
        let (s, v) = gw
            .admin_call(Method::GET, "/admin/logs?request_id=trace-abc.123", None)
            .await;
        assert_eq!(s, 200, "{v}");
        both = v["data"].as_array().unwrap().clone();
        if both.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(both.len(), 2, "{both:?}");
    assert_ne!(both[0]["id"], both[1]["id"]);
    assert_eq!(both[0]["id"], newest["id"], "the newest comes first");
    // Either id opens the stored body, sealed under the record's own id.
    let (s, v) = gw
        .admin_call(Method::POST, "/admin/logs/trace-abc.123/body", None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["body"].as_str().unwrap().contains("retry"), "{v}");
    assert_eq!(v["id"], newest["id"]);
    let older = both[1]["id"].as_str().unwrap();
    let (s, v) = gw
        .admin_call(Method::POST, &format!("/admin/logs/{older}/body"), None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["body"].as_str().unwrap().contains("first try"), "{v}");
    let r = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.api))
        .bearer_auth(&key)
        .header("x-request-id", "a\"b<script>")
        .json(&chat("x"))
        .send()
        .await
        .unwrap();
    assert!(r.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_"));

    // Refused requests are recorded too.
    let r = gw.post("ask_nope", "/v1/chat/completions", chat("x")).await;
    let rec = record(&gw, r.headers()["x-request-id"].to_str().unwrap()).await;
    assert_eq!(
        (rec["status"].as_u64(), rec["error_code"].as_str()),
        (Some(401), Some("invalid_api_key"))
    );
    let r = gw
        .post(
            &key,
            "/v1/chat/completions",
            json!({"model": "mock-500", "messages": []}),
        )
        .await;
    let rec = record(&gw, r.headers()["x-request-id"].to_str().unwrap()).await;
    assert_eq!(
        (
            rec["status"].as_u64(),
            rec["error_code"].as_str(),
            rec["upstream"].as_str()
        ),
        (Some(502), Some("upstream_error"), Some("mock"))
    );

    // A stream's record is written when it ends, with time to first byte and usage.
    let r = gw
        .post(
            &key,
            "/v1/chat/completions",
            json!({"model": "mock", "stream": true, "messages": []}),
        )
        .await;
    let sid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let mut body = r.bytes_stream();
    while body.next().await.is_some() {}
    let rec = record(&gw, &sid).await;
    assert_eq!(
        (rec["stream"].as_bool(), rec["completion_tokens"].as_u64()),
        (Some(true), Some(3))
    );
    assert!(rec["ttfb_ms"].is_u64());

    let (_, page) = gw
        .admin_call(
            Method::GET,
            &format!("/admin/logs?key_id={key_id}&status=200&limit=2"),
            None,
        )
        .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let next = page["next"].as_str().unwrap();
    let (_, older) = gw
        .admin_call(
            Method::GET,
            &format!("/admin/logs?key_id={key_id}&status=200&limit=2&cursor={next}"),
            None,
        )
        .await;
    assert!(!older["data"].as_array().unwrap().is_empty());
    assert_ne!(older["data"][0]["id"], page["data"][0]["id"]);
    let (s, _) = gw
        .admin_call(Method::GET, "/admin/logs?since=yesterday", None)
        .await;
    assert_eq!(s, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_are_sealed_readable_on_request_and_tamper_evident() {
    let mut gw = Gateway::start(&config_with(None, "")).await;
    let key = gw.key().await;
    let r = gw
        .post(&key, "/v1/chat/completions", chat(SECRET_PROMPT))
        .await;
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    record(&gw, &id).await;
    let (s, v) = gw
        .admin_call(Method::POST, &format!("/admin/logs/{id}/body"), None)
        .await;
    assert_eq!(s, 200);
    assert!(v["body"].as_str().unwrap().contains(SECRET_PROMPT));
    let (_, audit) = gw.admin_call(Method::GET, "/admin/audit", None).await;
    assert_eq!(audit["data"][0]["action"], "log.read_body");
    assert_eq!(audit["data"][0]["target"], id.as_str());

    // Neither the prompt nor the key is anywhere on disk in plain text.
    assert_eq!(gw.terminate().code(), Some(0));
    assert!(files_containing(gw.path(), b"PLAINTEXT-CANARY-4242").is_empty());
    assert!(files_containing(gw.path(), key.as_bytes()).is_empty());

    // Flip one byte of the sealed body: decryption must fail, clearly.
    {
        let db = rusqlite::Connection::open(gw.path().join("gateway.db")).unwrap();
        let mut blob: Vec<u8> = db
            .query_row(
                "SELECT body_enc FROM request_logs WHERE id = ?1",
                [&id],
                |r| r.get(0),
            )
            .unwrap();
        let last = blob.len() - 1;
        blob[last] ^= 0x01;
        db.execute(
            "UPDATE request_logs SET body_enc = ?1 WHERE id = ?2",
            rusqlite::params![blob, id],
        )
        .unwrap();
    }
    let cfg = config_with(None, "");
    let gw = Gateway::start_in(gw.take_dir(), &cfg, &[]).await;
    let (s, v) = gw
        .admin_call(Method::POST, &format!("/admin/logs/{id}/body"), None)
        .await;
    assert_eq!(s, 500);
    assert_eq!(v["error"]["code"], "integrity_error");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("altered"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn body_logging_switches_and_redaction() {
    let gw = Gateway::start(&config_with(
        None,
        "[logs.redact]\nemails = true\napi_keys = true\n",
    ))
    .await;
    let key = gw.key().await;
    let r = gw
        .post(
            &key,
            "/v1/chat/completions",
            chat("write to ann@example.org about ask_abcdefghijklmnopqrstuvwxyz012345"),
        )
        .await;
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    record(&gw, &id).await;
    let (_, v) = gw
        .admin_call(Method::POST, &format!("/admin/logs/{id}/body"), None)
        .await;
    let body = v["body"].as_str().unwrap();
    assert!(
        body.contains("[REDACTED_EMAIL]")
            && body.contains("[REDACTED_KEY]")
            && !body.contains("ann@example.org"),
        "{body}"
    );

    let (kid, quiet) = gw
        .create_key(json!({"name": "quiet", "overrides": {"log_bodies": false}}))
        .await;
    let r = gw.post(&quiet, "/v1/chat/completions", chat("x")).await;
    let rec = record(&gw, r.headers()["x-request-id"].to_str().unwrap()).await;
    assert_eq!(rec["has_body"], false, "per-key switch");
    assert_eq!(rec["key_id"], kid.as_str());

    gw.admin_call(
        Method::PATCH,
        "/admin/settings",
        Some(json!({"logs": {"store_bodies": false}})),
    )
    .await;
    let r = gw.post(&key, "/v1/chat/completions", chat("x")).await;
    let rec = record(&gw, r.headers()["x-request-id"].to_str().unwrap()).await;
    assert_eq!(rec["has_body"], false, "global switch");
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_deletes_expired_records() {
    let mut gw = Gateway::start(&config_with(None, "")).await;
    let key = gw.key().await;
    let r = gw.post(&key, "/v1/chat/completions", chat("old")).await;
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    record(&gw, &id).await;
    gw.terminate();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The retention pass runs at start.
    let cfg = config_with(None, "[logs.retention]\nrequest_logs = \"1s\"\n");
    let gw = Gateway::start_in(gw.take_dir(), &cfg, &[]).await;
    let mut gone = false;
    for _ in 0..100 {
        let (s, _) = gw
            .admin_call(Method::GET, &format!("/admin/logs/{id}"), None)
            .await;
        if s == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(gone, "a record past retention is deleted");
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_commands_list_and_show() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let (key_id, key) = gw.create_key(json!({"name": "k", "tier": "startup"})).await;
    let r = gw
        .post(&key, "/v1/chat/completions", chat("cli body"))
        .await;
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    record(&gw, &id).await;
    let out = gw.cli(&["logs", "list", "--key", &key_id], &[]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && table.contains(&id) && table.contains("assisters-echo"),
        "{table}"
    );
    let out = gw.cli(&["logs", "list", "--json", "--status", "404"], &[]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 0);
    let out = gw.cli(&["logs", "show", &id, "--body"], &[]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["body"].as_str().unwrap().contains("cli body"));
    let out = gw.cli(&["logs", "list", "--json", "--request-id", &id], &[]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["id"], id.as_str(), "{v}");
    let out = gw.cli(
        &["logs", "list", "--json", "--request-id", "no-such-id"],
        &[],
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 0);
}

/// The records of `key_id`, newest first, once there are `n` of them.
async fn records_of(gw: &Gateway, key_id: &str, n: usize) -> Vec<Value> {
    let mut got = Vec::new();
    for _ in 0..100 {
        let (_, v) = gw
            .admin_call(Method::GET, &format!("/admin/logs?key_id={key_id}"), None)
            .await;
        got = v["data"].as_array().cloned().unwrap_or_default();
        if got.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    got
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_that_never_start_and_clients_that_leave_are_recorded() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config_with(Some(&up), "")).await;
    let (key_id, key) = gw.create_key(json!({"name": "k", "tier": "startup"})).await;
    // A stream the upstream refuses (its 400 passed on), one it fails (502).
    for (model, status) in [("mock-400", 400), ("mock-500", 502)] {
        let r = gw
            .post(
                &key,
                "/v1/chat/completions",
                json!({"model": model, "stream": true, "messages": []}),
            )
            .await;
        assert_eq!(r.status(), status);
        let rec = record(&gw, r.headers()["x-request-id"].to_str().unwrap()).await;
        assert_eq!(
            (rec["status"].as_u64(), rec["stream"].as_bool()),
            (Some(u64::from(status)), Some(true)),
            "{rec}"
        );
        assert_eq!(rec["upstream"], "mock", "{rec}");
    }
    // Clients that give up before a slow upstream answers, JSON and stream.
    for stream in [false, true] {
        let gone = gw
            .http
            .post(format!("{}/v1/chat/completions", gw.api))
            .bearer_auth(&key)
            .header("x-request-id", format!("left-{stream}"))
            .timeout(Duration::from_millis(300))
            .json(&json!({"model": "mock-slow", "stream": stream, "messages": []}))
            .send()
            .await;
        assert!(gone.is_err(), "the client gave up first");
        let rec = record(&gw, &format!("left-{stream}")).await;
        assert_eq!(
            (rec["status"].as_u64(), rec["error_code"].as_str()),
            (Some(499), Some("client_disconnected")),
            "{rec}"
        );
        assert_eq!(rec["model"], "mock-slow", "{rec}");
    }
    assert_eq!(records_of(&gw, &key_id, 4).await.len(), 4);
}

/// A shutdown writes the record of every request, those it had to cut
/// included: a stream whose client left while its relay still waited for
/// the usage, and a request whose upstream had not answered when the grace
/// period ran out. (Both were lost, and not counted as lost.)
#[tokio::test(flavor = "multi_thread")]
async fn shutdown_writes_the_records_of_the_requests_it_cuts() {
    let up = MockUpstream::start().await;
    let cfg =
        config_with(Some(&up), "").replace("shutdown_grace = \"10s\"", "shutdown_grace = \"1s\"");
    let mut gw = Gateway::start(&cfg).await;
    let key = gw.key().await;
    let stream = gw
        .post(
            &key,
            "/v1/chat/completions",
            json!({"model": "mock-gated", "stream": true, "messages": []}),
        )
        .await;
    let mut body = stream.bytes_stream();
    body.next().await.unwrap().unwrap();
    drop(body);
    let (http, url, k) = (
        gw.http.clone(),
        format!("{}/v1/chat/completions", gw.api),
        key.clone(),
    );
    let slow = tokio::spawn(async move {
        http.post(url)
            .bearer_auth(k)
            .json(&json!({"model": "mock-slow", "messages": []}))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(gw.terminate().code(), Some(0));
    assert!(slow.await.unwrap().is_err(), "the slow request was cut");
    let db = rusqlite::Connection::open(gw.path().join("gateway.db")).unwrap();
    let mut rows: Vec<(String, i64, Option<String>)> = db
        .prepare("SELECT model, status, error_code FROM request_logs ORDER BY model")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            (
                "mock-gated".to_owned(),
                200,
                Some("server_shutdown".to_owned())
            ),
            (
                "mock-slow".to_owned(),
                499,
                Some("client_disconnected".to_owned())
            ),
        ]
    );
}

/// Written request logs survive the process being killed: each batch is a
/// synced commit.
#[tokio::test(flavor = "multi_thread")]
async fn written_request_logs_survive_kill_9() {
    let mut gw = Gateway::start(&config_with(None, "")).await;
    let key = gw.key().await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let r = gw
            .post(&key, "/v1/chat/completions", chat(&format!("n{i}")))
            .await;
        ids.push(r.headers()["x-request-id"].to_str().unwrap().to_owned());
    }
    record(&gw, ids.last().unwrap()).await;
    gw.kill9();
    let gw = Gateway::start_in(gw.take_dir(), &config_with(None, ""), &[]).await;
    for id in &ids {
        record(&gw, id).await;
    }
}
