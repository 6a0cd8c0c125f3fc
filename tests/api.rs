//! The OpenAI-compatible API through the real binary and a real upstream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{config_with, sse_data, Gateway, MockUpstream};
use futures_util::StreamExt;
use serde_json::{json, Value};

async fn setup() -> (MockUpstream, Gateway, String) {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config_with(Some(&up), "")).await;
    let key = gw.key().await;
    (up, gw, key)
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_passes_unknown_fields_and_upstream_credentials() {
    let (up, gw, key) = setup().await;
    let body = json!({"model": "mock", "messages": [{"role": "user", "content": "hi"}],
                      "vendor_extension": {"keep": [1, 2, 3]}, "temperature": 0.2});
    let raw = serde_json::to_vec(&body).unwrap();
    let resp = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.api))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(raw.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-assisters-upstream"], "mock");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from mock");
    let rec = up.last();
    assert_eq!(rec.path, "/v1/chat/completions");
    assert_eq!(
        rec.body.as_ref(),
        raw.as_slice(),
        "body must reach the upstream untouched"
    );
    assert_eq!(
        rec.authorization.as_deref(),
        Some(format!("Bearer {}", common::upstream::UPSTREAM_SECRET).as_str()),
        "the upstream gets its own key, never the client's"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_is_relayed_chunk_by_chunk() {
    let (up, gw, key) = setup().await;
    let resp = gw
        .post(&key, "/v1/chat/completions", json!({"model": "mock-gated", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut body = resp.bytes_stream();
    // The upstream holds the rest of the stream until released: the first
    // chunk can only arrive here if the gateway relays without buffering.
    let first = body.next().await.unwrap().unwrap();
    let first = String::from_utf8_lossy(&first).into_owned();
    assert!(first.contains("\"first\""), "{first}");
    assert!(!first.contains("second"));
    up.release();
    let mut rest = String::new();
    while let Some(c) = body.next().await {
        rest.push_str(&String::from_utf8_lossy(&c.unwrap()));
    }
    assert!(rest.contains("\"second\""));
    assert!(rest.ends_with("data: [DONE]\n\n"));
    // The gateway asked the upstream for usage (to charge it) but the client
    // did not, so the usage chunk is not passed on.
    let sent: Value = serde_json::from_slice(&up.last().body).unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    assert!(!rest.contains("\"usage\""), "{rest}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_request_reaches_the_upstream_as_written_but_for_stream_options() {
    let (up, gw, key) = setup().await;
    // Structured outputs follow the schema's property order, and integers
    // may exceed 64 bits: the gateway's own member is the only change.
    let raw = r#"{"model":"mock","stream":true,"messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":{"type":"object","properties":{"reasoning":{"type":"string"},"answer":{"type":"string"}}}}},"seed":123456789012345678901234}"#;
    let resp = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.api))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    up.release();
    resp.text().await.unwrap();
    let sent = String::from_utf8(up.last().body.to_vec()).unwrap();
    let want = raw.replacen('{', r#"{"stream_options":{"include_usage":true},"#, 1);
    assert_eq!(sent, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_with_usage_and_completions_and_embeddings() {
    let (up, gw, key) = setup().await;
    let resp = gw
        .post(&key, "/v1/chat/completions", json!({"model": "mock", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    let text = resp.text().await.unwrap();
    let data = sse_data(&text);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["usage"]["total_tokens"], 10);

    let resp = gw
        .post(
            &key,
            "/v1/completions",
            json!({"model": "mock", "prompt": "x"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["choices"][0]["text"],
        "completed"
    );
    assert_eq!(up.last().path, "/v1/completions");

    let resp = gw
        .post(
            &key,
            "/v1/embeddings",
            json!({"model": "mock", "input": "x"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["data"][0]["embedding"][2],
        0.3
    );
    assert_eq!(up.last().path, "/v1/embeddings");
}

#[tokio::test(flavor = "multi_thread")]
async fn models_lists_only_what_the_key_may_use() {
    let (_up, gw, key) = setup().await;
    let list: Value = gw
        .http
        .get(format!("{}/v1/models", gw.api))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"assisters-echo") && ids.contains(&"mock") && ids.contains(&"mock-slow"),
        "{ids:?}"
    );

    let (_, restricted) = gw
        .create_key(json!({"name": "r", "models": ["mock"]}))
        .await;
    let list: Value = gw
        .http
        .get(format!("{}/v1/models", gw.api))
        .bearer_auth(&restricted)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["id"], "mock");
    let one = gw
        .http
        .get(format!("{}/v1/models/mock", gw.api))
        .bearer_auth(&restricted)
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let hidden = gw
        .http
        .get(format!("{}/v1/models/mock-slow", gw.api))
        .bearer_auth(&restricted)
        .send()
        .await
        .unwrap();
    assert_eq!(hidden.status(), 404);
    let denied = gw
        .post(
            &restricted,
            "/v1/chat/completions",
            json!({"model": "mock-slow", "messages": []}),
        )
        .await;
    assert_eq!(denied.status(), 404);
    assert_eq!(
        denied.json::<Value>().await.unwrap()["error"]["code"],
        "model_not_found"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn model_lookups_are_logged_and_carry_a_request_id() {
    let (_up, gw, key) = setup().await;
    for (path, status) in [("/v1/models", 200), ("/v1/models/nope", 404)] {
        let resp = gw
            .http
            .get(format!("{}{path}", gw.api))
            .bearer_auth(&key)
            .header("x-request-id", format!("mine{status}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status);
        assert_eq!(
            resp.headers()["x-request-id"],
            format!("mine{status}").as_str()
        );
    }
    // The records are written off the request's path: wait for them.
    for _ in 0..100 {
        let (_, v) = gw
            .admin_call(reqwest::Method::GET, "/admin/logs?request_id=mine404", None)
            .await;
        if let Some(r) = v["data"].as_array().and_then(|d| d.first()) {
            assert_eq!(r["status"], 404);
            assert_eq!(r["error_code"], "model_not_found");
            let (_, ok) = gw
                .admin_call(reqwest::Method::GET, "/admin/logs?request_id=mine200", None)
                .await;
            assert_eq!(ok["data"][0]["status"], 200, "{ok}");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no record for the model lookup");
}

#[tokio::test(flavor = "multi_thread")]
async fn echo_model_answers_n_choices_every_prompt_and_token_ids() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let key = gw.key().await;
    let msgs = json!([{"role": "user", "content": "one two"}]);
    let v: Value = gw
        .post(
            &key,
            "/v1/chat/completions",
            json!({"model": "assisters-echo", "messages": msgs, "n": 3}),
        )
        .await
        .json()
        .await
        .unwrap();
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 3);
    assert_eq!(choices[2]["index"], 2);
    assert_eq!(v["usage"]["completion_tokens"], 3 * 2);
    let text = gw
        .post(
            &key,
            "/v1/chat/completions",
            json!({"model": "assisters-echo", "messages": msgs, "n": 2, "stream": true}),
        )
        .await
        .text()
        .await
        .unwrap();
    let second: String = sse_data(&text)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter(|c| c["choices"][0]["index"] == 1)
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(second, "one two");

    let completions = |prompt: Value| {
        let gw = &gw;
        let key = &key;
        async move {
            let c: Value = gw
                .post(
                    key,
                    "/v1/completions",
                    json!({"model": "assisters-echo", "prompt": prompt, "n": 2}),
                )
                .await
                .json()
                .await
                .unwrap();
            let texts: Vec<String> = c["choices"]
                .as_array()
                .unwrap_or_else(|| panic!("{c}"))
                .iter()
                .map(|c| c["text"].as_str().unwrap().to_owned())
                .collect();
            (texts, c["usage"]["prompt_tokens"].clone())
        }
    };
    let (texts, prompt_tokens) = completions(json!(["a b", "c"])).await;
    assert_eq!(texts, ["a b", "a b", "c", "c"]);
    assert_eq!(prompt_tokens, 2 + 1);
    // "hello" and " world" are cl100k tokens 15339 and 1917.
    let (texts, prompt_tokens) = completions(json!([[15339, 1917], [15339]])).await;
    assert_eq!(texts, ["hello world", "hello world", "hello", "hello"]);
    assert_eq!(prompt_tokens, 3);

    let e: Value = gw
        .post(
            &key,
            "/v1/embeddings",
            json!({"model": "assisters-echo", "input": [15339, 1917, 0]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        e["data"].as_array().unwrap().len(),
        1,
        "one input of token ids"
    );
    assert_eq!(e["usage"]["prompt_tokens"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn echo_model_answers_and_streams_with_consistent_usage() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let key = gw.key().await;
    let msgs = json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "The quick brown fox jumps"}]);
    let v: Value = gw
        .post(
            &key,
            "/v1/chat/completions",
            json!({"model": "assisters-echo", "messages": msgs}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "The quick brown fox jumps"
    );
    let u = &v["usage"];
    // 3 priming + 2 messages * (3 framing + role) + "Be brief." (3) + the sentence (5)
    assert_eq!(u["prompt_tokens"], 3 + 2 * 4 + 3 + 5);
    assert_eq!(u["completion_tokens"], 5);
    assert_eq!(u["total_tokens"], u["prompt_tokens"].as_u64().unwrap() + 5);

    let text = gw
        .post(&key, "/v1/chat/completions", json!({"model": "assisters-echo", "messages": msgs, "stream": true, "stream_options": {"include_usage": true}}))
        .await
        .text()
        .await
        .unwrap();
    let data = sse_data(&text);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "The quick brown fox jumps");
    assert_eq!(chunks.last().unwrap()["usage"], *u);

    let e: Value = gw
        .post(
            &key,
            "/v1/embeddings",
            json!({"model": "assisters-echo", "input": ["a", "b"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(e["data"].as_array().unwrap().len(), 2);
    let c: Value = gw
        .post(
            &key,
            "/v1/completions",
            json!({"model": "assisters-echo", "prompt": "say this"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c["choices"][0]["text"], "say this");
}

#[tokio::test(flavor = "multi_thread")]
async fn echo_model_can_be_switched_off_by_environment() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start_in(
        dir,
        &config_with(None, ""),
        &[("ASSISTERS_ECHO_MODEL", "false")],
    )
    .await;
    let key = gw.key().await;
    let r = gw
        .post(
            &key,
            "/v1/chat/completions",
            json!({"model": "assisters-echo", "messages": []}),
        )
        .await;
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_failures_map_to_502_and_504_without_details() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config_with(
        Some(&up),
        "[upstream_defaults]\nfirst_byte_timeout = \"1s\"\n",
    ))
    .await;
    let key = gw.key().await;
    let msgs = json!([{"role": "user", "content": "hi"}]);

    let r = gw
        .post(
            &key,
            "/v1/chat/completions",
            json!({"model": "mock-500", "messages": msgs}),
        )
        .await;
    assert_eq!(r.status(), 502);
    let text = r.text().await.unwrap();
    assert!(
        !text.contains("hunter2") && !text.contains("Traceback"),
        "{text}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["error"]["code"],
        "upstream_error"
    );

    let r = gw
        .post(
            &key,
            "/v1/chat/completions",
            json!({"model": "mock-400", "messages": msgs}),
        )
        .await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["error"]["message"], "temperature is out of range (key [redacted])",
        "the gateway's own upstream key is never passed on"
    );
    assert_eq!(v["error"]["param"], "temperature");
    assert!(
        v["error"].get("internal").is_none(),
        "only OpenAI's fields pass: {v}"
    );

    // The upstream refusing the gateway's own credential is not the
    // client's key being wrong: a 502, and nothing of the upstream's key.
    let r = gw
        .post(
            &key,
            "/v1/chat/completions",
            json!({"model": "mock-401", "messages": msgs}),
        )
        .await;
    assert_eq!(r.status(), 502);
    let text = r.text().await.unwrap();
    assert!(
        !text.contains("sk-proj") && !text.contains("invalid_api_key"),
        "{text}"
    );

    // An upstream at its rate limit: a 429 the client backs off from.
    let r = gw
        .post(
            &key,
            "/v1/chat/completions",
            json!({"model": "mock-429", "messages": msgs}),
        )
        .await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "20");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_rate_limited", "{v}");

    let r = gw
        .post(
            &key,
            "/v1/chat/completions",
            json!({"model": "mock-slow", "messages": msgs}),
        )
        .await;
    assert_eq!(r.status(), 504);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "upstream_timeout"
    );

    // A stream that breaks after its first byte ends with an error event.
    let text = gw
        .post(
            &key,
            "/v1/chat/completions",
            json!({"model": "mock-drop", "stream": true, "messages": msgs}),
        )
        .await
        .text()
        .await
        .unwrap();
    let data = sse_data(&text);
    assert!(data[0].contains("partial"));
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_error", "{text}");

    // The gateway keeps serving.
    let r = gw
        .post(
            &key,
            "/v1/chat/completions",
            json!({"model": "mock", "messages": msgs}),
        )
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_upstream_is_502() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = config_with(None, &format!("[[upstreams]]\nname = \"gone\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\nmodels = [\"ghost\"]\n"));
    let gw = Gateway::start(&cfg).await;
    let key = gw.key().await;
    let r = gw
        .post(
            &key,
            "/v1/chat/completions",
            json!({"model": "ghost", "messages": []}),
        )
        .await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("could not be reached"));
}

/// Before its first event a stream may keep itself open with comments (a
/// model thinking), but not send without bound.
#[tokio::test(flavor = "multi_thread")]
async fn a_stream_start_kept_open_by_comments_and_bounded() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config_with(
        Some(&up),
        "[upstream_defaults]\nstream_idle_timeout = \"1s\"\n",
    ))
    .await;
    let key = gw.key().await;
    let chat = |model: &str| json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let r = gw
        .post(&key, "/v1/chat/completions", chat("mock-pings"))
        .await;
    assert_eq!(r.status(), 200, "1.5 s of pings, none more than 1 s apart");
    let body = r.text().await.unwrap();
    assert!(body.contains("thought"), "{body}");
    let r = gw
        .post(&key, "/v1/chat/completions", chat("mock-chatter"))
        .await;
    assert_eq!(r.status(), 502);
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_text_cannot_forge_sse_events() {
    let (_up, gw, key) = setup().await;
    let text = gw
        .post(
            &key,
            "/v1/chat/completions",
            json!({"model": "mock-forge", "stream": true, "messages": []}),
        )
        .await
        .text()
        .await
        .unwrap();
    let data = sse_data(&text);
    assert_eq!(data.len(), 2, "the non-JSON event is dropped: {text}");
    let chunk: Value = serde_json::from_str(&data[0]).unwrap();
    assert_eq!(
        chunk["choices"][0]["delta"]["content"],
        "a\n\ndata: [DONE]\n\ndata: {\"evil\":true}"
    );
    assert_eq!(data[1], "[DONE]");
}

/// A few token ids can decode to megabytes (a token may be 128 bytes of
/// spaces): the demo model echoes a bounded text, and an id past the
/// vocabulary is skipped, not a panic.
#[tokio::test(flavor = "multi_thread")]
async fn echo_token_ids_are_bounded() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let (_, key) = gw
        .create_key(json!({"name": "big", "tier": "startup"}))
        .await;
    let r = gw
        .post(&key, "/v1/completions", json!({"model": "assisters-echo", "max_tokens": 1, "n": 4, "prompt": vec![58040u32; 4000]}))
        .await;
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    assert!(body.len() < 4 * (64 << 10) + 4096, "{} bytes", body.len());
    let r = gw
        .post(
            &key,
            "/v1/completions",
            json!({"model": "assisters-echo", "prompt": [u64::MAX]}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}
