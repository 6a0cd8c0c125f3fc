//! The admin API: authentication, cross-site refusal, keys, upstreams with
//! encrypted credentials, settings, audit, OpenAPI, and durability.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{config_with, files_containing, Gateway, MockUpstream};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn admin_requires_the_token_and_refuses_cross_site() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let r = gw
        .http
        .get(format!("{}/admin/keys", gw.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_admin_token"
    );
    let r = gw
        .http
        .get(format!("{}/admin/keys", gw.admin))
        .bearer_auth("adm_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A page on another site cannot drive the admin API, even with the token.
    let r = gw
        .http
        .post(format!("{}/admin/keys", gw.admin))
        .bearer_auth(&gw.token)
        .header("origin", "https://evil.example")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let own_origin = gw.admin.clone();
    let r = gw
        .http
        .get(format!("{}/admin/keys", gw.admin))
        .bearer_auth(&gw.token)
        .header("origin", own_origin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (s, list) = gw.admin_call(Method::GET, "/admin/keys", None).await;
    assert_eq!(s, 200);
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        0,
        "the refused create created nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_shown_once_and_stored_only_as_hashes() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let (id, secret) = gw
        .create_key(
            json!({"name": "app", "environment": "prod", "tier": "developer", "expires_in": "30d"}),
        )
        .await;
    assert!(secret.starts_with("ask_") && secret.len() >= 4 + 43);
    let (s, v) = gw
        .admin_call(Method::GET, &format!("/admin/keys/{id}"), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["environment"], "prod");
    assert_eq!(v["tier"], "developer");
    assert!(v["expires_at"].is_string());
    assert!(secret.starts_with(v["prefix"].as_str().unwrap()));
    let text = v.to_string();
    assert!(!text.contains(&secret) && v.get("key").is_none() && v.get("hash").is_none());
    let (_, list) = gw.admin_call(Method::GET, "/admin/keys", None).await;
    assert!(!list.to_string().contains(&secret));

    let (s, v) = gw
        .admin_call(
            Method::PATCH,
            &format!("/admin/keys/{id}"),
            Some(json!({"name": "renamed"})),
        )
        .await;
    assert_eq!(
        (s, v["id"].as_str(), v["name"].as_str()),
        (200, Some(id.as_str()), Some("renamed"))
    );

    let (s, v) = gw
        .admin_call(
            Method::POST,
            "/admin/keys",
            Some(json!({"name": "x", "environment": "moon"})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, _) = gw
        .admin_call(
            Method::POST,
            "/admin/keys",
            Some(json!({"name": "x", "colour": "red"})),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = gw
        .admin_call(Method::GET, "/admin/keys/key_nope", None)
        .await;
    assert_eq!(s, 404);

    // Neither the secret nor a plain rendition of it is anywhere on disk.
    gw.post(
        &secret,
        "/v1/chat/completions",
        json!({"model": "assisters-echo", "messages": []}),
    )
    .await;
    assert!(files_containing(gw.path(), secret.as_bytes()).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn upstreams_are_managed_live_and_their_keys_encrypted() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config_with(None, "")).await;
    let key = gw.key().await;
    let secret = "sk-admin-added-upstream-key-987654";
    let (s, v) = gw
        .admin_call(
            Method::POST,
            "/admin/upstreams",
            Some(json!({"name": "local", "base_url": up.base_url(), "api_key": secret})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["has_api_key"], true);
    assert!(!v.to_string().contains(secret));
    let id = v["id"].as_str().unwrap().to_owned();

    // Discovery runs in the background; the route appears once it has.
    let mut routed = false;
    for _ in 0..100 {
        let r = gw
            .post(
                &key,
                "/v1/chat/completions",
                json!({"model": "mock", "messages": []}),
            )
            .await;
        if r.status() == 200 {
            routed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(routed, "discovered models are routed");
    assert_eq!(
        up.last().authorization.as_deref(),
        Some(format!("Bearer {secret}").as_str())
    );

    let (s, t) = gw
        .admin_call(Method::POST, &format!("/admin/upstreams/{id}/test"), None)
        .await;
    assert_eq!((s, t["ok"].as_bool()), (200, Some(true)), "{t}");
    assert!(t["models"].as_array().unwrap().iter().any(|m| m == "mock"));

    let (s, list) = gw.admin_call(Method::GET, "/admin/upstreams", None).await;
    assert_eq!(s, 200);
    assert!(!list.to_string().contains(secret));
    assert!(
        files_containing(gw.path(), secret.as_bytes()).is_empty(),
        "upstream keys are sealed at rest"
    );

    let (s, v) = gw
        .admin_call(
            Method::PATCH,
            &format!("/admin/upstreams/{id}"),
            Some(json!({"models": ["only-this"]})),
        )
        .await;
    assert_eq!((s, v["served_models"].clone()), (200, json!(["only-this"])));
    let r = gw
        .post(
            &key,
            "/v1/chat/completions",
            json!({"model": "mock", "messages": []}),
        )
        .await;
    assert_eq!(
        r.status(),
        404,
        "the route table follows the change at once"
    );

    // Another server for the stored key needs the key again.
    let elsewhere = "http://127.0.0.1:9/v1";
    let (s, v) = gw
        .admin_call(
            Method::PATCH,
            &format!("/admin/upstreams/{id}"),
            Some(json!({"base_url": elsewhere})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["param"].as_str()),
        (400, Some("api_key")),
        "{v}"
    );
    let (s, v) = gw
        .admin_call(
            Method::PATCH,
            &format!("/admin/upstreams/{id}"),
            Some(json!({"base_url": format!("{}/", up.base_url())})),
        )
        .await;
    assert_eq!(
        (s, v["has_api_key"].as_bool()),
        (200, Some(true)),
        "same server: {v}"
    );
    let (s, v) = gw
        .admin_call(
            Method::PATCH,
            &format!("/admin/upstreams/{id}"),
            Some(json!({"base_url": elsewhere, "api_key": null})),
        )
        .await;
    assert_eq!((s, v["has_api_key"].as_bool()), (200, Some(false)), "{v}");

    let (s, _) = gw
        .admin_call(
            Method::POST,
            "/admin/upstreams",
            Some(json!({"name": "local", "base_url": up.base_url()})),
        )
        .await;
    assert_eq!(s, 409);
    let (s, _) = gw
        .admin_call(
            Method::POST,
            "/admin/upstreams",
            Some(json!({"name": "bad", "base_url": "ftp://x"})),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = gw
        .admin_call(Method::DELETE, &format!("/admin/upstreams/{id}"), None)
        .await;
    assert_eq!(s, 204);
    let (_, list) = gw.admin_call(Method::GET, "/admin/upstreams", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn config_upstreams_are_read_only_and_test_reports_failures() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config_with(
        Some(&up),
        "[[upstreams]]\nname = \"dead\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodels = [\"d\"]\n",
    ))
    .await;
    let (s, _) = gw
        .admin_call(Method::DELETE, "/admin/upstreams/mock", None)
        .await;
    assert_eq!(s, 409);
    let (s, v) = gw
        .admin_call(Method::GET, "/admin/upstreams/mock", None)
        .await;
    assert_eq!(
        (s, v["source"].as_str(), v["has_api_key"].as_bool()),
        (200, Some("config"), Some(true))
    );
    let (s, v) = gw
        .admin_call(Method::POST, "/admin/upstreams/dead/test", None)
        .await;
    assert_eq!((s, v["ok"].as_bool()), (200, Some(false)));
    assert!(v["error"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_apply_on_the_next_request_and_survive_restart() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let key = gw.key().await;
    let (s, v) = gw
        .admin_call(
            Method::PATCH,
            "/admin/settings",
            Some(json!({"limits": {"max_body_bytes": 200}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["settings"]["limits"]["max_body_bytes"], 200);
    assert!(v["listeners"]["listen"].is_string());
    let big = json!({"model": "assisters-echo", "messages": [{"role": "user", "content": "y".repeat(300)}]});
    assert_eq!(
        gw.post(&key, "/v1/chat/completions", big.clone())
            .await
            .status(),
        413
    );
    let (s, _) = gw
        .admin_call(
            Method::PATCH,
            "/admin/settings",
            Some(json!({"limits": {"max_body_bytes": 0}})),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = gw
        .admin_call(
            Method::PATCH,
            "/admin/settings",
            Some(json!({"unknown": 1})),
        )
        .await;
    assert_eq!(s, 400);

    // A restart with a changed config file: the stored section wins, a
    // section never patched follows the file.
    let cfg = config_with(None, "[validation]\nmax_depth = 17\n");
    let dir = gw.take_dir();
    let gw = Gateway::start_in(dir, &cfg, &[]).await;
    assert_eq!(
        gw.post(&key, "/v1/chat/completions", big).await.status(),
        413
    );
    let (_, v) = gw.admin_call(Method::GET, "/admin/settings", None).await;
    assert_eq!(v["settings"]["validation"]["max_depth"], 17, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_admin_change_is_audited_in_a_verifiable_chain() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let (id, _) = gw.create_key(json!({"name": "a"})).await;
    gw.admin_call(Method::POST, &format!("/admin/keys/{id}/revoke"), None)
        .await;
    gw.admin_call(
        Method::PATCH,
        "/admin/settings",
        Some(json!({"echo_model": false})),
    )
    .await;
    let (s, v) = gw.admin_call(Method::GET, "/admin/audit", None).await;
    assert_eq!(s, 200);
    let actions: Vec<&str> = actions_of(&v);
    assert_eq!(actions, ["settings.update", "key.revoke", "key.create"]);
    assert_eq!(v["data"][1]["source"], "127.0.0.1");
    // Filters: a family of actions, one action, a target, an actor.
    for (query, want) in [
        ("action=key", vec!["key.revoke", "key.create"]),
        ("action=key.create", vec!["key.create"]),
        ("action=ke", vec![]),
        (&format!("target={id}"), vec!["key.revoke", "key.create"]),
        ("actor=dashboard", vec![]),
        ("actor=admin-token&action=settings", vec!["settings.update"]),
    ] {
        let (_, v) = gw
            .admin_call(Method::GET, &format!("/admin/audit?{query}"), None)
            .await;
        let got: Vec<&str> = actions_of(&v);
        assert_eq!(got, want, "{query}");
    }
    let (_, ver) = gw
        .admin_call(Method::GET, "/admin/audit/verify", None)
        .await;
    assert_eq!(
        (ver["ok"].as_bool(), ver["entries"].as_u64()),
        (Some(true), Some(3))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn openapi_document_describes_the_admin_api() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let doc: Value = gw
        .http
        .get(format!("{}/admin/openapi.json", gw.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for p in [
        "/admin/keys",
        "/admin/keys/{id}",
        "/admin/keys/{id}/revoke",
        "/admin/upstreams",
        "/admin/upstreams/{id}/test",
        "/admin/settings",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} missing");
    }
    assert!(doc["components"]["schemas"].get("KeyView").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_changes_survive_kill_9() {
    let mut gw = Gateway::start(&config_with(None, "")).await;
    let (id, key) = gw.create_key(json!({"name": "durable"})).await;
    let (gone_id, revoked) = gw.create_key(json!({"name": "gone"})).await;
    gw.admin_call(Method::POST, &format!("/admin/keys/{gone_id}/revoke"), None)
        .await;
    gw.kill9();
    let cfg = config_with(None, "");
    let gw = Gateway::start_in(gw.take_dir(), &cfg, &[]).await;
    let body = json!({"model": "assisters-echo", "messages": []});
    assert_eq!(
        gw.post(&key, "/v1/chat/completions", body.clone())
            .await
            .status(),
        200
    );
    assert_eq!(
        gw.post(&revoked, "/v1/chat/completions", body)
            .await
            .status(),
        401
    );
    let (s, v) = gw
        .admin_call(Method::GET, &format!("/admin/keys/{id}"), None)
        .await;
    assert_eq!((s, v["name"].as_str()), (200, Some("durable")));
}

/// The actions of an audit page, newest first.
fn actions_of(page: &Value) -> Vec<&str> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

/// A client that shows redirects instead of following them (the login link
/// answers 303 with the cookie).
fn no_redirect() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_time_login_link_becomes_a_strict_session_cookie() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let (s, v) = gw
        .admin_call(Method::POST, "/admin/login-links", None)
        .await;
    assert_eq!(s, 200);
    let url = v["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&gw.admin) && url.contains("/login?code="));
    let no_redirect = no_redirect();
    let r = no_redirect.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/",
        "the code leaves the address bar"
    );
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    assert!(!session.contains(&gw.token));

    let r = no_redirect.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401, "a link works once");

    let r = no_redirect
        .get(format!("{}/admin/keys", gw.admin))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = no_redirect
        .post(format!("{}/admin/keys", gw.admin))
        .header("cookie", &session)
        .header("origin", "http://attacker.example")
        .json(&json!({"name": "csrf"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = no_redirect
        .get(format!("{}/admin/keys", gw.admin))
        .header("cookie", "assisters_session=ses_forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let (_, audit) = gw.admin_call(Method::GET, "/admin/audit", None).await;
    let actions: Vec<&str> = actions_of(&audit);
    assert!(actions.contains(&"session.login"), "{actions:?}");

    let r = no_redirect
        .post(format!("{}/admin/logout", gw.admin))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = no_redirect
        .get(format!("{}/admin/keys", gw.admin))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (_, audit) = gw.admin_call(Method::GET, "/admin/audit", None).await;
    assert!(actions_of(&audit).contains(&"session.logout"), "{audit}");

    let page = no_redirect
        .get(format!("{}/", gw.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_admin_routes_are_json_404s_and_app_routes_get_the_shell() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let (status, body) = gw
        .admin_call(Method::GET, "/admin/no-such-thing", None)
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    // An id that is not UTF-8 is refused in the same shape, not plain text.
    for path in ["/admin/logs/%FF", "/admin/keys/%FF"] {
        let (status, body) = gw.admin_call(Method::GET, path, None).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{path}");
    }
    let page = gw
        .http
        .get(format!("{}/keys", gw.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_desktop_webview_origin_gets_cors_and_no_other_does() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let pre = gw
        .http
        .request(Method::OPTIONS, format!("{}/admin/keys", gw.admin))
        .header("origin", "tauri://localhost")
        // WebKitGTK sends this with the webview's own origin.
        .header("sec-fetch-site", "cross-site")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        pre.status(),
        204,
        "preflights carry no token and are answered"
    );
    assert_eq!(
        pre.headers()["access-control-allow-origin"],
        "tauri://localhost"
    );
    assert!(pre.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("authorization"));
    let r = gw
        .http
        .get(format!("{}/admin/keys", gw.admin))
        .bearer_auth(&gw.token)
        .header("origin", "http://tauri.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://tauri.localhost"
    );
    let r = gw
        .http
        .get(format!("{}/admin/keys", gw.admin))
        .header("origin", "tauri://localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the webview still needs the token");
    let evil = gw
        .http
        .request(Method::OPTIONS, format!("{}/admin/keys", gw.admin))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), 403);
    assert!(evil.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn rotating_the_admin_token_replaces_it_at_once_and_keeps_the_callers_session() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let no_redirect = no_redirect();
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let (_, v) = gw
            .admin_call(Method::POST, "/admin/login-links", None)
            .await;
        let r = no_redirect
            .get(v["url"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        let cookie = r.headers()["set-cookie"].to_str().unwrap();
        sessions.push(cookie.split(';').next().unwrap().to_owned());
    }
    let (_, unused) = gw
        .admin_call(Method::POST, "/admin/login-links", None)
        .await;
    let as_session = |s: &str, method: Method, path: &str| {
        no_redirect
            .request(method, format!("{}{path}", gw.admin))
            .header("cookie", s)
            .send()
    };

    // The dashboard (first session) rotates.
    let r = as_session(&sessions[0], Method::POST, "/admin/token/rotate")
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let new = v["token"].as_str().unwrap().to_owned();
    assert!(new.starts_with("adm_") && new != gw.token, "{v}");
    assert_eq!(
        v["sessions_ended"], 3,
        "the other session, the unused link and the one `serve` printed: {v}"
    );

    let file = gw.path().join("admin-token");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), new);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let call = |token: &str| {
        gw.http
            .get(format!("{}/admin/keys", gw.admin))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(call(&gw.token).await.unwrap().status(), 401, "old token");
    assert_eq!(call(&new).await.unwrap().status(), 200, "new token");
    let own = as_session(&sessions[0], Method::GET, "/admin/keys")
        .await
        .unwrap();
    assert_eq!(own.status(), 200, "the caller stays signed in");
    let other = as_session(&sessions[1], Method::GET, "/admin/keys")
        .await
        .unwrap();
    assert_eq!(other.status(), 401, "other sessions end");
    let link = no_redirect
        .get(unused["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(link.status(), 401, "links issued before stop working");

    // The CLI reads the new file.
    let out = std::process::Command::new(common::bin())
        .arg("--data-dir")
        .arg(gw.path())
        .args(["keys", "list", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let audit = gw
        .http
        .get(format!("{}/admin/audit", gw.admin))
        .bearer_auth(&new)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&audit).unwrap();
    let entry = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "admin_token.rotate")
        .expect("rotation audited");
    assert_eq!(entry["actor"], "dashboard");
    assert!(
        !audit.contains(&new) && !audit.contains(&gw.token),
        "no token in the audit log"
    );
    assert!(
        common::files_containing(gw.path(), new.as_bytes()).len() == 1,
        "only the token file"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_edits_never_undo_a_revocation() {
    let gw = Gateway::start(&config_with(None, "")).await;
    for round in 0..8 {
        let (id, key) = gw.create_key(json!({"name": format!("k{round}")})).await;
        let path = format!("/admin/keys/{id}");
        let renames = (0..5)
            .map(|i| gw.admin_call(Method::PATCH, &path, Some(json!({"name": format!("n{i}")}))));
        let revoke_path = format!("{path}/revoke");
        let revoke = gw.admin_call(Method::POST, &revoke_path, None);
        let (renamed, (s, _)) = tokio::join!(futures_util::future::join_all(renames), revoke);
        assert!(renamed.iter().all(|(s, _)| *s == 200) && s == 200);
        let (_, v) = gw.admin_call(Method::GET, &path, None).await;
        assert_eq!(v["status"], "revoked", "round {round}: {v}");
        let r = gw
            .http
            .get(format!("{}/v1/models", gw.api))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "round {round}");
    }
}

/// A change whose caller gives up while it waits on the store still takes
/// effect in full: committed and live, not committed and forgotten.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_whose_caller_leaves_still_applies_live() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let (id, key) = gw.create_key(json!({"name": "leaver"})).await;
    // Hold SQLite's write lock so the revocation waits on its commit.
    let db = rusqlite::Connection::open(gw.path().join("gateway.db")).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    let gone = gw
        .http
        .post(format!("{}/admin/keys/{id}/revoke", gw.admin))
        .bearer_auth(&gw.token)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(gone.is_err(), "the call should have timed out: {gone:?}");
    db.execute_batch("COMMIT").unwrap();
    let models = format!("{}/v1/models", gw.api);
    let mut status = 0;
    for _ in 0..50 {
        let r = gw.http.get(&models).bearer_auth(&key).send().await.unwrap();
        status = r.status().as_u16();
        if status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 401, "the revoked key still works");
    let (_, v) = gw
        .admin_call(Method::GET, &format!("/admin/keys/{id}"), None)
        .await;
    assert_eq!(v["status"], "revoked", "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_range_times_and_domains_are_refused_not_stored() {
    let mut gw = Gateway::start(&config_with(None, "")).await;
    for body in [
        json!({"name": "a", "expires_in": "10000y"}),
        json!({"name": "a", "expires_in": "18446744073709551615s"}),
        // Full-width ':' '/' '@' '*' that IDNA turns into refused characters.
        json!({"name": "a", "allowed_domains": ["a\u{ff1a}b.com"]}),
        json!({"name": "a", "allowed_domains": ["a\u{ff0f}b.com"]}),
        json!({"name": "a", "allowed_domains": ["\u{ff0a}.example.com"]}),
    ] {
        let (s, v) = gw.admin_call(Method::POST, "/admin/keys", Some(body)).await;
        assert_eq!(s, 400, "{v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    }
    let (id, _) = gw
        .create_key(json!({"name": "far", "expires_at": "9999-12-31T23:59:59Z"}))
        .await;
    let (s, v) = gw
        .admin_call(
            Method::POST,
            &format!("/admin/keys/{id}/rotate"),
            Some(json!({"grace": "10000y"})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    // What was stored loads again.
    gw.terminate();
    let dir = gw.take_dir();
    let gw = Gateway::start_in(dir, &config_with(None, ""), &[]).await;
    let (s, v) = gw
        .admin_call(Method::GET, &format!("/admin/keys/{id}"), None)
        .await;
    assert_eq!(
        (s, v["expires_at"].as_str()),
        (200, Some("9999-12-31T23:59:59Z")),
        "{v}"
    );
}

/// A client that stalls in the middle of a change's body does not hold up
/// other changes (it held the one-at-a-time lock while its body trickled).
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_admin_body_does_not_block_other_changes() {
    use tokio::io::AsyncWriteExt;
    let gw = Gateway::start(&config_with(None, "")).await;
    let addr = gw.admin.trim_start_matches("http://").to_owned();
    let mut stalled = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /admin/tiers HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{",
        gw.token
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let created = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        gw.create_key(json!({"name": "while-another-stalls"})),
    )
    .await;
    assert!(
        created.is_ok(),
        "a key was created while another change stalled"
    );
    drop(stalled);
}

/// Opened from another machine (`admin_allow_remote`), the dashboard's own
/// origin is the address it was opened at: its changes are not refused as
/// cross-site, another site's still are, and a sign-in link names an
/// address a browser can open.
#[tokio::test(flavor = "multi_thread")]
async fn a_remote_dashboard_is_its_own_origin() {
    let gw = Gateway::start(
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"0.0.0.0:0\"\nadmin_allow_remote = true\n",
    )
    .await;
    let port = gw.admin.rsplit(':').next().unwrap().to_owned();
    let at = format!("192.0.2.2:{port}");
    let call = |origin: String| {
        gw.http
            .post(format!("{}/admin/login-links", gw.admin))
            .bearer_auth(&gw.token)
            .header("host", &at)
            .header("origin", origin)
            .send()
    };
    let r = call(format!("http://{at}")).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("http://127.0.0.1:{port}/login?code=")),
        "{v}"
    );
    let r = call(format!("http://attacker.example:{port}"))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}
