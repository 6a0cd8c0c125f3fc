//! Failover across a model's upstreams and the circuit breaker, through the
//! real binary and two real mock upstreams that can go down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::upstream::Failure;
use common::{sse_data, Gateway, MockUpstream};
use reqwest::Method;
use serde_json::{json, Value};

fn config(primary: &MockUpstream, backup: &MockUpstream, health: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nshutdown_grace = \"5s\"\n\
         [health]\n{health}\n\
         [[upstreams]]\nname = \"primary\"\nbase_url = \"{}\"\nmodels = [\"mock\", \"mock-drop\", \"mock-truncated\"]\n\
         [[upstreams]]\nname = \"backup\"\nbase_url = \"{}\"\nmodels = [\"mock\", \"mock-drop\", \"mock-truncated\"]\n",
        primary.base_url(),
        backup.base_url()
    )
}

/// Probes that never run during the test: only requests move the breaker.
const PASSIVE: &str = "interval = \"1h\"\nfailure_threshold = 2\nopen_for = \"1h\"";

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

fn calls(up: &MockUpstream) -> usize {
    up.requests()
        .iter()
        .filter(|r| r.path == "/v1/chat/completions")
        .count()
}

async fn served_by(gw: &Gateway, key: &str, model: &str, stream: bool) -> (u16, String, String) {
    let resp = gw
        .post(key, "/v1/chat/completions", chat(model, stream))
        .await;
    let status = resp.status().as_u16();
    let upstream = resp
        .headers()
        .get("x-assisters-upstream")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, upstream, resp.text().await.unwrap())
}

