//! The engine as the desktop app embeds it: `AppState` and `Server` in this
//! process (no binary), the gateway API paused and resumed on the same port
//! while the admin API and dashboard keep answering.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use assisters::{AppState, Config, Server};
use serde_json::{json, Value};

fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::from_toml(
        r#"listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0""#,
    )
    .unwrap();
    c.data_dir = Some(dir.to_path_buf());
    c
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        // A fresh connection per call: a paused listener must refuse it.
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

async fn chat(http: &reqwest::Client, base: &str, key: &str) -> reqwest::Result<u16> {
    let r = http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "assisters-echo", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await?;
    Ok(r.status().as_u16())
}

#[tokio::test]
async fn pausing_closes_only_the_gateway_api_and_resumes_on_the_same_port() {
    let dir = tempfile::tempdir().unwrap();
    let state = AppState::new(config(dir.path())).unwrap();
    let mut server = Server::start(state).await.unwrap();
    let api = format!("http://{}", server.bound.listen);
    let admin = format!("http://{}", server.bound.admin_listen);
    let token = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    let http = client();
    let created: Value = http
        .post(format!("{admin}/admin/keys"))
        .bearer_auth(token.trim())
        .json(&json!({"name": "embedded"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    assert_eq!(chat(&http, &api, &key).await.unwrap(), 200);
    let health = || async {
        let v: Value = http
            .get(format!("{admin}/admin/health"))
            .bearer_auth(token.trim())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v
    };
    let h = health().await;
    assert_eq!(h["serving"], true, "{h}");
    assert_eq!(h["listen"], server.bound.listen.to_string());

    server.pause_api().await;
    // What the dashboard's indicator reads.
    assert_eq!(health().await["serving"], false);
    assert!(!server.api_serving());
    let refused = chat(&http, &api, &key).await;
    assert!(
        refused.as_ref().is_err_and(reqwest::Error::is_connect),
        "{refused:?}"
    );
    // The dashboard's API keeps answering while the gateway is paused.
    let keys = http
        .get(format!("{admin}/admin/keys"))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(keys.status(), 200);

    server.resume_api().await.unwrap();
    assert!(server.api_serving());
    assert_eq!(health().await["serving"], true);
    assert_eq!(chat(&http, &api, &key).await.unwrap(), 200);
    server.shutdown().await;
}
