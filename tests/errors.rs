//! Authentication and bad input: every refusal in OpenAI's error shape with
//! the right status, and the server keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{config_with, Gateway};
use reqwest::Method;
use serde_json::{json, Value};

fn assert_openai_error(v: &Value) {
    let e = v.get("error").expect("an error object");
    for f in ["message", "type", "param", "code"] {
        assert!(e.get(f).is_some(), "field {f} missing in {v}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_keys_get_identical_401s() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let (id, revoked) = gw.create_key(json!({"name": "to-revoke"})).await;
    let (status, _) = gw
        .admin_call(Method::POST, &format!("/admin/keys/{id}/revoke"), None)
        .await;
    assert_eq!(status, 200);
    let (_, expired) = gw
        .create_key(json!({"name": "old", "expires_at": "2001-01-01T00:00:00Z"}))
        .await;
    let unknown = format!("ask_{}", "A".repeat(43));
    let url = format!("{}/v1/chat/completions", gw.api);
    let body = json!({"model": "assisters-echo", "messages": []});
    let mut bodies = Vec::new();
    for auth in [
        None,
        Some("Bearer nope".to_owned()),
        Some("Basic abc".to_owned()),
        Some(format!("Bearer {unknown}")),
        Some(format!("Bearer {revoked}")),
        Some(format!("Bearer {expired}")),
    ] {
        let mut req = gw.http.post(&url).json(&body);
        if let Some(a) = &auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        let text = r.text().await.unwrap();
        assert!(
            !text.contains(&unknown) && !text.contains(&revoked),
            "the key is never echoed"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_openai_error(&v);
        assert_eq!(v["error"]["code"], "invalid_api_key");
        bodies.push(text);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "all bad keys answer byte-identically"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn revocation_applies_to_the_very_next_request() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let (id, key) = gw.create_key(json!({"name": "k"})).await;
    let body = json!({"model": "assisters-echo", "messages": [{"role": "user", "content": "x"}]});
    assert_eq!(
        gw.post(&key, "/v1/chat/completions", body.clone())
            .await
            .status(),
        200
    );
    let (s, v) = gw
        .admin_call(Method::POST, &format!("/admin/keys/{id}/revoke"), None)
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("revoked")));
    assert_eq!(
        gw.post(&key, "/v1/chat/completions", body).await.status(),
        401
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn expiry_applies_without_restart() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let (id, key) = gw.create_key(json!({"name": "k"})).await;
    let body = json!({"model": "assisters-echo", "messages": []});
    assert_eq!(
        gw.post(&key, "/v1/chat/completions", body.clone())
            .await
            .status(),
        200
    );
    let (s, _) = gw
        .admin_call(
            Method::PATCH,
            &format!("/admin/keys/{id}"),
            Some(json!({"expires_at": "2020-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        gw.post(&key, "/v1/chat/completions", body.clone())
            .await
            .status(),
        401
    );
    let (s, v) = gw
        .admin_call(
            Method::PATCH,
            &format!("/admin/keys/{id}"),
            Some(json!({"expires_at": null})),
        )
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("active")));
    assert_eq!(
        gw.post(&key, "/v1/chat/completions", body).await.status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_are_400_with_clear_messages() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let key = gw.key().await;
    let url = format!("{}/v1/chat/completions", gw.api);
    let send = |body: &'static str, ct: &'static str| {
        gw.http
            .post(&url)
            .bearer_auth(&key)
            .header("content-type", ct)
            .body(body)
            .send()
    };

    let r = send(
        "{\"model\": \"assisters-echo\",\n \"messages\": [}",
        "application/json",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_openai_error(&v);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("line 2"), "says where it broke: {msg}");

    let r = send("{\"model\":\"assisters-echo\"}", "text/plain")
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_content_type"
    );

    let r = send("{\"messages\":[]}", "application/json").await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["param"], "model");

    let r = send("[1,2]", "application/json").await.unwrap();
    assert_eq!(r.status(), 400);

    let r = send(
        "{\"model\":\"no-such-model\",\"messages\":[]}",
        "application/json; charset=utf-8",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "model_not_found");

    let r = gw
        .http
        .get(format!("{}/v1/nowhere", gw.api))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_openai_error(&r.json().await.unwrap());
    let r = gw.http.get(&url).bearer_auth(&key).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_openai_error(&r.json().await.unwrap());

    assert_eq!(
        send(
            "{\"model\":\"assisters-echo\",\"messages\":[]}",
            "application/json"
        )
        .await
        .unwrap()
        .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_are_413_by_length_and_while_streaming() {
    let gw = Gateway::start(&config_with(None, "[limits]\nmax_body_bytes = 1024\n")).await;
    let key = gw.key().await;
    let url = format!("{}/v1/chat/completions", gw.api);
    let big = format!(
        "{{\"model\":\"assisters-echo\",\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}]}}",
        "x".repeat(4000)
    );

    let r = gw
        .http
        .post(&url)
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "request_too_large");

    // Chunked: no Content-Length, so the limit is enforced as bytes arrive.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.as_bytes().chunks(100).map(|c| Ok(c.to_vec())).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let r = gw
        .http
        .post(&url)
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    let ok = gw
        .post(
            &key,
            "/v1/chat/completions",
            json!({"model": "assisters-echo", "messages": []}),
        )
        .await;
    assert_eq!(ok.status(), 200);
}
