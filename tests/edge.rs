//! Attacks on the gateway listener, one test each: slow clients, too many
//! connections, overload, per-key concurrency, hostile headers and URLs,
//! request smuggling, compressed bodies and bombs, pathological JSON, and
//! clients that disconnect at every stage. After each, the server still
//! serves and its counters return to rest.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{config_with, Gateway, MockUpstream};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const EDGE: &str = "[edge]\nheader_read_timeout = \"1s\"\nbody_idle_timeout = \"1s\"\nbody_read_timeout = \"2s\"\n";

fn addr(gw: &Gateway) -> String {
    gw.api.trim_start_matches("http://").to_owned()
}

fn chat() -> Value {
    json!({"model": "assisters-echo", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
}

async fn still_serves(gw: &Gateway, key: &str) {
    let r = gw.post(key, "/v1/chat/completions", chat()).await;
    assert_eq!(r.status(), 200, "the gateway still serves");
}

/// Reads until EOF (or 10 s), returning what arrived.
async fn read_all(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

fn error_of(raw: &str) -> Value {
    let body = raw.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(body).unwrap_or(Value::Null)
}

async fn metric(gw: &Gateway, name: &str) -> f64 {
    let text = gw.admin_get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("{name} not in metrics"))
}

/// Waits for a gauge to come back to `want`.
async fn settles(gw: &Gateway, name: &str, want: f64) {
    for _ in 0..200 {
        if metric(gw, name).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{name} never returned to {want}");
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_loris_heads_and_bodies_get_408_while_others_are_served() {
    let gw = Gateway::start(&config_with(None, EDGE)).await;
    let key = gw.key().await;
    // Warm up (the tokenizer loads on first use).
    assert_eq!(
        gw.post(&key, "/v1/chat/completions", chat()).await.status(),
        200
    );
    let mut head = TcpStream::connect(addr(&gw)).await.unwrap();
    head.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: app")
        .await
        .unwrap();
    let mut body = TcpStream::connect(addr(&gw)).await.unwrap();
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"model\":"
    );
    body.write_all(req.as_bytes()).await.unwrap();

    // Meanwhile a normal client is served without delay.
    let t = Instant::now();
    let r = gw.post(&key, "/v1/chat/completions", chat()).await;
    assert_eq!(r.status(), 200);
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );

    let raw = read_all(&mut head).await;
    assert!(raw.starts_with("HTTP/1.1 408"), "{raw}");
    assert_eq!(error_of(&raw)["error"]["code"], "request_timeout");
    assert!(raw.contains("request head"));
    let raw = read_all(&mut body).await;
    assert!(raw.starts_with("HTTP/1.1 408"), "{raw}");
    assert!(raw.to_ascii_lowercase().contains("connection: close"));
    assert_eq!(error_of(&raw)["error"]["code"], "request_timeout");

    // A body that trickles in, a byte within each idle second, still has
    // to arrive whole within `body_read_timeout`.
    let mut trickle = TcpStream::connect(addr(&gw)).await.unwrap();
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
    );
    trickle.write_all(req.as_bytes()).await.unwrap();
    let t = Instant::now();
    let mut raw = String::new();
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if trickle.write_all(b" ").await.is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(1), trickle.read(&mut buf)).await
        {
            raw.push_str(&String::from_utf8_lossy(&buf[..n]));
            if n == 0 || raw.contains("\r\n\r\n") {
                break;
            }
        }
    }
    if !raw.contains("408") {
        raw.push_str(&read_all(&mut trickle).await);
    }
    assert!(raw.starts_with("HTTP/1.1 408"), "{raw}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    // A connection that never sends a whole request is closed quietly
    // (without a 408) within twice the head timeout: one that sends
    // nothing, half an HTTP/2 preface, or a preface and no request.
    for sent in [
        &b""[..],
        b"PRI * HTTP/2.0\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ] {
        let mut idle = TcpStream::connect(addr(&gw)).await.unwrap();
        idle.write_all(sent).await.unwrap();
        let mut got = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(4), idle.read_to_end(&mut got)).await;
        assert!(closed.is_ok(), "still open after 4 s: {sent:?}");
        assert!(!String::from_utf8_lossy(&got).contains("408"), "{got:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_caps_refuse_cleanly_and_recover() {
    let cfg = config_with(None, "[edge]\nmax_connections_per_ip = 3\n");
    let gw = Gateway::start(&cfg).await;
    let key = gw.key().await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(addr(&gw)).await.unwrap());
    }
    settles(&gw, "assisters_open_connections", 3.0).await;
    let mut extra = TcpStream::connect(addr(&gw)).await.unwrap();
    let raw = read_all(&mut extra).await;
    assert!(raw.starts_with("HTTP/1.1 429"), "{raw}");
    assert!(raw.contains("retry-after: 1"));
    assert_eq!(error_of(&raw)["error"]["code"], "rate_limit_exceeded");
    drop(held.pop());
    settles(&gw, "assisters_open_connections", 2.0).await;
    let r = gw.post(&key, "/v1/chat/completions", chat()).await;
    assert_eq!(r.status(), 200, "a place freed up");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_open_file_limit_is_raised_to_what_the_connection_cap_needs() {
    // Started with a soft limit of 200 open files (the hard one unchanged),
    // the gateway raises it, and serves more connections than 200 allowed.
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with(
        None,
        "[edge]\nmax_connections = 1000\nmax_connections_per_ip = 1000\n",
    );
    let gw = Gateway::start_wrapped(dir, &cfg, &[], &["prlimit", "--nofile=200:", "--"]).await;
    let pid = gw.child.as_ref().unwrap().id();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let (soft, hard) = (nums[0], nums[1]);
    assert!(soft >= 2256 || soft == hard, "{line}");
    if hard < 400 {
        return; // nothing more to show on a machine this tight
    }
    let key = gw.key().await;
    let mut held = Vec::new();
    for _ in 0..300 {
        held.push(TcpStream::connect(addr(&gw)).await.unwrap());
    }
    settles(&gw, "assisters_open_connections", 300.0).await;
    let r = gw.post(&key, "/v1/chat/completions", chat()).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn overload_sheds_new_requests_while_admin_keeps_answering() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config_with(Some(&up), "[edge]\nmax_in_flight = 2\n")).await;
    let key = gw.key().await;
    let slow = json!({"model": "mock-slow", "messages": []});
    let a = tokio::spawn({
        let (http, url, key, slow) = (
            gw.http.clone(),
            format!("{}/v1/chat/completions", gw.api),
            key.clone(),
            slow.clone(),
        );
        async move {
            http.post(url)
                .bearer_auth(key)
                .json(&slow)
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    let b = tokio::spawn({
        let (http, url, key) = (
            gw.http.clone(),
            format!("{}/v1/chat/completions", gw.api),
            key.clone(),
        );
        async move {
            http.post(url)
                .bearer_auth(key)
                .json(&slow)
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    settles(&gw, "assisters_in_flight_requests", 2.0).await;
    let t = Instant::now();
    let r = gw.post(&key, "/v1/chat/completions", chat()).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "shed at once, not queued"
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "server_overloaded");
    let (s, _) = gw.admin_call(Method::GET, "/admin/keys", None).await;
    assert_eq!(s, 200, "the admin API is not shed");
    assert_eq!(
        metric(&gw, "assisters_shed_total{reason=\"in_flight\"}").await,
        1.0
    );
    let h = gw
        .http
        .get(format!("{}/healthz", gw.api))
        .send()
        .await
        .unwrap();
    assert_eq!(h.status(), 200);
    assert_eq!(a.await.unwrap(), 200);
    assert_eq!(b.await.unwrap(), 200);
    settles(&gw, "assisters_in_flight_requests", 0.0).await;
    still_serves(&gw, &key).await;
}

/// A disk that stalls the log writer costs bounded memory, however large
/// the bodies: with the store locked, 512 KiB bodies fill 90 % of the log
/// queue's 8 MiB (`edge.max_log_queue_bytes`) within 15 records (the record
/// count is far from its bound), new requests are then shed, and once the
/// disk is back every record accepted is written, none lost.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_log_writer_holds_bounded_bytes_and_sheds_then_catches_up() {
    let gw = Gateway::start(&config_with(
        None,
        "[edge]\nmax_log_queue_bytes = 8388608\n",
    ))
    .await;
    let (_, key) = gw
        .create_key(json!({"name": "bulk", "tier": "startup"}))
        .await;
    let mut big = chat();
    // An unknown member goes through untouched and is not a prompt: the
    // body is large without being a million tokens to count.
    big["attachment"] = json!("x".repeat(1 << 19));
    let db = rusqlite::Connection::open(gw.path().join("gateway.db")).unwrap();
    // The writer's next commit waits behind this (its busy timeout is 5 s).
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let stalled = Instant::now();
    let budget = 8.0 * 1024.0 * 1024.0;
    let mut accepted: usize = 0;
    while metric(&gw, "assisters_log_queue_bytes").await < 0.9 * budget {
        let r = gw.post(&key, "/v1/chat/completions", big.clone()).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        accepted += 1;
        assert!(accepted < 20, "8 MiB never filled");
    }
    let r = gw.post(&key, "/v1/chat/completions", chat()).await;
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "server_overloaded");
    // Each record weighs 1 KiB plus its body, in whole KiB.
    let weight = 1 + serde_json::to_vec(&big).unwrap().len().div_ceil(1024);
    assert_eq!(
        metric(&gw, "assisters_log_queue_bytes").await,
        (accepted * weight * 1024) as f64
    );
    assert_eq!(
        metric(&gw, "assisters_log_queue_depth").await,
        accepted as f64,
        "held by bytes, far below the 8,192 records"
    );
    assert_eq!(
        metric(&gw, "assisters_shed_total{reason=\"log_queue\"}").await,
        1.0
    );
    assert!(
        stalled.elapsed() < Duration::from_secs(4),
        "the stall outlasted the writer's busy timeout: this test proves nothing past it"
    );
    db.execute_batch("ROLLBACK").unwrap();
    settles(&gw, "assisters_log_queue_depth", 0.0).await;
    assert_eq!(metric(&gw, "assisters_log_queue_bytes").await, 0.0);
    assert_eq!(
        metric(&gw, "assisters_log_records_dropped_total").await,
        0.0
    );
    assert_eq!(
        metric(&gw, "assisters_log_records_written_total").await,
        accepted as f64
    );
    still_serves(&gw, &key).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn per_key_concurrency_is_capped() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config_with(Some(&up), "")).await;
    let (_, key) = gw
        .create_key(
            json!({"name": "one", "tier": "startup", "overrides": {"max_concurrent_requests": 1}}),
        )
        .await;
    let other = gw.key().await;
    let held = tokio::spawn({
        let (http, url, key) = (
            gw.http.clone(),
            format!("{}/v1/chat/completions", gw.api),
            key.clone(),
        );
        async move {
            http.post(url)
                .bearer_auth(key)
                .json(&json!({"model": "mock-slow", "messages": []}))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    settles(&gw, "assisters_in_flight_requests", 1.0).await;
    let r = gw.post(&key, "/v1/chat/completions", chat()).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("concurrent requests"));
    assert_eq!(
        gw.post(&other, "/v1/chat/completions", chat())
            .await
            .status(),
        200,
        "other keys unaffected"
    );
    assert_eq!(held.await.unwrap(), 200);
    still_serves(&gw, &key).await;
    // A stream holds its place until it ends, not just until its headers.
    let stream = gw
        .post(
            &key,
            "/v1/chat/completions",
            json!({"model": "mock-gated", "stream": true, "messages": []}),
        )
        .await;
    assert_eq!(stream.status(), 200);
    let mut body = stream.bytes_stream();
    futures_util::StreamExt::next(&mut body)
        .await
        .unwrap()
        .unwrap();
    let r = gw.post(&key, "/v1/chat/completions", chat()).await;
    assert_eq!(r.status(), 429, "the open stream holds the key's one place");
    up.release();
    while futures_util::StreamExt::next(&mut body).await.is_some() {}
    still_serves(&gw, &key).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_headers_and_urls_are_refused() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let key = gw.key().await;
    // A model name that is not UTF-8: an OpenAI-shaped 400, not plain text.
    let r = gw
        .http
        .get(format!("{}/v1/models/%FF", gw.api))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["param"], "model", "{v}");
    // A key in the query string: refused, named, never echoed. The
    // client's own request id is (no record exists to name).
    let r = gw
        .http
        .get(format!("{}/v1/models?api_key={key}", gw.api))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["x-request-id"], "trace-42");
    let text = r.text().await.unwrap();
    assert!(!text.contains(&key), "the key is not echoed");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["code"], "api_key_in_query");
    assert_eq!(v["error"]["param"], "api_key");
    let r = gw
        .http
        .get(format!("{}/v1/models?x={key}", gw.api))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "an ask_ value under any name");

    // Underscored header names.
    let r = gw
        .http
        .get(format!("{}/v1/models", gw.api))
        .bearer_auth(&key)
        .header("x_forwarded_for", "1.2.3.4")
        .header("x-request-id", "not a plain id")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.headers().get("x-request-id").is_none(),
        "only a plain id is echoed"
    );
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_header"
    );

    // Two Authorization headers, even both valid: the same 401 as a bad key.
    let r = gw
        .http
        .get(format!("{}/v1/models", gw.api))
        .header("authorization", format!("Bearer {key}"))
        .header("authorization", format!("Bearer {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // An oversized head.
    let mut s = TcpStream::connect(addr(&gw)).await.unwrap();
    let big = format!(
        "GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let _ = s.write_all(big.as_bytes()).await;
    let raw = read_all(&mut s).await;
    assert!(
        raw.starts_with("HTTP/1.1 431"),
        "{}",
        &raw[..raw.len().min(80)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn content_length_and_chunked_together_cannot_smuggle_a_request() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let key = gw.key().await;
    let inner = "{\"model\":\"assisters-echo\",\"messages\":[]}";
    let smuggled = "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n";
    let chunked = format!("{:x}\r\n{inner}\r\n0\r\n\r\n{smuggled}", inner.len());
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}",
        inner.len() + 7
    );
    let mut s = TcpStream::connect(addr(&gw)).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let raw = read_all(&mut s).await;
    assert_eq!(
        raw.matches("HTTP/1.1 ").count(),
        1,
        "one request, one answer: {raw}"
    );
    assert!(raw.to_ascii_lowercase().contains("connection: close"));
}

async fn compress(enc: &str, data: &[u8]) -> Vec<u8> {
    use async_compression::tokio::bufread as e;
    let mut out = Vec::new();
    match enc {
        "gzip" => e::GzipEncoder::new(data).read_to_end(&mut out).await,
        "br" => e::BrotliEncoder::new(data).read_to_end(&mut out).await,
        "zstd" => e::ZstdEncoder::new(data).read_to_end(&mut out).await,
        _ => e::ZlibEncoder::new(data).read_to_end(&mut out).await,
    }
    .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn compressed_bodies_are_accepted_and_bombs_refused() {
    let gw = Gateway::start(&config_with(None, "[limits]\nmax_body_bytes = 1048576\n")).await;
    let (_, key) = gw
        .create_key(json!({"name": "many", "tier": "startup"}))
        .await;
    let send = |enc: &'static str, body: Vec<u8>| {
        gw.http
            .post(format!("{}/v1/chat/completions", gw.api))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .header("content-encoding", enc)
            .body(body)
            .send()
    };
    let plain = serde_json::to_vec(&chat()).unwrap();
    for enc in ["gzip", "br", "zstd", "deflate"] {
        let r = send(enc, compress(enc, &plain).await).await.unwrap();
        assert_eq!(r.status(), 200, "{enc}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["usage"]["prompt_tokens"], 8, "{enc} decoded");
    }
    // 64 MiB of spaces inside a JSON string, about 64 KiB compressed.
    let mut bomb = b"{\"model\":\"assisters-echo\",\"messages\":[],\"x\":\"".to_vec();
    bomb.extend(std::iter::repeat_n(b' ', 64 * 1024 * 1024));
    let packed = compress("gzip", &bomb).await;
    assert!(packed.len() < 1024 * 1024);
    let r = send("gzip", packed).await.unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "request_too_large"
    );
    let r = send("gzip", b"not gzip at all".to_vec()).await.unwrap();
    assert_eq!(r.status(), 400);
    // Several members are one body (only the first was read); bytes after
    // the last member that are not one are refused (they were dropped).
    for enc in ["gzip", "zstd"] {
        let (a, b) = plain.split_at(20);
        let mut two = compress(enc, a).await;
        two.extend(compress(enc, b).await);
        let r = send(enc, two).await.unwrap();
        assert_eq!(r.status(), 200, "{enc} in two members");
        let mut trailing = compress(enc, &plain).await;
        trailing.extend_from_slice(b"GARBAGE");
        let r = send(enc, trailing).await.unwrap();
        assert_eq!(r.status(), 400, "{enc} with trailing bytes");
    }
    let r = send("compress", plain.clone()).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Unsupported Content-Encoding"));
    still_serves(&gw, &key).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pathological_json_is_refused_cleanly() {
    let gw = Gateway::start(&config_with(None, "[limits]\nmax_body_bytes = 16777216\n")).await;
    let key = gw.key().await;
    let raw = |body: Vec<u8>| {
        gw.http
            .post(format!("{}/v1/chat/completions", gw.api))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let r = raw(deep.into_bytes()).await.unwrap();
    assert_eq!(r.status(), 400);
    let huge_array = format!(
        "{{\"model\":\"assisters-echo\",\"messages\":[],\"x\":[{}0]}}",
        "0,".repeat(1_000_000)
    );
    let r = raw(huge_array.into_bytes()).await.unwrap();
    assert!(r.status() == 200 || r.status() == 400, "{}", r.status());
    let surrogate =
        br#"{"model":"assisters-echo","messages":[{"role":"user","content":"\ud800"}]}"#;
    let r = raw(surrogate.to_vec()).await.unwrap();
    assert_eq!(r.status(), 400);
    let r = raw(vec![0xff, 0xfe, b'{']).await.unwrap();
    assert_eq!(r.status(), 400);
    let long = json!({"model": "assisters-echo", "messages": [{"role": "user", "content": "a".repeat(20_000_000)}]});
    let r = raw(serde_json::to_vec(&long).unwrap()).await.unwrap();
    assert_eq!(r.status(), 413);
    still_serves(&gw, &key).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_disconnecting_at_every_stage_leave_nothing_behind() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config_with(Some(&up), EDGE)).await;
    let key = gw.key().await;
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
    );
    let stages: Vec<(&str, String, u64)> = vec![
        ("mid-head", head[..30].to_owned(), 50),
        ("after head", head.clone(), 50),
        ("mid-body", format!("{head}{{\"model\":"), 50),
        (
            "waiting for the upstream",
            format!(
                "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
                 Content-Type: application/json\r\nContent-Length: 37\r\n\r\n{{\"model\":\"mock-slow\",\"messages\":[]}}"
            ),
            300,
        ),
        (
            "mid-stream",
            format!(
                "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
                 Content-Type: application/json\r\nContent-Length: 52\r\n\r\n{{\"model\":\"mock-gated\",\"stream\":true,\"messages\":[]}}"
            ),
            300,
        ),
    ];
    for (stage, bytes, wait_ms) in stages {
        let mut s = TcpStream::connect(addr(&gw)).await.unwrap();
        s.write_all(bytes.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        drop(s);
        let r = gw.post(&key, "/v1/chat/completions", chat()).await;
        assert_eq!(r.status(), 200, "still serving after a disconnect {stage}");
    }
    up.release();
    settles(&gw, "assisters_open_connections", 0.0).await;
    settles(&gw, "assisters_in_flight_requests", 0.0).await;
}

/// A stream is counted until it ends, not until its head is sent (streams
/// escaped `max_in_flight`).
#[tokio::test(flavor = "multi_thread")]
async fn streams_count_against_the_overload_cap_until_they_end() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config_with(Some(&up), "[edge]\nmax_in_flight = 2\n")).await;
    let key = gw.key().await;
    let gated = json!({"model": "mock-gated", "stream": true, "messages": []});
    let mut open = Vec::new();
    for _ in 0..2 {
        let r = gw.post(&key, "/v1/chat/completions", gated.clone()).await;
        assert_eq!(r.status(), 200);
        let mut body = r.bytes_stream();
        futures_util::StreamExt::next(&mut body)
            .await
            .unwrap()
            .unwrap();
        open.push(body);
    }
    let r = gw.post(&key, "/v1/chat/completions", chat()).await;
    assert_eq!(r.status(), 503, "two streams are being handled");
    up.release();
    up.release();
    for mut body in open {
        while let Some(c) = futures_util::StreamExt::next(&mut body).await {
            c.unwrap();
        }
    }
    settles(&gw, "assisters_in_flight_requests", 0.0).await;
    let r = gw.post(&key, "/v1/chat/completions", chat()).await;
    assert_eq!(r.status(), 200);
}

/// A client waiting for `100 Continue` with a body over the limit gets the
/// 413 without being asked to upload it.
#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_body_behind_expect_is_refused_unsent() {
    let gw = Gateway::start(&config_with(None, "[limits]\nmax_body_bytes = 1000\n")).await;
    let key = gw.key().await;
    let addr = gw.api.trim_start_matches("http://").to_owned();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {key}\r\n\
         content-type: application/json\r\ncontent-length: 99999999\r\nexpect: 100-continue\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("an answer without the body")
        .unwrap();
    let raw = String::from_utf8_lossy(&buf[..n]);
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
}

/// Refusals made before any key is known are readable by the page that
/// made them: an unknown path, a wrong method, a key in the URL.
#[tokio::test(flavor = "multi_thread")]
async fn refusals_before_the_key_carry_cors_headers() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let key = gw.key().await;
    let origin = "https://app.example";
    let calls = [
        (Method::GET, "/v1/nope".to_owned(), 404),
        (Method::DELETE, "/v1/models".to_owned(), 405),
        (Method::GET, format!("/v1/models?api_key={key}"), 400),
    ];
    for (method, path, status) in calls {
        let r = gw
            .http
            .request(method, format!("{}{path}", gw.api))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{path}");
        assert_eq!(r.headers()["access-control-allow-origin"], "*", "{path}");
    }
}

type H2Body = http_body_util::Full<bytes::Bytes>;

/// An HTTP/2 (prior knowledge) client connection to the gateway listener;
/// the connection future is the caller's to spawn (and watch).
async fn h2_connect(
    gw: &Gateway,
) -> (
    hyper::client::conn::http2::SendRequest<H2Body>,
    hyper::client::conn::http2::Connection<
        hyper_util::rt::TokioIo<TcpStream>,
        H2Body,
        hyper_util::rt::TokioExecutor,
    >,
) {
    let tcp = TcpStream::connect(addr(gw)).await.unwrap();
    hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap()
}

/// `POST /v1/chat/completions` with `body`, for an HTTP/2 client.
fn h2_chat(gw: &Gateway, key: &str, body: Value) -> hyper::Request<H2Body> {
    hyper::Request::post(format!("{}/v1/chat/completions", gw.api))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(H2Body::new(bytes::Bytes::from(body.to_string())))
        .unwrap()
}

/// An HTTP/2 connection is closed once it has carried no stream for
/// `edge.h2_idle_timeout`, but never while a stream is open, however long
/// the stream stays quiet (idle HTTP/2 clients held their connections, and
/// places under `max_connections`, for good).
#[tokio::test(flavor = "multi_thread")]
async fn idle_http2_connections_are_closed_but_not_under_an_open_stream() {
    use http_body_util::BodyExt;
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config_with(
        Some(&up),
        "[edge]\nh2_idle_timeout = \"1s\"\n",
    ))
    .await;
    let key = gw.key().await;
    let (mut send, conn) = h2_connect(&gw).await;
    let mut conn = tokio::spawn(conn);
    let post = |body: Value| h2_chat(&gw, &key, body);
    let r = send.send_request(post(chat())).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), hyper::Version::HTTP_2);
    r.into_body().collect().await.unwrap();

    // A stream that stays silent for longer than the idle timeout.
    let gated = json!({"model": "mock-gated", "stream": true, "messages": []});
    let r = send.send_request(post(gated)).await.unwrap();
    assert_eq!(r.status(), 200);
    let mut body = r.into_body();
    body.frame().await.unwrap().unwrap();
    let early = tokio::time::timeout(Duration::from_millis(2500), &mut conn).await;
    assert!(early.is_err(), "closed under an open stream: {early:?}");
    up.release();
    while let Some(frame) = body.frame().await {
        frame.unwrap();
    }

    // With the stream done, the connection goes within the timeout (and a
    // margin for a loaded machine), cleanly.
    let t = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(5), &mut conn).await;
    let ended = ended.expect("an idle HTTP/2 connection stayed open");
    ended.unwrap().expect("closed with GOAWAY, not cut");
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "{:?}",
        t.elapsed()
    );
    settles(&gw, "assisters_open_connections", 0.0).await;
    still_serves(&gw, &key).await;
}

