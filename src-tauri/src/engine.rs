//! The embedded gateway: the engine's own `AppState` and `Server` (the same
//! code as `assisters serve`), its API paused and resumed on the same port
//! while the dashboard keeps working, with a cheap health watch that feeds
//! the tray.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use assisters::{AppState, Server};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{watch, Mutex};

/// How often the health watch looks at the running gateway.
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the tray and `gateway_status` show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "detail")]
pub enum Phase {
    Starting,
    Running,
    /// Serving, but something needs attention (the words say what).
    Degraded(String),
    Paused,
    /// Could not start or resume (the words say why).
    Failed(String),
}

impl Phase {
    pub fn label(&self) -> String {
        match self {
            Phase::Starting => "Starting…".to_owned(),
            Phase::Running => "Running".to_owned(),
            Phase::Degraded(why) => format!("Degraded: {why}"),
            Phase::Paused => "Paused".to_owned(),
            Phase::Failed(why) => format!("Stopped: {why}"),
        }
    }

    pub fn is_serving(&self) -> bool {
        matches!(self, Phase::Running | Phase::Degraded(_))
    }
}

/// The gateway as the desktop app runs it.
pub struct Engine {
    state: AppState,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub data_dir: PathBuf,
    server: Mutex<Option<Server>>,
    /// Set by [`Engine::shutdown`]: the state it served is spent (its log
    /// writer taken, its streams cut), so nothing may start on it again.
    closed: std::sync::atomic::AtomicBool,
    phase: watch::Sender<Phase>,
    /// Requests answered in the last minute (while serving).
    per_minute: watch::Sender<Option<u64>>,
}

impl Engine {
    /// Wraps an engine state whose config already names concrete ports (so
    /// pausing and resuming keeps the endpoint URL the same).
    pub fn new(state: AppState) -> Arc<Engine> {
        let (phase, _) = watch::channel(Phase::Starting);
        let (per_minute, _) = watch::channel(None);
        Arc::new(Engine {
            listen: state.config.listen,
            admin_listen: state.config.admin_listen,
            data_dir: state.data_dir.clone(),
            state,
            server: Mutex::new(None),
            closed: Default::default(),
            phase,
            per_minute,
        })
    }

    pub fn phase(&self) -> Phase {
        self.phase.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Phase> {
        self.phase.subscribe()
    }

    pub fn per_minute(&self) -> Option<u64> {
        *self.per_minute.borrow()
    }

    pub fn subscribe_rate(&self) -> watch::Receiver<Option<u64>> {
        self.per_minute.subscribe()
    }

    /// The engine's state, for the desktop's own watchers (notifications).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Requests the gateway has answered since the app started: every API
    /// request (served or refused) leaves one request-log record.
    fn requests_total(&self) -> u64 {
        let c = &self.state.logs.counters;
        c.written.load(Ordering::Relaxed)
            + c.dropped.load(Ordering::Relaxed)
            + c.queued.load(Ordering::Relaxed)
    }

    /// The OpenAI-compatible endpoint clients use.
    pub fn endpoint(&self) -> String {
        format!("http://{}/v1", self.listen)
    }

    /// Where the admin API and the dashboard live.
    pub fn admin_base_url(&self) -> String {
        format!("http://{}", self.admin_listen)
    }

    /// The administrator's token, read from the data dir when asked for (the
    /// engine keeps only its hash).
    pub fn admin_token(&self) -> std::io::Result<String> {
        Ok(std::fs::read_to_string(self.data_dir.join("admin-token"))?
            .trim()
            .to_owned())
    }

    /// Starts serving, or resumes the paused gateway API on the same port;
    /// a no-op when already serving.
    pub async fn start(&self) -> Result<(), String> {
        let mut guard = self.server.lock().await;
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("The app is quitting.".to_owned());
        }
        if guard.as_ref().is_some_and(Server::api_serving) {
            return Ok(());
        }
        self.phase.send_replace(Phase::Starting);
        let started = match guard.as_mut() {
            Some(server) => server.resume_api().await,
            None => Server::start(self.state.clone()).await.map(|server| {
                tracing::info!(listen = %server.bound.listen, admin = %server.bound.admin_listen, "gateway running");
                *guard = Some(server);
            }),
        };
        drop(guard);
        match started {
            Ok(()) => {
                self.phase.send_replace(self.check_health().await);
                Ok(())
            }
            Err(e) => {
                let msg = e.to_string();
                self.phase.send_replace(Phase::Failed(msg.clone()));
                Err(msg)
            }
        }
    }

