//! Access policy through the real server: tiers and rate limits (under
//! concurrency too), token reservation and settlement, streams, allowed
//! domains with CORS, IP allowlists, trusted proxies, rotation, throttling.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{config_with, Gateway, MockUpstream};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

fn echo(max_tokens: Option<u64>) -> Value {
    let mut b = json!({"model": "assisters-echo", "messages": [{"role": "user", "content": "hello there"}]});
    if let Some(m) = max_tokens {
        b["max_tokens"] = json!(m);
    }
    b
}

async fn tier(gw: &Gateway, name: &str, rpm: u32, tpm: u32, extra: Value) {
    let mut body = json!({"name": name, "requests_per_min": rpm, "tokens_per_min": tpm,
                          "max_concurrent_streams": null, "daily_token_budget": null});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (s, v) = gw
        .admin_call(Method::POST, "/admin/tiers", Some(body))
        .await;
    assert_eq!(s, 201, "{v}");
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn seeded_tiers_and_headers_on_every_response() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let (_, tiers) = gw.admin_call(Method::GET, "/admin/tiers", None).await;
    let t: Vec<(String, u64, u64)> = tiers["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["requests_per_min"].as_u64().unwrap(),
                t["tokens_per_min"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        t,
        vec![
            ("free".into(), 10, 100_000),
            ("developer".into(), 100, 1_000_000),
            ("startup".into(), 500, 5_000_000)
        ]
    );

    let (_, v) = gw.create_key(json!({"name": "default"})).await;
    let (id, _) = gw.create_key(json!({"name": "d2"})).await;
    let (_, view) = gw
        .admin_call(Method::GET, &format!("/admin/keys/{id}"), None)
        .await;
    assert_eq!(view["tier"], "free", "new keys get free");

    let r = gw.post(&v, "/v1/chat/completions", echo(Some(10))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-ratelimit-limit-requests"), "10");
    assert_eq!(header(&r, "x-ratelimit-remaining-requests"), "9");
    assert_eq!(header(&r, "x-ratelimit-reset-requests"), "6s");
    assert_eq!(header(&r, "x-ratelimit-limit-tokens"), "100000");
    let remaining: u64 = header(&r, "x-ratelimit-remaining-tokens").parse().unwrap();
    assert!(remaining < 100_000 && remaining > 99_900, "{remaining}");
    assert!(header(&r, "x-ratelimit-reset-tokens").ends_with("ms"));
    let m = gw
        .http
        .get(format!("{}/v1/models", gw.api))
        .bearer_auth(&v)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&m, "x-ratelimit-remaining-requests"), "8");
    // Failed requests count too.
    let bad = gw
        .post(
            &v,
            "/v1/chat/completions",
            json!({"model": "nope", "messages": []}),
        )
        .await;
    assert_eq!(bad.status(), 404);
    assert_eq!(header(&bad, "x-ratelimit-remaining-requests"), "7");
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_per_minute_refuse_with_429_and_retry_after() {
    let gw = Gateway::start(&config_with(None, "")).await;
    tier(&gw, "tiny", 3, 100_000, json!({})).await;
    let (_, key) = gw.create_key(json!({"name": "k", "tier": "tiny"})).await;
    for _ in 0..3 {
        assert_eq!(
            gw.post(&key, "/v1/chat/completions", echo(Some(5)))
                .await
                .status(),
            200
        );
    }
    let r = gw.post(&key, "/v1/chat/completions", echo(Some(5))).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = header(&r, "retry-after").parse().unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    assert_eq!(header(&r, "x-ratelimit-remaining-requests"), "0");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert_eq!(v["error"]["type"], "requests");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("requests per minute")
            && msg.contains("limit 3")
            && msg.contains("try again in"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_at_the_boundary_never_exceed_the_quota() {
    let gw = Gateway::start(&config_with(None, "")).await;
    tier(&gw, "fifty", 50, 10_000_000, json!({})).await;
    let (_, key) = gw.create_key(json!({"name": "k", "tier": "fifty"})).await;
    let started = Instant::now();
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let http = gw.http.clone();
            let url = format!("{}/v1/chat/completions", gw.api);
            let key = key.clone();
            tokio::spawn(async move {
                http.post(url)
                    .bearer_auth(key)
                    .json(&echo(Some(5)))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            429 => limited += 1,
            s => panic!("unexpected status {s}"),
        }
    }
    // 50 at once, plus one more per 1.2 s of refill while the burst ran.
    let refill = (started.elapsed().as_millis() / 1200) as u32;
    assert!(
        ok >= 50 && ok <= 50 + refill,
        "admitted {ok} with refill {refill}"
    );
    assert_eq!(ok + limited, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_reserved_settled_and_oversized_requests_refused() {
    let gw = Gateway::start(&config_with(None, "")).await;
    tier(&gw, "t1000", 100, 1000, json!({})).await;
    let (_, key) = gw.create_key(json!({"name": "k", "tier": "t1000"})).await;

    let r = gw
        .post(&key, "/v1/chat/completions", echo(Some(5000)))
        .await;
    assert_eq!(
        r.status(),
        400,
        "a request larger than the whole quota is never admitted"
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "tokens_exceed_rate_limit");
    assert!(v["error"]["message"].as_str().unwrap().contains("1000"));
    // With schema validation off nothing bounds `max_tokens` or `n`: their
    // product must not wrap around to a reservation of nothing.
    let (s, _) = gw
        .patch_settings(json!({"validation": {"enabled": false}}))
        .await;
    assert_eq!(s, 200);
    let mut huge = echo(Some(9_223_372_036_854_775_808));
    huge["n"] = json!(2);
    let r = gw.post(&key, "/v1/chat/completions", huge).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "tokens_exceed_rate_limit", "{v}");
    gw.patch_settings(json!({"validation": {"enabled": true}}))
        .await;

    // Each reserves ~600 (prompt + max_tokens) of 1000; the echo uses ~15,
    // so without refunds the second would be refused.
    for i in 0..3 {
        let r = gw.post(&key, "/v1/chat/completions", echo(Some(590))).await;
        assert_eq!(r.status(), 200, "request {i}: refunds make room");
    }
    // A stream from a real upstream that over-reserves is settled too.
    let r = gw.post(&key, "/v1/chat/completions", echo(Some(990))).await;
    assert_eq!(r.status(), 429, "1000 needed while ~45 are spent");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "tokens");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("tokens per minute"));
}

/// Token ids are tokens: an embedding of ids reserves them (it reserved
/// none, and a reservation of none never asked the limiter).
#[tokio::test(flavor = "multi_thread")]
async fn token_id_inputs_are_reserved_like_text() {
    let gw = Gateway::start(&config_with(None, "")).await;
    tier(&gw, "t1000", 100, 1000, json!({})).await;
    let (_, key) = gw.create_key(json!({"name": "k", "tier": "t1000"})).await;
    let ids: Vec<u32> = (0..400).collect();
    let body = json!({"model": "assisters-echo", "input": [ids]});
    let r = gw.post(&key, "/v1/embeddings", body.clone()).await;
    assert_eq!(r.status(), 200);
    let left: u64 = header(&r, "x-ratelimit-remaining-tokens").parse().unwrap();
    assert!(left <= 600, "400 ids reserved: {left} left");
    let r = gw
        .post(
            &key,
            "/v1/completions",
            json!({"model": "assisters-echo", "prompt": [7, 8], "max_tokens": 0}),
        )
        .await;
    let left: u64 = header(&r, "x-ratelimit-remaining-tokens")
        .parse()
        .unwrap_or(0);
    assert!(left < 1000, "status {}: {left} left", r.status());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disconnected_stream_is_still_charged_its_real_usage() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config_with(
        Some(&up),
        "[limits]\ndefault_max_tokens = 1000\n",
    ))
    .await;
    tier(&gw, "t2000", 100, 2000, json!({})).await;
    let (_, key) = gw.create_key(json!({"name": "k", "tier": "t2000"})).await;

    let resp = gw.post(&key, "/v1/chat/completions", json!({"model": "mock-gated", "stream": true, "messages": [{"role": "user", "content": "x"}]})).await;
    let mut body = resp.bytes_stream();
    assert!(String::from_utf8_lossy(&body.next().await.unwrap().unwrap()).contains("first"));
    drop(body); // the client goes away mid-stream
    tokio::time::sleep(Duration::from_millis(200)).await;
    up.release(); // the upstream finishes, reporting 10 tokens
    tokio::time::sleep(Duration::from_millis(300)).await;

    // ~1010 were reserved for the stream. Only if the gateway read on to the
    // usage event and refunded the difference is there room for ~1510 now.
    let r = gw
        .post(&key, "/v1/chat/completions", echo(Some(1500)))
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_streams_and_daily_budget_are_enforced() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config_with(Some(&up), "")).await;
    tier(
        &gw,
        "onestream",
        100,
        1_000_000,
        json!({"max_concurrent_streams": 1, "daily_token_budget": 3000}),
    )
    .await;
    let (_, key) = gw
        .create_key(json!({"name": "k", "tier": "onestream"}))
        .await;
    let stream_req = json!({"model": "mock-gated", "stream": true, "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]});
    let first = gw
        .post(&key, "/v1/chat/completions", stream_req.clone())
        .await;
    let mut body = first.bytes_stream();
    body.next().await.unwrap().unwrap();
    // Refused for want of a slot, after a big reservation would have fit.
    let mut big = stream_req.clone();
    big["max_tokens"] = json!(2900);
    let second = gw.post(&key, "/v1/chat/completions", big).await;
    assert_eq!(second.status(), 429);
    let v: Value = second.json().await.unwrap();
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("concurrent streams"));
    up.release();
    while body.next().await.is_some() {}
    tokio::time::sleep(Duration::from_millis(100)).await;
    let third = gw
        .post(
            &key,
            "/v1/chat/completions",
            json!({"model": "mock", "stream": true, "max_tokens": 10, "messages": []}),
        )
        .await;
    assert_eq!(third.status(), 200, "the slot is free again");
    third.text().await.unwrap();
    let r = gw
        .post(&key, "/v1/chat/completions", echo(Some(2800)))
        .await;
    assert_eq!(r.status(), 200, "the refused stream cost nothing");

    let r = gw
        .post(&key, "/v1/chat/completions", echo(Some(2990)))
        .await;
    assert_eq!(r.status(), 429, "the daily budget has too little left");
    assert!(r.json::<Value>().await.unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Daily token budget"));
    // More than the whole day's budget can never pass: no retrying at midnight.
    let r = gw
        .post(&key, "/v1/chat/completions", echo(Some(3500)))
        .await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "tokens_exceed_rate_limit", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("3000 tokens per day"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tier_and_override_changes_apply_on_the_next_request() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let (id, key) = gw
        .create_key(json!({"name": "k", "tier": "developer"}))
        .await;
    let r = gw.post(&key, "/v1/chat/completions", echo(Some(5))).await;
    assert_eq!(header(&r, "x-ratelimit-limit-requests"), "100");
    gw.admin_call(
        Method::PATCH,
        &format!("/admin/keys/{id}"),
        Some(json!({"tier": "startup"})),
    )
    .await;
    let r = gw.post(&key, "/v1/chat/completions", echo(Some(5))).await;
    assert_eq!(header(&r, "x-ratelimit-limit-requests"), "500");
    let (s, _) = gw
        .admin_call(
            Method::PATCH,
            "/admin/tiers/startup",
            Some(json!({"requests_per_min": 7})),
        )
        .await;
    assert_eq!(s, 200);
    let r = gw.post(&key, "/v1/chat/completions", echo(Some(5))).await;
    assert_eq!(header(&r, "x-ratelimit-limit-requests"), "7");
    gw.admin_call(
        Method::PATCH,
        &format!("/admin/keys/{id}"),
        Some(json!({"overrides": {"requests_per_min": 2, "tokens_per_min": 5000}})),
    )
    .await;
    let r = gw.post(&key, "/v1/chat/completions", echo(Some(5))).await;
    assert_eq!(header(&r, "x-ratelimit-limit-requests"), "2");
    assert_eq!(header(&r, "x-ratelimit-limit-tokens"), "5000");

    let (s, v) = gw
        .admin_call(Method::DELETE, "/admin/tiers/startup", None)
        .await;
    assert_eq!(s, 409);
    assert!(
        v["error"]["message"].as_str().unwrap().contains(&id),
        "names the keys using it: {v}"
    );
    let (s, _) = gw
        .admin_call(
            Method::POST,
            "/admin/keys",
            Some(json!({"name": "x", "tier": "gold"})),
        )
        .await;
    assert_eq!(s, 400);
    tier(&gw, "unused", 1, 1, json!({})).await;
    let (s, _) = gw
        .admin_call(Method::DELETE, "/admin/tiers/unused", None)
        .await;
    assert_eq!(s, 204);
}

#[tokio::test(flavor = "multi_thread")]
async fn allowed_domains_check_origin_and_referer_and_set_cors() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let (_, key) = gw.create_key(json!({"name": "web", "tier": "startup", "allowed_domains": ["Example.com", "*.apps.test"]})).await;
    let call = |origin: Option<&'static str>, referer: Option<&'static str>| {
        let mut r = gw
            .http
            .post(format!("{}/v1/chat/completions", gw.api))
            .bearer_auth(&key)
            .json(&echo(Some(5)));
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        if let Some(rf) = referer {
            r = r.header("referer", rf);
        }
        r.send()
    };
    let ok = call(Some("https://example.com"), None).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        header(&ok, "access-control-allow-origin"),
        "https://example.com",
        "never * for a restricted key"
    );
    assert_eq!(
        call(Some("https://deep.sub.apps.test:8443"), None)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        call(None, Some("https://example.com/page?q=1"))
            .await
            .unwrap()
            .status(),
        200
    );
    for bad in [
        "https://example.com.evil.com",
        "https://evilexample.com",
        "null",
        "https://example.com@evil.com",
        "https://apps.test",
        "http://EXAMPLE.com.:80@evil.com",
    ] {
        let r = call(Some(bad), None).await.unwrap();
        assert_eq!(r.status(), 403, "{bad}");
        assert_ne!(header(&r, "access-control-allow-origin"), "*");
        assert_eq!(
            r.json::<Value>().await.unwrap()["error"]["code"],
            "origin_not_allowed"
        );
    }
    let r = call(None, None).await.unwrap();
    assert_eq!(r.status(), 403, "no Origin and no Referer");

    let (_, open) = gw.create_key(json!({"name": "open"})).await;
    let r = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.api))
        .bearer_auth(&open)
        .header("origin", "https://anything.test")
        .json(&echo(Some(5)))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "access-control-allow-origin"), "*");
    assert!(header(&r, "access-control-expose-headers").contains("x-ratelimit-remaining-requests"));

    let pre = gw
        .http
        .request(Method::OPTIONS, format!("{}/v1/chat/completions", gw.api))
        .header("origin", "https://example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type, x-stainless-os",
        )
        .send()
        .await
        .unwrap();
    assert!(
        pre.status().is_success(),
        "preflight needs no key: {}",
        pre.status()
    );
    assert_eq!(
        header(&pre, "access-control-allow-origin"),
        "https://example.com"
    );
    assert!(header(&pre, "access-control-allow-headers").contains("authorization"));
    assert!(header(&pre, "access-control-allow-methods").contains("POST"));
}

