//! Test harness: the real `assisters` binary on ephemeral ports, and a real
//! upstream HTTP server speaking OpenAI's wire format.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod sinks;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub use upstream::MockUpstream;

pub struct Gateway {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub api: String,
    pub admin: String,
    pub token: String,
    pub http: reqwest::Client,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_assisters")
}

/// Config text with ephemeral ports and, when given, the mock upstream.
pub fn config_with(upstream: Option<&MockUpstream>, extra: &str) -> String {
    let mut c = String::from(
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nshutdown_grace = \"10s\"\n",
    );
    c.push_str(extra);
    if let Some(u) = upstream {
        c.push_str(&format!(
            "\n[[upstreams]]\nname = \"mock\"\nbase_url = \"{}\"\napi_key_env = \"MOCK_UPSTREAM_KEY\"\n",
            u.base_url()
        ));
    }
    c
}

impl Gateway {
    pub async fn start(config: &str) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, config, &[]).await
    }

    pub async fn start_in(dir: tempfile::TempDir, config: &str, env: &[(&str, &str)]) -> Gateway {
        Self::start_wrapped(dir, config, env, &[]).await
    }

    /// Started through `wrapper` (a command that runs the rest of its
    /// arguments, such as `prlimit --nofile=200: --`), which must exec it.
    pub async fn start_wrapped(
        dir: tempfile::TempDir,
        config: &str,
        env: &[(&str, &str)],
        wrapper: &[&str],
    ) -> Gateway {
        let cfg_path = dir.path().join("config.toml");
        std::fs::write(&cfg_path, config).unwrap();
        let _ = std::fs::remove_file(dir.path().join("runtime.json"));
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        cmd.arg("--data-dir")
            .arg(dir.path())
            .arg("serve")
            .arg("--config")
            .arg(&cfg_path)
            .env("MOCK_UPSTREAM_KEY", upstream::UPSTREAM_SECRET)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn assisters");
        let Some(runtime) = wait_for_file(&dir.path().join("runtime.json")).await else {
            // Not left running (holding the test run's stderr open).
            let exited = child.try_wait().ok().flatten();
            let _ = child.kill();
            let _ = child.wait();
            panic!("gateway did not start within 30 s (exited: {exited:?})");
        };
        let token = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
        Gateway {
            child: Some(child),
            api: format!("http://{}", runtime["listen"].as_str().unwrap()),
            admin: format!("http://{}", runtime["admin_listen"].as_str().unwrap()),
            token: token.trim().to_owned(),
            dir,
            http: reqwest::Client::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub async fn admin_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.admin))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// An authenticated `GET` on the admin listener, its response as it came
    /// (for bodies that are not JSON: CSV, metrics, event streams).
    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.admin))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    /// `PATCH /admin/settings` with this merge patch.
    pub async fn patch_settings(&self, patch: Value) -> (u16, Value) {
        self.admin_call(reqwest::Method::PATCH, "/admin/settings", Some(patch))
            .await
    }

    /// Creates a key through the admin API and returns (id, secret).
    pub async fn create_key(&self, body: Value) -> (String, String) {
        let (status, v) = self
            .admin_call(reqwest::Method::POST, "/admin/keys", Some(body))
            .await;
        assert_eq!(status, 201, "{v}");
        (
            v["id"].as_str().unwrap().to_owned(),
            v["key"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn key(&self) -> String {
        self.create_key(json!({"name": "test"})).await.1
    }

    pub async fn post(&self, key: &str, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.api))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        child.wait().unwrap()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Runs the CLI against this gateway's data dir.
    pub fn cli(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let mut cmd = Command::new(bin());
        cmd.arg("--data-dir").arg(self.path()).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    pub fn take_dir(mut self) -> tempfile::TempDir {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let placeholder = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, placeholder)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The JSON in `path` once it is there, or `None` after 30 s.
async fn wait_for_file(path: &PathBuf) -> Option<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                return Some(v);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Collects `data:` payloads of an SSE body.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|ev| ev.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

/// Every file under `dir`, read as bytes, checked for `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            hits.extend(files_containing(&p, needle));
        } else if let Ok(bytes) = std::fs::read(&p) {
            if bytes.windows(needle.len()).any(|w| w == needle) {
                hits.push(p);
            }
        }
    }
    hits
}
