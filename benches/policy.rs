//! Cost of the policy check per request, in-process: key lookup, the
//! requests/min decision, token counting and the reservation with its
//! settlement, with 1 key and with 10,000 keys; the failover routing and
//! circuit check; then the request-safety scanners' throughput (MB/s) on
//! realistic prompts. Run: `cargo bench --bench policy`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::atomic::AtomicI64;
use std::time::Instant;

use assisters::config::{Config, Overrides};
use assisters::keys::{generate_secret, ApiKey, Environment};
use assisters::AppState;
use axum::http::{header, HeaderMap, HeaderValue};

const PROMPT: &str = r#"{"model":"mock","messages":[{"role":"system","content":"You are a concise assistant."},{"role":"user","content":"Summarize the following paragraph in one sentence. Performance work on network services is mostly about measurement discipline: fix the workload, pin the processes, warm up, run long enough to see the tail, and compare against a baseline taken on the same machine in the same session, because absolute numbers from a shared two-core virtual machine mean very little on their own."}],"max_tokens":128}"#;

fn key(i: usize) -> (ApiKey, String) {
    let s = generate_secret();
    let k = ApiKey {
        id: format!("key_{i}"),
        name: format!("k{i}"),
        hash: s.hash,
        prefix: s.prefix,
        environment: Environment::Prod,
        tier: "huge".into(),
        models: vec![],
        allowed_domains: vec![],
        allowed_ips: vec![],
        overrides: Default::default(),
        replaced_by: None,
        created_at: 0,
        expires_at: None,
        revoked_at: None,
        last_used_at: AtomicI64::new(0),
        last_used_flushed: AtomicI64::new(0),
    };
    (k, s.secret)
}

fn per_op(label: &str, n: usize, f: impl FnMut(usize)) {
    let mut f = f;
    for i in 0..n / 10 {
        f(i);
    }
    let t = Instant::now();
    for i in 0..n {
        f(i);
    }
    println!(
        "{label:<44} {:>8.0} ns",
        t.elapsed().as_nanos() as f64 / n as f64
    );
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(
        None,
        &Overrides {
            data_dir: Some(dir.path().into()),
            ..Overrides::default()
        },
    )
    .unwrap();
    let state = AppState::new(config).unwrap();
    state.limits.set_tiers(vec![assisters::limits::Tier {
        name: "huge".into(),
        requests_per_min: 4_000_000_000,
        tokens_per_min: 4_000_000_000,
        max_concurrent_streams: None,
        daily_token_budget: None,
    }]);
    let mut headers = Vec::new();
    for i in 0..10_000 {
        let (k, secret) = key(i);
        state.keys.put(k);
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {secret}")).unwrap(),
        );
        headers.push(h);
    }
    let n = 200_000;
    for (label, spread) in [("1 key", 1usize), ("10,000 keys", 10_000)] {
        println!("-- {label}");
        per_op("authenticate (SHA-256 + lookup)", n, |i| {
            assisters::keys::auth::authenticate(&state, &headers[i % spread]).unwrap();
        });
        per_op("admit + reserve + settle", n, |i| {
            let k = assisters::keys::auth::authenticate(&state, &headers[i % spread]).unwrap();
            let l = state.limits.limiter(&k);
            l.admit().map_err(|_| ()).unwrap();
            let (r, _) = l.reserve(500, 0).unwrap();
            r.settle(200);
        });
    }
    println!("-- per request body");
    per_op("parse body (serde_json::Map)", n / 4, |_| {
        assisters::proxy::body::parse(PROMPT.as_bytes()).unwrap();
    });
    let parsed = assisters::proxy::body::parse(PROMPT.as_bytes()).unwrap();
    per_op("count prompt tokens (cl100k)", n / 4, |_| {
        parsed.prompt_tokens(assisters::proxy::Endpoint::Chat, &state.tokenizer);
    });
    println!("-- failover");
    let up = |name: &str| {
        std::sync::Arc::new(
            assisters::proxy::upstream::Upstream::new(
                name.into(),
                name.into(),
                &format!("http://{name}/v1"),
                None,
                vec!["mock".into()],
                assisters::proxy::upstream::Source::Admin,
            )
            .unwrap(),
        )
    };
    state.upstreams.replace(vec![up("primary"), up("backup")]);
    let policy = assisters::proxy::failover::policy(&state.settings().health);
    per_op("candidates + circuit check + success", n, |_| {
        let c = state.upstreams.candidates("mock").unwrap();
        assert!(c[0].health.allows(policy));
        c[0].health.success();
    });
    safety(&state);
}

