//! The `assisters` command line: `serve` (ports, config layers, graceful
//! shutdown) and the admin commands that drive a running server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{bin, config_with, Gateway, MockUpstream};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

fn stdout(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_commands_go_through_the_running_server() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let out = stdout(&gw.cli(
        &[
            "keys",
            "create",
            "--name",
            "cli-app",
            "--tier",
            "startup",
            "--env",
            "staging",
            "--expires-in",
            "30d",
            "--json",
        ],
        &[],
    ));
    let created: Value = serde_json::from_str(&out).unwrap();
    let secret = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["tier"], "startup");
    assert_eq!(created["environment"], "staging");
    // Applies live: the running server accepts the key at once.
    let body = json!({"model": "assisters-echo", "messages": []});
    assert_eq!(
        gw.post(&secret, "/v1/chat/completions", body.clone())
            .await
            .status(),
        200
    );

    let list: Value =
        serde_json::from_str(&stdout(&gw.cli(&["keys", "list", "--json"], &[]))).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains(&secret));
    let table = stdout(&gw.cli(&["keys", "list"], &[]));
    assert!(table.contains("cli-app") && table.contains(&id));

    let human = stdout(&gw.cli(&["keys", "create", "--name", "human"], &[]));
    assert!(human.contains("ask_") && human.contains("cannot show it again"));

    stdout(&gw.cli(&["keys", "revoke", &id], &[]));
    assert_eq!(
        gw.post(&secret, "/v1/chat/completions", body)
            .await
            .status(),
        401
    );

    let bad = gw.cli(&["keys", "revoke", "key_missing"], &[]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("No key"));

    let verify = stdout(&gw.cli(&["audit", "verify"], &[]));
    assert!(verify.contains("intact"), "{verify}");
}

#[tokio::test(flavor = "multi_thread")]
async fn upstreams_commands_add_and_list() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config_with(None, "")).await;
    let out = stdout(&gw.cli(
        &[
            "upstreams",
            "add",
            "ollama",
            "--base-url",
            &up.base_url(),
            "--api-key-env",
            "MY_UPSTREAM_KEY",
            "--models",
            "mock,mock-slow",
            "--json",
        ],
        &[("MY_UPSTREAM_KEY", "sk-from-env-123456")],
    ));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["models"], json!(["mock", "mock-slow"]));
    assert_eq!(v["has_api_key"], true);
    let list = stdout(&gw.cli(&["upstreams", "list"], &[]));
    assert!(
        list.contains("ollama") && list.contains("mock,mock-slow") && !list.contains("sk-from-env")
    );
    let key = gw.key().await;
    assert_eq!(
        gw.post(
            &key,
            "/v1/chat/completions",
            json!({"model": "mock", "messages": []})
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        up.last().authorization.as_deref(),
        Some("Bearer sk-from-env-123456")
    );

    let missing = gw.cli(
        &[
            "upstreams",
            "add",
            "x",
            "--base-url",
            "http://127.0.0.1:1/v1",
            "--api-key-env",
            "NOT_SET_ANYWHERE",
        ],
        &[],
    );
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("NOT_SET_ANYWHERE"));
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_without_a_server_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin())
        .arg("--data-dir")
        .arg(dir.path())
        .args(["keys", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("assisters serve"));
}