/// An idle HTTP/2 client that never acks the GOAWAY's PING (or is gone) is
/// dropped all the same: h2 closes only on the ack, so such a connection
/// kept its place for good.
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_http2_client_that_never_answers_is_dropped() {
    let cfg = "[edge]\nh2_idle_timeout = \"1s\"\nheader_read_timeout = \"1s\"\n";
    let gw = Gateway::start(&config_with(None, cfg)).await;
    let mut s = TcpStream::connect(addr(&gw)).await.unwrap();
    // Preface, empty SETTINGS, and `GET /healthz` as one HEADERS frame
    // (HPACK: :method GET, :scheme http, :path and :authority literal).
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    let block = [&[0x82u8, 0x86, 0x44, 8][..], b"/healthz", &[0x41, 1], b"x"].concat();
    out.extend_from_slice(&[0, 0, block.len() as u8, 1, 0x5, 0, 0, 0, 1]);
    out.extend_from_slice(&block);
    s.write_all(&out).await.unwrap();
    // Then nothing: no SETTINGS ack, no PING ack.
    let t = Instant::now();
    let mut got = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(8), s.read_to_end(&mut got)).await;
    assert!(closed.is_ok(), "still open after 8 s");
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    let mut types = Vec::new();
    let mut at = 0;
    while at + 9 <= got.len() {
        let len =
            usize::from(got[at]) << 16 | usize::from(got[at + 1]) << 8 | usize::from(got[at + 2]);
        types.push(got[at + 3]);
        at += 9 + len;
    }
    assert!(types.contains(&1), "no answer (HEADERS): {types:?}");
    assert!(types.contains(&7), "no GOAWAY: {types:?}");
    settles(&gw, "assisters_open_connections", 0.0).await;
}