/// A stream that ends before its first event has reached the client with
/// nothing: the next upstream serves it (it was committed to, and the client
/// got an empty 200).
#[tokio::test(flavor = "multi_thread")]
async fn a_stream_without_an_event_fails_over() {
    let primary = MockUpstream::start().await;
    let backup = MockUpstream::start().await;
    primary.set_hollow_streams(true);
    let gw = Gateway::start(&config(&primary, &backup, PASSIVE)).await;
    let key = gw.key().await;
    let (status, by, body) = served_by(&gw, &key, "mock", true).await;
    assert_eq!((status, by.as_str()), (200, "backup"), "{body}");
    let events = sse_data(&body);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{body}");
    assert_eq!(calls(&primary), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_down_primary_fails_over_before_the_first_byte() {
    let mut primary = MockUpstream::start().await;
    let backup = MockUpstream::start().await;
    let gw = Gateway::start(&config(&primary, &backup, PASSIVE)).await;
    let key = gw.key().await;

    let (status, by, _) = served_by(&gw, &key, "mock", false).await;
    assert_eq!((status, by.as_str()), (200, "primary"));

    primary.stop();
    let (status, by, body) = served_by(&gw, &key, "mock", false).await;
    assert_eq!((status, by.as_str()), (200, "backup"), "{body}");
    let (status, by, body) = served_by(&gw, &key, "mock", true).await;
    assert_eq!((status, by.as_str()), (200, "backup"), "{body}");
    let events = sse_data(&body);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{body}");
    assert_eq!(calls(&backup), 2);

    // The request log names the upstream that actually served.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, logs) = gw
        .admin_call(Method::GET, "/admin/logs?limit=3", None)
        .await;
    let ups: Vec<&str> = logs["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["upstream"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(ups, ["backup", "backup", "primary"], "{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_that_breaks_after_its_first_event_is_never_retried() {
    let primary = MockUpstream::start().await;
    let backup = MockUpstream::start().await;
    let gw = Gateway::start(&config(&primary, &backup, PASSIVE)).await;
    let key = gw.key().await;

    let (status, by, body) = served_by(&gw, &key, "mock-drop", true).await;
    assert_eq!((status, by.as_str()), (200, "primary"));
    let events = sse_data(&body);
    assert!(events[0].contains("partial"), "{body}");
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert!(last["error"]["message"].is_string(), "{body}");
    assert_eq!(calls(&backup), 0, "no switch once bytes reached the client");
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_fail_over_and_open_the_circuit() {
    let primary = MockUpstream::start().await;
    let backup = MockUpstream::start().await;
    let gw = Gateway::start(&config(&primary, &backup, PASSIVE)).await;
    let key = gw.key().await;

    primary.set_failing(true);
    for _ in 0..2 {
        let (status, by, body) = served_by(&gw, &key, "mock", false).await;
        assert_eq!((status, by.as_str()), (200, "backup"), "{body}");
        assert!(!body.contains("hunter2"), "{body}");
    }
    assert_eq!(calls(&primary), 2);
    // Two failures in a row opened the primary's circuit: it is skipped.
    for _ in 0..3 {
        let (status, by, _) = served_by(&gw, &key, "mock", true).await;
        assert_eq!((status, by.as_str()), (200, "backup"));
    }
    assert_eq!(calls(&primary), 2, "an open circuit keeps requests away");
    let metrics = gw.admin_get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("assisters_upstream_up{upstream=\"primary\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("assisters_upstream_up{upstream=\"backup\"} 1"),
        "{metrics}"
    );
}

/// A revoked upstream credential (401/403) and a 200 nobody can read are
/// failed attempts like a 500: the backup serves, and the breaker learns.
#[tokio::test(flavor = "multi_thread")]
async fn refused_credentials_and_unreadable_answers_fail_over() {
    for failure in [Failure::Unauthorized, Failure::Garbled] {
        let primary = MockUpstream::start().await;
        let backup = MockUpstream::start().await;
        // Output moderation off: the answer's check must not depend on it.
        let cfg = config(&primary, &backup, PASSIVE) + "[safety.moderation]\noutput = false\n";
        let gw = Gateway::start(&cfg).await;
        let key = gw.key().await;
        primary.fail_with(failure);
        for stream in [false, true, false] {
            let (status, by, body) = served_by(&gw, &key, "mock", stream).await;
            assert_eq!((status, by.as_str()), (200, "backup"), "{body}");
            assert!(
                !body.contains("not json") && !body.contains("sk-up"),
                "{body}"
            );
        }
        assert_eq!(calls(&primary), 2, "two failures opened the circuit");
        backup.fail_with(failure);
        let (status, _, body) = served_by(&gw, &key, "mock", false).await;
        assert_eq!(status, 502, "{body}");
        assert!(
            body.contains("backup"),
            "the refusal names who failed: {body}"
        );
    }
}

/// Upstreams added through the admin API one after the other keep that
/// order for failover, whatever their names (they were sorted by name
/// within the second they were created in).
#[tokio::test(flavor = "multi_thread")]
async fn upstreams_added_back_to_back_keep_their_order() {
    let first = MockUpstream::start().await;
    let second = MockUpstream::start().await;
    let gw = Gateway::start("listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n").await;
    for (name, up) in [("zz-first", &first), ("aa-second", &second)] {
        let (s, v) = gw
            .admin_call(
                Method::POST,
                "/admin/upstreams",
                Some(json!({"name": name, "base_url": up.base_url(), "models": ["mock"]})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }
    let key = gw.key().await;
    let (status, by, _) = served_by(&gw, &key, "mock", false).await;
    assert_eq!((status, by.as_str()), (200, "zz-first"));
    let (_, list) = gw.admin_call(Method::GET, "/admin/upstreams", None).await;
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["zz-first", "aa-second"], "{list}");
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_open_and_close_the_circuit() {
    let primary = MockUpstream::start().await;
    let backup = MockUpstream::start().await;
    let health = "interval = \"100ms\"\ntimeout = \"1s\"\nfailure_threshold = 2\nopen_for = \"1h\"";
    let gw = Gateway::start(&config(&primary, &backup, health)).await;
    let key = gw.key().await;

    primary.set_failing(true);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (status, by, _) = served_by(&gw, &key, "mock", false).await;
    assert_eq!((status, by.as_str()), (200, "backup"));
    assert_eq!(calls(&primary), 0, "the probes opened the circuit first");

    primary.set_failing(false);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, by, _) = served_by(&gw, &key, "mock", false).await;
        assert_eq!(status, 200);
        if by == "primary" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a good probe should close the circuit"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn declared_routes_set_the_order_and_everything_down_is_a_502() {
    let mut primary = MockUpstream::start().await;
    let mut backup = MockUpstream::start().await;
    let cfg = config(&primary, &backup, PASSIVE)
        + "[[routes]]\nmodel = \"mock\"\nupstreams = [\"backup\", \"primary\"]\n";
    let gw = Gateway::start(&cfg).await;
    let key = gw.key().await;
    let (_, by, _) = served_by(&gw, &key, "mock", false).await;
    assert_eq!(by, "backup");

    // Routes are a runtime setting: a change reroutes at once.
    let (status, v) = gw
        .admin_call(
            Method::PATCH,
            "/admin/settings",
            Some(json!({"routes": [{"model": "mock", "upstreams": ["primary", "backup"]}]})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let (_, by, _) = served_by(&gw, &key, "mock", false).await;
    assert_eq!(by, "primary");
    let (status, _) = gw
        .admin_call(
            Method::PATCH,
            "/admin/settings",
            Some(json!({"routes": [{"model": "mock", "upstreams": ["backup", "primary"]}]})),
        )
        .await;
    assert_eq!(status, 200);

    primary.stop();
    backup.stop();
    let (status, _, body) = served_by(&gw, &key, "mock", true).await;
    assert_eq!(status, 502, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["error"]["message"].is_string(), "{body}");
    assert!(
        !body.contains("127.0.0.1"),
        "no upstream URL in errors: {body}"
    );

    backup.restart().await;
    let (status, by, _) = served_by(&gw, &key, "mock", false).await;
    assert_eq!((status, by.as_str()), (200, "backup"));
}

/// The pool's connect timeout set through the settings applies from the
/// next start (the client was built from the config file's value alone).
#[tokio::test(flavor = "multi_thread")]
async fn a_stored_connect_timeout_applies_after_a_restart() {
    // A listener whose queue is full: connecting to it hangs.
    let hole = tokio::net::TcpSocket::new_v4().unwrap();
    hole.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let hole = hole.listen(0).unwrap();
    let addr = hole.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(c)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(c);
        }
    }
    let cfg = format!(
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
         [upstream_defaults]\nconnect_timeout = \"20s\"\n\
         [health]\n{PASSIVE}\n\
         [[upstreams]]\nname = \"hole\"\nbase_url = \"http://{addr}/v1\"\nmodels = [\"m\"]\n"
    );
    let mut gw = Gateway::start(&cfg).await;
    let (s, v) = gw
        .patch_settings(json!({"upstream_defaults": {"connect_timeout": "1s"}}))
        .await;
    assert_eq!(s, 200, "{v}");
    gw.terminate();
    let gw = Gateway::start_in(gw.take_dir(), &cfg, &[]).await;
    let key = gw.key().await;
    let started = Instant::now();
    let (status, _, body) = served_by(&gw, &key, "m", false).await;
    assert!(status == 502 || status == 504, "{status} {body}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "gave up after {:?}",
        started.elapsed()
    );
    drop(fillers);
}

/// A stream that ends cleanly before its answer finished (no finish reason,
/// no `[DONE]`) is a broken stream: the client gets the error event, and
/// the record says so (it was logged as a success).
#[tokio::test(flavor = "multi_thread")]
async fn a_stream_that_ends_mid_answer_is_an_error() {
    let primary = MockUpstream::start().await;
    let backup = MockUpstream::start().await;
    let gw = Gateway::start(&config(&primary, &backup, PASSIVE)).await;
    let key = gw.key().await;
    let cfg_models = json!({"model": "mock-truncated", "stream": true, "messages": []});
    let resp = gw.post(&key, "/v1/chat/completions", cfg_models).await;
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body = resp.text().await.unwrap();
    let events = sse_data(&body);
    assert!(events[0].contains("partial"), "{body}");
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_error", "{body}");
    for _ in 0..100 {
        let (_, v) = gw
            .admin_call(Method::GET, &format!("/admin/logs/{id}"), None)
            .await;
        if v["id"] == id.as_str() {
            assert_eq!(v["error_code"], "upstream_error", "{v}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no record");
}

/// A health probe refused the credential fails like a request does (a
/// probe that passed it closed the circuit requests had opened).
#[tokio::test(flavor = "multi_thread")]
async fn probes_fail_on_a_refused_credential() {
    let primary = MockUpstream::start().await;
    let backup = MockUpstream::start().await;
    let probes = "interval = \"100ms\"\nfailure_threshold = 2\nopen_for = \"1h\"";
    let gw = Gateway::start(&config(&primary, &backup, probes)).await;
    primary.fail_with(Failure::Unauthorized);
    let metrics = || async { gw.admin_get("/metrics").await.text().await.unwrap() };
    let down = "assisters_upstream_up{upstream=\"primary\"} 0";
    let started = Instant::now();
    while !metrics().await.contains(down) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the probes never failed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(metrics().await.contains(down), "and stays down");
}