/// Runs a command that should exit on its own; a server that starts by
/// mistake is killed after 20 s instead of hanging the suite.
fn run_bounded(cmd: &mut std::process::Command) -> std::process::Output {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_rejects_unknown_config_keys_and_bad_values() {
    let dir = tempfile::tempdir().unwrap();
    for (text, needle) in [
        ("listen = \"127.0.0.1:0\"\nlisen = 1\n", "lisen"),
        ("[upstream_defaults]\nconnect_timeout = \"soon\"\n", "soon"),
        ("admin_listen = \"0.0.0.0:0\"\n", "admin_allow_remote"),
    ] {
        let cfg = dir.path().join("c.toml");
        std::fs::write(&cfg, text).unwrap();
        let out = run_bounded(
            std::process::Command::new(bin())
                .arg("--data-dir")
                .arg(dir.path())
                .arg("serve")
                .arg("--config")
                .arg(&cfg),
        );
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{needle}: {err}");
    }
    let out = run_bounded(
        std::process::Command::new(bin())
            .arg("--data-dir")
            .arg(dir.path())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .env("ASSISTERS_NOT_A_SETTING", "1"),
    );
    assert!(
        !out.status.success(),
        "unknown environment keys are rejected too"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn flags_override_the_file_and_addresses_are_published() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "listen = \"127.0.0.1:1\"\nadmin_listen = \"127.0.0.1:2\"\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(bin())
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&cfg)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first_lines = String::new();
    {
        use std::io::BufRead;
        let mut r = std::io::BufReader::new(child.stdout.take().unwrap());
        for _ in 0..3 {
            r.read_line(&mut first_lines).unwrap();
        }
    }
    let runtime: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("runtime.json")).unwrap())
            .unwrap();
    let listen = runtime["listen"].as_str().unwrap();
    assert!(!listen.ends_with(":0") && !listen.ends_with(":1"));
    assert!(first_lines.contains(listen), "printed: {first_lines}");
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_an_in_flight_stream_finish() {
    let up = MockUpstream::start().await;
    let mut gw = Gateway::start(&config_with(Some(&up), "")).await;
    let key = gw.key().await;
    let resp = gw
        .post(
            &key,
            "/v1/chat/completions",
            json!({"model": "mock-gated", "stream": true, "messages": []}),
        )
        .await;
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("first"));

    let pid = gw.child.as_ref().unwrap().id();
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // New connections are refused while the old stream is still served.
    assert!(reqwest::Client::new()
        .get(format!("{}/healthz", gw.api))
        .send()
        .await
        .is_err());
    up.release();
    let mut rest = String::new();
    while let Some(c) = body.next().await {
        rest.push_str(&String::from_utf8_lossy(&c.unwrap()));
    }
    assert!(
        rest.contains("second") && rest.ends_with("data: [DONE]\n\n"),
        "{rest}"
    );
    let status = gw.child.take().unwrap().wait().unwrap();
    assert!(status.success());
    assert!(!gw.path().join("runtime.json").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn tiers_and_key_policy_commands() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let table = stdout(&gw.cli(&["tiers", "list"], &[]));
    assert!(
        table.contains("free") && table.contains("100000") && table.contains("5000000"),
        "{table}"
    );
    stdout(&gw.cli(
        &[
            "tiers",
            "create",
            "team",
            "--rpm",
            "42",
            "--tpm",
            "4200",
            "--max-streams",
            "2",
        ],
        &[],
    ));
    stdout(&gw.cli(&["tiers", "update", "team", "--rpm", "43"], &[]));
    let tiers: Value =
        serde_json::from_str(&stdout(&gw.cli(&["tiers", "list", "--json"], &[]))).unwrap();
    let team = tiers
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "team")
        .unwrap()
        .clone();
    assert_eq!(
        (
            team["requests_per_min"].as_u64(),
            team["max_concurrent_streams"].as_u64()
        ),
        (Some(43), Some(2))
    );

    let created: Value = serde_json::from_str(&stdout(&gw.cli(
        &[
            "keys",
            "create",
            "--name",
            "web",
            "--tier",
            "team",
            "--allowed-domain",
            "example.com",
            "--allowed-domain",
            "*.example.org",
            "--allowed-ip",
            "127.0.0.1",
            "--json",
        ],
        &[],
    )))
    .unwrap();
    assert_eq!(
        created["allowed_domains"],
        json!(["example.com", "*.example.org"])
    );
    assert_eq!(created["allowed_ips"], json!(["127.0.0.1/32"]));
    let id = created["id"].as_str().unwrap().to_owned();
    // Overrides the CLI has no flags for survive its --rpm.
    let (s, v) = gw
        .admin_call(
            Method::PATCH,
            &format!("/admin/keys/{id}"),
            Some(json!({"overrides": {"tokens_per_min": 7000, "log_bodies": false}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let updated: Value = serde_json::from_str(&stdout(&gw.cli(
        &[
            "keys",
            "update",
            &id,
            "--clear-allowed-domains",
            "--rpm",
            "5",
            "--name",
            "web2",
            "--json",
        ],
        &[],
    )))
    .unwrap();
    assert_eq!(updated["allowed_domains"], json!([]));
    assert_eq!(updated["overrides"]["requests_per_min"], 5);
    assert_eq!(updated["overrides"]["tokens_per_min"], 7000);
    assert_eq!(updated["overrides"]["log_bodies"], false);
    assert_eq!(updated["name"], "web2");
    let got: Value =
        serde_json::from_str(&stdout(&gw.cli(&["keys", "get", &id, "--json"], &[]))).unwrap();
    assert_eq!(
        got["id"],
        id.as_str(),
        "one object, as the API answers: {got}"
    );
    let del = gw.cli(&["tiers", "delete", "team"], &[]);
    assert!(!del.status.success());
    assert!(String::from_utf8_lossy(&del.stderr).contains(&id));

    let rotated = stdout(&gw.cli(&["keys", "rotate", &id, "--grace", "1h"], &[]));
    assert!(
        rotated.contains("ask_") && rotated.contains("keeps working until"),
        "{rotated}"
    );
}

/// A second `serve` on a data dir in use is refused: it took over
/// `runtime.json`, so the CLI's changes went to it and not to the gateway
/// serving the keys.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_server_on_the_same_data_dir_is_refused() {
    let gw = Gateway::start(&config_with(None, "")).await;
    let mut second = tokio::process::Command::new(bin())
        .arg("--data-dir")
        .arg(gw.path())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(20), second.wait())
        .await
        .expect("the second server exits at once")
        .unwrap();
    assert!(!status.success());
    let mut err = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut second.stderr.take().unwrap(), &mut err)
        .await
        .unwrap();
    assert!(err.contains("already serving"), "{err}");
    let listed = gw.cli(&["keys", "list"], &[]);
    assert!(
        listed.status.success(),
        "the first one still answers the CLI"
    );
}