/// SIGTERM drains: requests under way finish, over HTTP/1 and HTTP/2 alike
/// (a slow JSON answer and a stream still waiting for its rest), before the
/// process exits.
#[tokio::test(flavor = "multi_thread")]
async fn shutdown_lets_requests_under_way_finish_on_both_protocols() {
    use http_body_util::BodyExt;
    let up = MockUpstream::start().await;
    let mut gw = Gateway::start(&config_with(Some(&up), "")).await;
    let key = gw.key().await;
    let (http, url, k) = (
        gw.http.clone(),
        format!("{}/v1/chat/completions", gw.api),
        key.clone(),
    );
    let slow = tokio::spawn(async move {
        let r = http
            .post(url)
            .bearer_auth(k)
            .json(&json!({"model": "mock-slow", "messages": []}))
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    });
    let (mut send, conn) = h2_connect(&gw).await;
    tokio::spawn(conn);
    let gated = json!({"model": "mock-gated", "stream": true, "messages": []});
    let req = h2_chat(&gw, &key, gated);
    let mut body = send.send_request(req).await.unwrap().into_body();
    body.frame().await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let exited = tokio::task::spawn_blocking(move || gw.terminate());
    tokio::time::sleep(Duration::from_millis(500)).await;
    up.release();
    let mut rest = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(d) = frame.unwrap().into_data() {
            rest.extend_from_slice(&d);
        }
    }
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        rest.ends_with("data: [DONE]\n\n"),
        "the stream was cut: {rest}"
    );
    let (status, text) = slow.await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert_eq!(exited.await.unwrap().code(), Some(0));
}