/// A longer (1.4 KB), realistic user turn: prose, a list, code and a pasted error.
const LONG: &str = "I'm migrating our billing service from a cron-based batch job to an event-driven design and I'd like a second opinion before the design review on Thursday.\n\nCurrent state: every night at 02:00 a Python script reads yesterday's usage rows from Postgres, aggregates them per customer, applies the pricing tiers, writes invoices and emails PDFs. It takes about 40 minutes and when it fails halfway we have to kill the process and rerun everything by hand, which sometimes double-charges customers.\n\nProposal:\n1. Each usage event goes to a Kafka topic keyed by customer id.\n2. A consumer keeps a running total per customer and billing period in Redis, with the offset committed only after the Redis write.\n3. At period end, a scheduler emits a close-period event; the invoicing worker reads the totals, applies pricing, writes the invoice idempotently (unique key on customer and period) and then sends the email.\n\nQuestions: is exactly-once realistic here or should we aim for at-least-once with idempotent writes? How do we backfill if the consumer was down for a day? And what would you monitor?\n\nHere is the error from last night's run, for context:\n\nTraceback (most recent call last):\n  File \"billing/run.py\", line 212, in aggregate\n    totals[row.customer_id] += row.quantity * tier.unit_price\nKeyError: 'cus_8812'\n\nThanks! Please answer in English, keep it under 500 words, and ignore the formatting of the traceback above.";

fn mbps(label: &str, text: &str, n: usize, mut f: impl FnMut(&str)) {
    for _ in 0..n / 10 {
        f(text);
    }
    let t = Instant::now();
    for _ in 0..n {
        f(text);
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{label:<44} {:>8.1} MB/s  ({:.1} µs per {} B)",
        (text.len() * n) as f64 / secs / 1e6,
        secs * 1e6 / n as f64,
        text.len()
    );
}

fn safety(state: &AppState) {
    let parsed = assisters::proxy::body::parse(PROMPT.as_bytes()).unwrap();
    let short: String = parsed.doc["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let (Ok(moderator), Ok(detector)) = (
        assisters::safety::moderation::Moderator::new(),
        assisters::safety::injection::Detector::new(),
    ) else {
        panic!("the built-in safety rules do not build");
    };
    for (name, text, n) in [
        ("bench prompt", short.as_str(), 20_000),
        ("long user turn", LONG, 4_000),
    ] {
        println!("-- safety scanners, {name} ({} bytes)", text.len());
        let mut norm = String::new();
        let mut stops = Vec::new();
        mbps("normalise", text, n, |t| {
            assisters::safety::normalize::normalize(t, &mut norm);
        });
        mbps("moderation (normalise + automaton)", text, n, |t| {
            moderator.scan(t);
        });
        mbps("injection (normalise + rules + decoding)", text, n, |t| {
            detector.scan(t);
        });
        // As the gateway runs them: one normalisation shared by both.
        mbps("both, as the gateway runs them", text, n, |t| {
            let signs =
                assisters::safety::normalize::normalize_with_stops(t, &mut norm, &mut stops);
            moderator.scan_readings(t, &norm, &stops);
            detector.scan_normalized(t, &norm, signs);
        });
    }
    println!("-- validation of the bench body");
    let settings = state.settings();
    per_op("schema + limits (jsonschema)", 50_000, |_| {
        let mut p = assisters::proxy::body::parse(PROMPT.as_bytes()).unwrap();
        state
            .validators
            .check(
                assisters::proxy::Endpoint::Chat,
                &mut p.doc,
                &settings.validation,
            )
            .unwrap();
    });
}
