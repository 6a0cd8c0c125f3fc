//! The status page driven by real health data: an upstream outage opens an
//! incident and flips its component, recovery resolves it; `summary.json`
//! has Statuspage's shape; maintenance; subscribers get signed webhooks and
//! e-mail through a real SMTP server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use common::sinks::{SmtpSink, WebhookSink};
use common::{config_with, Gateway, MockUpstream};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;

const FAST: &str =
    "[health]\ninterval = \"100ms\"\ntimeout = \"1s\"\nfailure_threshold = 2\nopen_for = \"1h\"\n\
                    [status]\nsample_interval = \"200ms\"\n";

async fn summary(gw: &Gateway) -> Value {
    let resp = gw
        .http
        .get(format!("{}/status/summary.json", gw.api))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Polls `f` until it returns `Some`, for up to ten seconds.
async fn eventually<T, F: Future<Output = Option<T>>>(what: &str, mut f: impl FnMut() -> F) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn component<'a>(s: &'a Value, id: &str) -> &'a Value {
    s["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no component {id} in {s}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_opens_an_incident_and_recovery_resolves_it() {
    let mut up = MockUpstream::start().await;
    let gw = Gateway::start(&config_with(Some(&up), FAST)).await;

    let s = eventually("a first sample", || async {
        let s = summary(&gw).await;
        (s["components"].as_array().unwrap().len() == 3).then_some(s)
    })
    .await;
    assert_eq!(component(&s, "cfg_mock")["status"], "operational");
    assert_eq!(s["status"]["indicator"], "none", "{s}");

    up.stop();
    let s = eventually("the outage", || async {
        let s = summary(&gw).await;
        (s["incidents"].as_array().unwrap().len() == 1).then_some(s)
    })
    .await;
    assert_eq!(component(&s, "cfg_mock")["status"], "major_outage");
    assert_eq!(component(&s, "gateway")["status"], "operational");
    assert_eq!(
        s["status"]["indicator"], "critical",
        "every upstream is down: {s}"
    );
    let incident = &s["incidents"][0];
    assert_eq!(incident["status"], "investigating");
    assert_eq!(incident["components"][0]["id"], "cfg_mock");
    let page = gw
        .http
        .get(format!("{}/status", gw.api))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Active incidents") && page.contains("Major outage"),
        "{page}"
    );
    assert!(!page.contains("<script"), "no scripts on the page");

    up.restart().await;
    let s = eventually("the recovery", || async {
        let s = summary(&gw).await;
        s["incidents"].as_array().unwrap().is_empty().then_some(s)
    })
    .await;
    assert_eq!(component(&s, "cfg_mock")["status"], "operational");
    let (_, list) = gw.admin_call(Method::GET, "/admin/incidents", None).await;
    let i = &list["data"][0];
    assert_eq!(i["status"], "resolved", "{list}");
    assert!(i["resolved_at"].is_i64());
    assert_eq!(i["updates"].as_array().unwrap().len(), 2, "{i}");

    // The history shows it, and uptime was recorded for every component.
    let page = gw
        .http
        .get(format!("{}/status", gw.api))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Past incidents") && page.contains("mock is unavailable"));
    let (_, uptime) = gw
        .admin_call(Method::GET, "/admin/status/uptime", None)
        .await;
    let mock = uptime["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "cfg_mock")
        .unwrap();
    let today = &mock["days"][0];
    assert!(today["major"].as_u64().unwrap() >= 1, "{uptime}");
    assert!(today["operational"].as_u64().unwrap() >= 1, "{uptime}");
    assert!(mock["uptime"].as_f64().unwrap() < 1.0);

    // A second outage opens a new incident; resolved by hand while the
    // outage lasts, it is not reopened.
    up.stop();
    let s = eventually("the second outage", || async {
        let s = summary(&gw).await;
        (s["incidents"].as_array().unwrap().len() == 1).then_some(s)
    })
    .await;
    let id = s["incidents"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = gw
        .admin_call(
            Method::POST,
            &format!("/admin/incidents/{id}/updates"),
            Some(json!({"status": "resolved", "body": "Known; the host is being replaced."})),
        )
        .await;
    assert_eq!(status, 201);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let s = summary(&gw).await;
    assert_eq!(component(&s, "cfg_mock")["status"], "major_outage");
    assert!(s["incidents"].as_array().unwrap().is_empty(), "{s}");
}

fn has_keys(v: &Value, keys: &[&str]) {
    for k in keys {
        assert!(v.get(*k).is_some(), "missing {k} in {v}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn summary_json_has_the_statuspage_shape_and_maintenance_shows() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config_with(Some(&up), FAST)).await;
    eventually("a first sample", || async {
        (summary(&gw).await["components"].as_array().unwrap().len() == 3).then_some(())
    })
    .await;

    let (status, inc) = gw
        .admin_call(
            Method::POST,
            "/admin/incidents",
            Some(json!({"name": "Slow answers", "impact": "minor", "components": ["cfg_mock"], "body": "Looking into it."})),
        )
        .await;
    assert_eq!(status, 201, "{inc}");
    let (status, v) = gw
        .admin_call(
            Method::POST,
            "/admin/incidents",
            Some(json!({"name": "Not an incident", "impact": "maintenance", "body": "x"})),
        )
        .await;
    assert_eq!(
        (status, v["error"]["param"].as_str()),
        (400, Some("impact")),
        "{v}"
    );
    let now = std::time::SystemTime::now();
    let rfc = |d: Duration| humantime::format_rfc3339_seconds(now + d).to_string();
    let (status, m) = gw
        .admin_call(
            Method::POST,
            "/admin/maintenances",
            Some(json!({"name": "Upgrade", "body": "New model weights.", "components": ["cfg_mock"],
                        "scheduled_for": rfc(Duration::from_secs(3600)), "scheduled_until": rfc(Duration::from_secs(7200))})),
        )
        .await;
    assert_eq!(status, 201, "{m}");

    let s = summary(&gw).await;
    has_keys(
        &s,
        &[
            "page",
            "status",
            "components",
            "incidents",
            "scheduled_maintenances",
        ],
    );
    has_keys(
        &s["page"],
        &["id", "name", "url", "time_zone", "updated_at"],
    );
    assert!(["none", "minor", "major", "critical", "maintenance"]
        .contains(&s["status"]["indicator"].as_str().unwrap()));
    assert!(s["status"]["description"].is_string());
    for c in s["components"].as_array().unwrap() {
        has_keys(
            c,
            &[
                "id",
                "name",
                "status",
                "created_at",
                "updated_at",
                "position",
                "description",
                "showcase",
                "start_date",
                "group_id",
                "page_id",
                "group",
                "only_show_if_degraded",
            ],
        );
        assert!([
            "operational",
            "degraded_performance",
            "partial_outage",
            "major_outage",
            "under_maintenance"
        ]
        .contains(&c["status"].as_str().unwrap()));
        assert!(c.get("health").is_none(), "no internals on the public page");
    }
    let i = &s["incidents"][0];
    has_keys(
        i,
        &[
            "id",
            "name",
            "status",
            "created_at",
            "updated_at",
            "monitoring_at",
            "resolved_at",
            "impact",
            "shortlink",
            "started_at",
            "page_id",
            "incident_updates",
            "components",
        ],
    );
    assert_eq!(i["impact"], "minor");
    has_keys(
        &i["incident_updates"][0],
        &[
            "id",
            "status",
            "body",
            "incident_id",
            "created_at",
            "updated_at",
            "display_at",
        ],
    );
    assert_eq!(
        s["status"]["indicator"], "minor",
        "an open incident's impact shows"
    );
    let sm = &s["scheduled_maintenances"][0];
    has_keys(
        sm,
        &[
            "id",
            "name",
            "status",
            "scheduled_for",
            "scheduled_until",
            "impact",
            "incident_updates",
            "components",
        ],
    );
    assert_eq!(sm["status"], "scheduled");
    assert_eq!(sm["impact"], "maintenance");

    // Starting the maintenance puts its component under maintenance.
    let id = m["id"].as_str().unwrap();
    let (status, v) = gw
        .admin_call(
            Method::PATCH,
            &format!("/admin/maintenances/{id}"),
            Some(json!({"status": "in_progress"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    eventually("maintenance on the page", || async {
        let s = summary(&gw).await;
        (component(&s, "cfg_mock")["status"] == "under_maintenance").then_some(())
    })
    .await;
    // Once completed, a window is over: it cannot start again.
    for (change, want) in [("completed", 200), ("in_progress", 400)] {
        let (status, v) = gw
            .admin_call(
                Method::PATCH,
                &format!("/admin/maintenances/{id}"),
                Some(json!({"status": change})),
            )
            .await;
        assert_eq!(status, want, "{change}: {v}");
    }
    // A window on an upstream deleted since can still be completed.
    let (status, u) = gw
        .admin_call(
            Method::POST,
            "/admin/upstreams",
            Some(json!({"name": "brief", "base_url": up.base_url(), "models": ["x"]})),
        )
        .await;
    assert_eq!(status, 201, "{u}");
    let uid = u["id"].as_str().unwrap();
    eventually("the new upstream's component", || async {
        let (_, v) = gw.admin_call(Method::GET, "/admin/status", None).await;
        v.to_string().contains(uid).then_some(())
    })
    .await;
    let (status, w) = gw
        .admin_call(
            Method::POST,
            "/admin/maintenances",
            Some(json!({"name": "Brief", "body": "", "components": [uid],
                        "scheduled_for": rfc(Duration::from_secs(3600)), "scheduled_until": rfc(Duration::from_secs(7200))})),
        )
        .await;
    assert_eq!(status, 201, "{w}");
    let (status, _) = gw
        .admin_call(Method::DELETE, &format!("/admin/upstreams/{uid}"), None)
        .await;
    assert_eq!(status, 204);
    let (status, v) = gw
        .admin_call(
            Method::PATCH,
            &format!("/admin/maintenances/{}", w["id"].as_str().unwrap()),
            Some(json!({"status": "completed"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");

    // Resolving the incident, then hiding the page.
    let iid = inc["id"].as_str().unwrap();
    let (status, v) = gw
        .admin_call(
            Method::POST,
            &format!("/admin/incidents/{iid}/updates"),
            Some(json!({"status": "resolved", "body": "Fixed."})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    // Only this one: on a loaded machine a probe can time out and open an
    // automatic incident of its own (CI, session 16).
    let open = summary(&gw).await["incidents"].clone();
    assert!(
        !open.as_array().unwrap().iter().any(|i| i["id"] == iid),
        "a resolved incident is not listed: {open}"
    );
    let (_, audit) = gw
        .admin_call(Method::GET, "/admin/audit?limit=10", None)
        .await;
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "incident.create",
        "incident.update",
        "maintenance.create",
        "maintenance.update",
    ] {
        assert!(actions.contains(&a), "{a} not audited: {actions:?}");
    }
    let (status, _) = gw
        .admin_call(
            Method::PATCH,
            "/admin/settings",
            Some(json!({"status": {"public": false}})),
        )
        .await;
    assert_eq!(status, 200);
    let resp = gw
        .http
        .get(format!("{}/status", gw.api))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = gw
        .http
        .get(format!("{}/status/summary.json", gw.api))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let (status, _) = gw.admin_call(Method::GET, "/admin/status", None).await;
    assert_eq!(status, 200, "admins still see it");
}

#[tokio::test(flavor = "multi_thread")]
async fn subscribers_get_a_signed_webhook_and_an_email() {
    let smtp = SmtpSink::start().await;
    let hook = WebhookSink::start(1).await;
    let cfg = format!(
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
         [status]\nsample_interval = \"200ms\"\n\
         [notify]\nattempts = 3\nretry_base = \"200ms\"\n\
         [notify.smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\nfrom = \"Status <status@example.com>\"\n",
        smtp.port
    );
    let gw = Gateway::start(&cfg).await;
    let (status, sub) = gw
        .admin_call(
            Method::POST,
            "/admin/status/subscribers",
            Some(json!({"kind": "webhook", "target": hook.url})),
        )
        .await;
    assert_eq!(status, 201, "{sub}");
    let secret = sub["secret"].as_str().unwrap().to_owned();
    let (status, _) = gw
        .admin_call(
            Method::POST,
            "/admin/status/subscribers",
            Some(json!({"kind": "email", "target": "ops@example.com"})),
        )
        .await;
    assert_eq!(status, 201);
    let (_, list) = gw
        .admin_call(Method::GET, "/admin/status/subscribers", None)
        .await;
    assert!(
        !list.to_string().contains(&secret),
        "the secret is shown once only"
    );

    let (status, _) = gw
        .admin_call(Method::POST, "/admin/incidents",
                    Some(json!({"name": "Elevated errors", "impact": "major", "components": ["gateway"], "body": "We see 5xx."})))
        .await;
    assert_eq!(status, 201);

    // The first delivery was refused; the retry is signed and verifies.
    let d = eventually("the webhook retry", || async {
        hook.deliveries().into_iter().find(|d| d.answered == 204)
    })
    .await;
    assert_eq!(hook.deliveries().len(), 2, "refused once, then delivered");
    let h = |k: &str| d.headers[k].to_str().unwrap().to_owned();
    assert_eq!(h("x-assisters-event"), "incident.created");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{}.", h("x-assisters-timestamp")).as_bytes());
    mac.update(&d.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(h("x-assisters-signature"), expected, "the HMAC verifies");
    let mut wrong = Hmac::<Sha256>::new_from_slice(b"another secret").unwrap();
    wrong.update(format!("{}.", h("x-assisters-timestamp")).as_bytes());
    wrong.update(&d.body);
    assert_ne!(
        h("x-assisters-signature"),
        format!("sha256={}", hex::encode(wrong.finalize().into_bytes()))
    );
    let body: Value = serde_json::from_slice(&d.body).unwrap();
    assert_eq!(body["event"], "incident.created");
    assert_eq!(body["incident"]["name"], "Elevated errors");

    let mail = eventually("the e-mail", || async {
        smtp.mails.lock().first().cloned()
    })
    .await;
    assert_eq!(mail.to, ["<ops@example.com>"]);
    assert!(mail.from.contains("status@example.com"));
    assert!(
        mail.data
            .contains("Subject: [Assisters Gateway] New incident: Elevated errors"),
        "{}",
        mail.data
    );
    assert!(mail.data.contains("We see 5xx."), "{}", mail.data);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_opens_and_resolves_an_incident() {
    let gw = Gateway::start(&config_with(None, FAST)).await;
    eventually("a first sample", || async {
        (summary(&gw).await["components"].as_array().unwrap().len() == 2).then_some(())
    })
    .await;
    let run = |args: &[&str]| {
        let out = gw.cli(args, &[]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {}{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let opened = run(&[
        "incidents",
        "open",
        "--name",
        "Store is slow",
        "--impact",
        "major",
        "--component",
        "store",
        "--body",
        "Checking the disk.",
    ]);
    let id = opened
        .trim()
        .trim_start_matches("Opened incident ")
        .trim_end_matches('.')
        .to_owned();
    assert!(id.starts_with("inc_"), "{opened}");
    assert!(run(&["status"]).contains("Partial System Outage"));
    run(&["incidents", "resolve", &id]);
    let list: Value = serde_json::from_str(&run(&["incidents", "list", "--json"])).unwrap();
    assert_eq!(list["data"][0]["status"], "resolved");
    assert!(run(&["tls", "show"]).contains("plain HTTP"));
    let bad = gw.cli(
        &[
            "incidents",
            "update",
            &id,
            "--status",
            "fixed",
            "--body",
            "x",
        ],
        &[],
    );
    assert!(!bad.status.success(), "an unknown status is refused");
}

/// A restart in the middle of an outage claims no recovery (breakers start
/// closed, so the upstream looked healthy until its first probe: the open
/// incident was resolved and a new one opened), and resolving an incident
/// twice adds nothing to its timeline.
#[tokio::test(flavor = "multi_thread")]
async fn a_restart_mid_outage_claims_no_recovery() {
    let mut up = MockUpstream::start().await;
    let cfg = config_with(Some(&up), FAST);
    let mut gw = Gateway::start(&cfg).await;
    up.stop();
    let s = eventually("the outage", || async {
        let s = summary(&gw).await;
        (s["incidents"].as_array().unwrap().len() == 1).then_some(s)
    })
    .await;
    let id = s["incidents"][0]["id"].as_str().unwrap().to_owned();
    gw.terminate();
    let gw = Gateway::start_in(gw.take_dir(), &cfg, &[]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, i) = gw
        .admin_call(Method::GET, &format!("/admin/incidents/{id}"), None)
        .await;
    assert_eq!(i["status"], "investigating", "{i}");
    assert_eq!(i["updates"].as_array().unwrap().len(), 1, "{i}");
    let (_, list) = gw.admin_call(Method::GET, "/admin/incidents", None).await;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        1,
        "no second incident: {list}"
    );

    for _ in 0..2 {
        let (status, v) = gw
            .admin_call(
                Method::POST,
                &format!("/admin/incidents/{id}/updates"),
                Some(json!({"status": "resolved", "body": "Fixed."})),
            )
            .await;
        assert!(status < 300, "{v}");
    }
    let (_, i) = gw
        .admin_call(Method::GET, &format!("/admin/incidents/{id}"), None)
        .await;
    assert_eq!(
        i["updates"].as_array().unwrap().len(),
        2,
        "one resolution: {i}"
    );

    // Resolved by hand, it stays so through a restart while the outage
    // lasts (it reopened: the choice was kept in memory only).
    let mut gw = gw;
    gw.terminate();
    let gw = Gateway::start_in(gw.take_dir(), &cfg, &[]).await;
    eventually("the outage seen again", || async {
        let s = summary(&gw).await;
        let down = |c: &Value| c["id"] == "cfg_mock" && c["status"] == "major_outage";
        s["components"]
            .as_array()
            .unwrap()
            .iter()
            .any(down)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, list) = gw.admin_call(Method::GET, "/admin/incidents", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["data"][0]["status"], "resolved", "{list}");
    // Seen up, the component is forgotten: the next outage opens one.
    up.restart().await;
    eventually("the recovery", || async {
        let s = summary(&gw).await;
        (component(&s, "cfg_mock")["status"] == "operational").then_some(())
    })
    .await;
    up.stop();
    eventually("a new incident", || async {
        let (_, list) = gw.admin_call(Method::GET, "/admin/incidents", None).await;
        (list["data"].as_array().unwrap().len() == 2).then_some(())
    })
    .await;
}

/// The automatic incident of an upstream deleted mid-outage is resolved
/// (it stayed open, and the page in outage, for good), and the page never
/// shows an internal id for a component that is gone.
#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_upstreams_incident_is_resolved() {
    let mut up = MockUpstream::start().await;
    let gw = Gateway::start(&config_with(None, FAST)).await;
    let (s, v) = gw
        .admin_call(
            Method::POST,
            "/admin/upstreams",
            Some(json!({"name": "gamma", "base_url": up.base_url(), "models": ["m3"]})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let uid = v["id"].as_str().unwrap().to_owned();
    up.stop();
    eventually("the outage", || async {
        let s = summary(&gw).await;
        (s["incidents"].as_array().unwrap().len() == 1).then_some(())
    })
    .await;
    let (s, _) = gw
        .admin_call(Method::DELETE, &format!("/admin/upstreams/{uid}"), None)
        .await;
    assert_eq!(s, 204);
    let s = eventually("the resolution", || async {
        let s = summary(&gw).await;
        s["incidents"].as_array().unwrap().is_empty().then_some(s)
    })
    .await;
    assert_eq!(s["status"]["indicator"], "none", "{s}");
    let page = gw
        .http
        .get(format!("{}/status", gw.api))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains(&uid), "no internal ids on the page");
}

/// An upstream added a moment ago can be named at once (components were
/// checked against the last sample, up to `sample_interval` old).
#[tokio::test(flavor = "multi_thread")]
async fn a_new_upstream_can_get_maintenance_at_once() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config_with(None, "[status]\nsample_interval = \"1h\"\n")).await;
    eventually("a first sample", || async {
        (summary(&gw).await["components"].as_array().unwrap().len() == 2).then_some(())
    })
    .await;
    let (s, v) = gw
        .admin_call(
            Method::POST,
            "/admin/upstreams",
            Some(json!({"name": "fresh", "base_url": up.base_url(), "models": ["mock"]})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let uid = v["id"].as_str().unwrap();
    let (s, v) = gw
        .admin_call(
            Method::POST,
            "/admin/maintenances",
            Some(json!({"name": "Move", "body": "", "components": [uid],
                        "scheduled_for": "2099-01-01T00:00:00Z", "scheduled_until": "2099-01-01T01:00:00Z"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = gw
        .admin_call(
            Method::POST,
            "/admin/maintenances",
            Some(json!({"name": "Nope", "body": "", "components": ["upst_nope"],
                        "scheduled_for": "2099-01-01T00:00:00Z", "scheduled_until": "2099-01-01T01:00:00Z"})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["param"], "components");
}

/// Times take an offset (and need a zone); a window wholly past is refused;
/// a webhook URL may carry a query string.
#[tokio::test(flavor = "multi_thread")]
async fn maintenance_times_and_webhook_urls() {
    // Scheduled the moment the gateway answers: components are known from
    // the start, not from the first status sample.
    let gw = Gateway::start(&config_with(None, "")).await;
    let window = |from: &str, until: &str| {
        json!({"name": "Upgrade", "body": "", "components": ["gateway"],
               "scheduled_for": from, "scheduled_until": until})
    };
    let (s, v) = gw
        .admin_call(
            Method::POST,
            "/admin/maintenances",
            Some(window(
                "2099-01-31T04:00:00+02:00",
                "2099-01-31T05:00:00+02:00",
            )),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (_, z) = gw
        .admin_call(
            Method::POST,
            "/admin/maintenances",
            Some(window("2099-01-31T02:00:00Z", "2099-01-31T03:00:00Z")),
        )
        .await;
    assert_eq!(
        v["scheduled_for"], z["scheduled_for"],
        "+02:00 is two hours ahead of UTC"
    );
    for (from, until, param) in [
        (
            "2099-01-31T02:00:00",
            "2099-01-31T03:00:00Z",
            "scheduled_for",
        ),
        (
            "2020-01-31T02:00:00Z",
            "2020-01-31T03:00:00Z",
            "scheduled_until",
        ),
    ] {
        let (s, v) = gw
            .admin_call(
                Method::POST,
                "/admin/maintenances",
                Some(window(from, until)),
            )
            .await;
        assert_eq!((s, v["error"]["param"].as_str()), (400, Some(param)), "{v}");
    }
    let (s, v) = gw
        .admin_call(
            Method::POST,
            "/admin/status/subscribers",
            Some(json!({"kind": "webhook", "target": "http://127.0.0.1:9/hook?token=abc"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
}

/// A window started by hand shows at once, not at the next sample.
#[tokio::test(flavor = "multi_thread")]
async fn a_window_started_by_hand_shows_at_once() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config_with(
        Some(&up),
        "[status]\nsample_interval = \"1h\"\n",
    ))
    .await;
    eventually("a first sample", || async {
        (summary(&gw).await["components"].as_array().unwrap().len() == 3).then_some(())
    })
    .await;
    let (s, m) = gw
        .admin_call(
            Method::POST,
            "/admin/maintenances",
            Some(json!({"name": "Now", "body": "", "components": ["cfg_mock"],
                        "scheduled_for": "2099-01-01T00:00:00Z", "scheduled_until": "2099-01-01T01:00:00Z"})),
        )
        .await;
    assert_eq!(s, 201, "{m}");
    let id = m["id"].as_str().unwrap();
    let (s, v) = gw
        .admin_call(
            Method::PATCH,
            &format!("/admin/maintenances/{id}"),
            Some(json!({"status": "in_progress"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    eventually("maintenance on the page", || async {
        let s = summary(&gw).await;
        (component(&s, "cfg_mock")["status"] == "under_maintenance").then_some(())
    })
    .await;
}

/// The usual way an upstream fails (most requests failing while its breaker
/// is still closed, a partial outage, then the breaker opens) opens an
/// incident: a partial outage on the way had counted as "down already".
#[tokio::test(flavor = "multi_thread")]
async fn an_outage_through_a_partial_one_opens_an_incident() {
    let up = MockUpstream::start().await;
    let cfg = config_with(
        Some(&up),
        "[health]\ninterval = \"1h\"\nfailure_threshold = 3\nopen_for = \"1h\"\n\
         [status]\nsample_interval = \"200ms\"\n",
    );
    let gw = Gateway::start(&cfg).await;
    let (_, key) = gw.create_key(json!({"name": "k", "tier": "startup"})).await;
    let chat = json!({"model": "mock", "messages": [{"role": "user", "content": "hi"}]});
    for _ in 0..2 {
        assert_eq!(
            gw.post(&key, "/v1/chat/completions", chat.clone())
                .await
                .status(),
            200
        );
    }
    up.set_failing(true);
    // Failures a sample apart: the samples between see a partial outage
    // (every request failing, the breaker still closed) before the third
    // opens the breaker.
    for _ in 0..3 {
        gw.post(&key, "/v1/chat/completions", chat.clone()).await;
        tokio::time::sleep(Duration::from_millis(450)).await;
    }
    eventually("the incident", || async {
        let s = summary(&gw).await;
        (s["incidents"].as_array().unwrap().len() == 1).then_some(())
    })
    .await;
}
