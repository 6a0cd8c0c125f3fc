//! Size of the data dir after one million logged requests, each with a
//! sealed ~600-byte chat body, written through the real writer (group
//! commit, AES-GCM sealing, usage rollups), spread over 20 keys and 3
//! models. Run: `cargo bench --bench logsize [-- COUNT]`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::Instant;

use assisters::config::{Config, Overrides};
use assisters::logs::Draft;
use assisters::{AppState, Server};

const BODY: &str = r#"{"model":"MODEL","messages":[{"role":"system","content":"You are a concise assistant."},{"role":"user","content":"Summarize the following paragraph in one sentence. Performance work on network services is mostly about measurement discipline: fix the workload, pin the processes, warm up, run long enough to see the tail, and compare against a baseline taken on the same machine in the same session. NNNNNNNN"}],"max_tokens":128}"#;

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

#[tokio::main]
async fn main() {
    let count: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let overrides = Overrides {
        data_dir: Some(dir.path().to_owned()),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        admin_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..Overrides::default()
    };
    let config = Config::load(None, &overrides).unwrap();
    let state = AppState::new(config).unwrap();
    let server = Server::start(state.clone()).await.unwrap();
    let models = ["gpt-4o", "gpt-4o-mini", "llama-3.1-70b"];
    let started = Instant::now();
    for i in 0..count {
        let model = models[i % models.len()];
        let mut d = Draft::new(
            format!("req_{i:016}"),
            Some("10.1.2.3".into()),
            Some("https://app.example.com".into()),
        );
        d.record.key_id = Some(format!("key_{:02}", i % 20));
        d.record.model = Some(model.into());
        d.record.upstream = Some("primary".into());
        let body = BODY
            .replace("MODEL", model)
            .replace("NNNNNNNN", &format!("{i:08}"));
        d.record.body = Some(body.into());
        state.logs.submit(d.finish(200, None, Some((90, 40)))).await;
    }
    let submitted = started.elapsed();
    server.shutdown().await;
    let written = started.elapsed();
    let size = dir_size(dir.path());
    println!(
        "{count} records: submitted in {:.1} s, all written in {:.1} s ({:.0} records/s)",
        submitted.as_secs_f64(),
        written.as_secs_f64(),
        count as f64 / written.as_secs_f64()
    );
    println!(
        "data dir: {:.1} MB ({:.0} bytes per record, bodies of ~{} bytes sealed)",
        size as f64 / 1e6,
        size as f64 / count as f64,
        BODY.len()
    );
}