#[tokio::test(flavor = "multi_thread")]
async fn ip_allowlists_and_trusted_proxies() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let (id, key) = gw
        .create_key(json!({"name": "ip", "tier": "startup", "allowed_ips": ["10.0.0.0/8"]}))
        .await;
    let r = gw.post(&key, "/v1/chat/completions", echo(Some(5))).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "ip_not_allowed"
    );
    // A spoofed X-Forwarded-For from an untrusted peer changes nothing.
    let r = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.api))
        .bearer_auth(&key)
        .header("x-forwarded-for", "10.1.2.3")
        .json(&echo(Some(5)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    gw.admin_call(
        Method::PATCH,
        &format!("/admin/keys/{id}"),
        Some(json!({"allowed_ips": ["::ffff:127.0.0.1/128"]})),
    )
    .await;
    assert_eq!(
        gw.post(&key, "/v1/chat/completions", echo(Some(5)))
            .await
            .status(),
        200,
        "IPv4-mapped entries match IPv4 peers"
    );
    let (s, _) = gw
        .admin_call(
            Method::PATCH,
            &format!("/admin/keys/{id}"),
            Some(json!({"allowed_ips": ["10.0.0.0/33"]})),
        )
        .await;
    assert_eq!(s, 400);

    // Behind a trusted proxy, the right-most untrusted hop is the client.
    let proxied = Gateway::start(&config_with(
        None,
        "[access]\ntrusted_proxies = [\"127.0.0.1\"]\n",
    ))
    .await;
    let (_, k2) = proxied
        .create_key(json!({"name": "p", "tier": "startup", "allowed_ips": ["203.0.113.0/24"]}))
        .await;
    let send = |xff: &'static str| {
        proxied
            .http
            .post(format!("{}/v1/chat/completions", proxied.api))
            .bearer_auth(&k2)
            .header("x-forwarded-for", xff)
            .json(&echo(Some(5)))
            .send()
    };
    assert_eq!(send("203.0.113.5").await.unwrap().status(), 200);
    assert_eq!(send("203.0.113.5, 127.0.0.1").await.unwrap().status(), 200);
    assert_eq!(
        send("198.51.100.1, 203.0.113.5").await.unwrap().status(),
        200,
        "the right-most untrusted hop counts"
    );
    assert_eq!(
        send("203.0.113.5, 198.51.100.1").await.unwrap().status(),
        403,
        "a client cannot prepend its way in"
    );
    assert_eq!(
        proxied
            .post(&k2, "/v1/chat/completions", echo(Some(5)))
            .await
            .status(),
        403
    );

    // The global allowlist applies to every key.
    let (_, k3) = gw.create_key(json!({"name": "g", "tier": "startup"})).await;
    gw.admin_call(
        Method::PATCH,
        "/admin/settings",
        Some(json!({"access": {"allowed_ips": ["192.0.2.0/24"]}})),
    )
    .await;
    let r = gw.post(&k3, "/v1/chat/completions", echo(Some(5))).await;
    assert_eq!(r.status(), 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_keeps_the_old_key_for_the_grace_period() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let (id, old) = gw
        .create_key(json!({"name": "svc", "tier": "developer", "allowed_ips": ["127.0.0.0/8"]}))
        .await;
    let (s, v) = gw
        .admin_call(
            Method::POST,
            &format!("/admin/keys/{id}/rotate"),
            Some(json!({"grace": "2s"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let new = v["new"]["key"].as_str().unwrap().to_owned();
    let new_id = v["new"]["id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, id);
    assert_eq!(v["new"]["tier"], "developer");
    assert_eq!(v["new"]["allowed_ips"], json!(["127.0.0.0/8"]));
    assert_eq!(v["old"]["replaced_by"], new_id.as_str());
    assert_eq!(
        gw.post(&old, "/v1/chat/completions", echo(Some(5)))
            .await
            .status(),
        200,
        "within the grace period"
    );
    assert_eq!(
        gw.post(&new, "/v1/chat/completions", echo(Some(5)))
            .await
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(
        gw.post(&old, "/v1/chat/completions", echo(Some(5)))
            .await
            .status(),
        401
    );
    assert_eq!(
        gw.post(&new, "/v1/chat/completions", echo(Some(5)))
            .await
            .status(),
        200
    );
    let (_, renamed) = gw
        .admin_call(
            Method::PATCH,
            &format!("/admin/keys/{new_id}"),
            Some(json!({"name": "svc-2"})),
        )
        .await;
    assert_eq!(
        renamed["id"],
        new_id.as_str(),
        "ids are stable across renames"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_authentication_is_throttled_per_address() {
    let gw = Gateway::start(&config_with(None, "[access]\nauth_failures_per_min = 5\n")).await;
    let good = gw.key().await;
    let mut bodies = Vec::new();
    for i in 0..5 {
        let r = gw
            .post(
                &format!("ask_{}", format!("{i}").repeat(40)),
                "/v1/chat/completions",
                echo(None),
            )
            .await;
        assert_eq!(r.status(), 401);
        bodies.push(r.bytes().await.unwrap());
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    let r = gw
        .post(
            &format!("ask_{}", "z".repeat(40)),
            "/v1/chat/completions",
            echo(None),
        )
        .await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "rate_limit_exceeded"
    );
    let r = gw.post(&good, "/v1/chat/completions", echo(Some(5))).await;
    assert_eq!(
        r.status(),
        429,
        "the address is blocked whatever key it tries"
    );
}

/// The allowed failures are a runtime setting: a change applies to the
/// next failure (the throttle had kept the limit it started with).
#[tokio::test(flavor = "multi_thread")]
async fn the_auth_throttle_follows_its_setting() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let (s, v) = gw
        .patch_settings(json!({"access": {"auth_failures_per_min": 2}}))
        .await;
    assert_eq!(s, 200, "{v}");
    let mut statuses = Vec::new();
    for i in 0..3 {
        let r = gw
            .post(
                &format!("ask_{}", format!("{i}").repeat(40)),
                "/v1/chat/completions",
                echo(None),
            )
            .await;
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 429]);
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_a_key_with_requests_in_flight() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config_with(Some(&up), "")).await;
    let (id, key) = gw.create_key(json!({"name": "k", "tier": "startup"})).await;
    let stream = gw
        .post(
            &key,
            "/v1/chat/completions",
            json!({"model": "mock-gated", "stream": true, "messages": []}),
        )
        .await;
    let mut body = stream.bytes_stream();
    body.next().await.unwrap().unwrap();
    gw.admin_call(Method::POST, &format!("/admin/keys/{id}/revoke"), None)
        .await;
    assert_eq!(
        gw.post(&key, "/v1/chat/completions", echo(Some(5)))
            .await
            .status(),
        401
    );
    up.release();
    let mut rest = String::new();
    while let Some(c) = body.next().await {
        rest.push_str(&String::from_utf8_lossy(&c.unwrap()));
    }
    assert!(
        rest.contains("[DONE]"),
        "the request admitted before revocation completes"
    );
}

/// A rotated key's successor shares its predecessor's allowance (each had
/// a full one, so the grace period doubled the key's limits), and editing a
/// key's other numbers refills nothing.
#[tokio::test(flavor = "multi_thread")]
async fn rotation_and_edits_do_not_refill_the_allowance() {
    let gw = Gateway::start(&config_with(None, "")).await;
    tier(&gw, "three", 3, 100_000, json!({})).await;
    let (id, old) = gw.create_key(json!({"name": "svc", "tier": "three"})).await;
    for _ in 0..2 {
        let r = gw.post(&old, "/v1/chat/completions", echo(Some(5))).await;
        assert_eq!(r.status(), 200);
    }
    let (s, v) = gw
        .admin_call(
            Method::POST,
            &format!("/admin/keys/{id}/rotate"),
            Some(json!({"grace": "1h"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let new = v["new"]["key"].as_str().unwrap().to_owned();
    let new_id = v["new"]["id"].as_str().unwrap().to_owned();
    let r = gw.post(&new, "/v1/chat/completions", echo(Some(5))).await;
    assert_eq!(r.status(), 200, "the third of three");
    for key in [&new, &old] {
        let r = gw.post(key, "/v1/chat/completions", echo(Some(5))).await;
        assert_eq!(r.status(), 429, "the allowance is shared");
    }
    let (s, _) = gw
        .admin_call(
            Method::PATCH,
            &format!("/admin/keys/{new_id}"),
            Some(json!({"overrides": {"max_concurrent_requests": 50}})),
        )
        .await;
    assert_eq!(s, 200);
    let r = gw.post(&new, "/v1/chat/completions", echo(Some(5))).await;
    assert_eq!(r.status(), 429, "an edit refills nothing");
}