    /// Pauses the gateway API (in-flight requests finish, bounded by the
    /// engine's shutdown grace). The dashboard and admin API keep answering,
    /// so the window stays usable; keys, settings and ports are kept for
    /// [`Engine::start`].
    pub async fn stop(&self) {
        if let Some(server) = self.server.lock().await.as_mut() {
            server.pause_api().await;
        }
        self.phase.send_replace(Phase::Paused);
    }

    /// Stops serving for good (app exit).
    pub async fn shutdown(&self) {
        let mut guard = self.server.lock().await;
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(server) = guard.take() {
            server.shutdown().await;
        }
    }

    /// Runs forever: while serving, re-checks health and the request rate
    /// and publishes changes.
    pub async fn watch_health(self: Arc<Self>) {
        // (when, requests_total) samples covering the last minute.
        let mut samples: VecDeque<(Instant, u64)> = VecDeque::new();
        samples.push_back((Instant::now(), self.requests_total()));
        loop {
            tokio::time::sleep(HEALTH_INTERVAL).await;
            let now = Instant::now();
            let total = self.requests_total();
            if !self.phase.borrow().is_serving() {
                // Counting starts again from here when serving resumes.
                samples.clear();
                samples.push_back((now, total));
                self.per_minute.send_if_modified(|r| r.take().is_some());
                continue;
            }
            samples.push_back((now, total));
            while samples
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(60))
            {
                samples.pop_front();
            }
            if let Some((_, first)) = samples.front() {
                let rate = Some(total.saturating_sub(*first));
                self.per_minute.send_if_modified(|r| {
                    let changed = *r != rate;
                    *r = rate;
                    changed
                });
            }
            let next = self.check_health().await;
            // Pause may have happened while probing.
            if self
                .server
                .lock()
                .await
                .as_ref()
                .is_some_and(Server::api_serving)
            {
                self.phase.send_if_modified(|p| {
                    if *p != next {
                        *p = next;
                        true
                    } else {
                        false
                    }
                });
            }
        }
    }

    /// Running, or degraded with the reason: the API listener does not
    /// answer `/healthz`, or an upstream serves no model (discovery failing).
    async fn check_health(&self) -> Phase {
        if !healthz(self.listen).await {
            return Phase::Degraded("the gateway API does not answer".to_owned());
        }
        let silent: Vec<String> = self
            .state
            .upstreams
            .list()
            .iter()
            .filter(|u| u.served_models().is_empty())
            .map(|u| u.name.clone())
            .collect();
        match silent.as_slice() {
            [] => Phase::Running,
            [one] => Phase::Degraded(format!("upstream {one} offers no models")),
            many => Phase::Degraded(format!("{} upstreams offer no models", many.len())),
        }
    }
}

/// `GET /healthz` over a plain socket (no HTTP client needed for one line).
async fn healthz(addr: SocketAddr) -> bool {
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(
            format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .ok()?;
        let mut buf = Vec::with_capacity(256);
        s.read_to_end(&mut buf).await.ok()?;
        Some(buf.starts_with(b"HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, probe).await,
        Ok(Some(true))
    )
}

/// Sends one raw HTTP/1.1 request and returns the response head, lowercased.
pub async fn raw_head(addr: SocketAddr, request: String) -> Option<String> {
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(request.as_bytes()).await.ok()?;
        let mut buf = Vec::with_capacity(1024);
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
        Some(text.split("\r\n\r\n").next().unwrap_or_default().to_owned())
    };
    tokio::time::timeout(PROBE_TIMEOUT, probe).await.ok()?
}
