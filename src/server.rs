//! Listeners and lifecycle: bind both ports, publish the bound addresses,
//! serve HTTP/1.1 and HTTP/2 connections, run the background jobs, and shut
//! down gracefully (in-flight requests and streams finish, bounded by
//! `shutdown_grace`; the store is flushed last).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::app::{AppState, StartError};
use crate::config::EdgeConfig;
use crate::edge::conn::{self, is_header_timeout, ConnGate, Tracked};
use crate::edge::idle::{self, Activity, Idle};

/// Where the server actually listens, published in `runtime.json` so the CLI
/// (and tests, with port 0) can find it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Bound {
    #[schema(value_type = String)]
    pub listen: SocketAddr,
    #[schema(value_type = String)]
    pub admin_listen: SocketAddr,
    pub pid: u32,
    pub version: String,
    /// The gateway listener's certificate fingerprint when it serves HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_fingerprint_sha256: Option<String>,
}

impl Bound {
    /// `https` or `http`, for the gateway listener.
    pub fn scheme(&self) -> &'static str {
        if self.tls_fingerprint_sha256.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

pub const RUNTIME_FILE: &str = "runtime.json";
const LAST_USED_FLUSH: Duration = Duration::from_secs(5);
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(60);
const STARTUP_DISCOVERY: Duration = Duration::from_secs(3);

/// A running gateway; dropping it does not stop it, [`Server::shutdown`] does.
pub struct Server {
    pub bound: Bound,
    state: AppState,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    /// The gateway API listener, apart from the rest so it can be paused
    /// while the admin API and dashboard keep answering (the desktop app's
    /// "Pause gateway").
    api: Option<ApiListener>,
    /// The log writer stops last, after every request has finished.
    log_stop: watch::Sender<bool>,
    log_writer: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Binds both listeners and starts serving.
    pub async fn start(state: AppState) -> Result<Server, StartError> {
        crate::edge::conn::raise_fd_limit(state.config.edge.max_connections);
        // Discover models before accepting requests, so a fresh start routes
        // them at once; an unreachable upstream delays start by at most this.
        if tokio::time::timeout(STARTUP_DISCOVERY, state.discover_models())
            .await
            .is_err()
        {
            tracing::warn!("model discovery is slow; continuing in the background");
        }
        let cfg = &state.config;
        let bind = |addr: SocketAddr, what: &'static str| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|e| StartError::Other(format!("cannot listen on {addr} ({what}): {e}")))
        };
        let api = bind(cfg.listen, "gateway API").await?;
        let admin = bind(cfg.admin_listen, "admin API").await?;
        let bound = Bound {
            listen: api
                .local_addr()
                .map_err(|e| StartError::Other(e.to_string()))?,
            admin_listen: admin
                .local_addr()
                .map_err(|e| StartError::Other(e.to_string()))?,
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            tls_fingerprint_sha256: state.tls.as_ref().map(|t| t.info().fingerprint_sha256),
        };
        publish(&state, bound.clone())
            .map_err(|e| StartError::DataDir(state.data_dir.clone(), e))?;

        let (stop, stop_rx) = watch::channel(false);
        let grace = cfg.shutdown_grace;
        let mut tasks = JoinSet::new();
        let api = Some(ApiListener::spawn(&state, api));
        // The admin listener is loopback and trusted: timeouts, no caps.
        tasks.spawn(accept_loop(
            admin,
            crate::admin::router(state.clone()),
            None,
            stop_rx.clone(),
            grace,
            (cfg.edge.clone(), None),
        ));
        if state.tls.is_some() {
            tasks.spawn(tls_reload(state.clone(), stop_rx.clone()));
        }
        tasks.spawn(health_probes(state.clone(), stop_rx.clone()));
        tasks.spawn(status_sampler(state.clone(), stop_rx.clone()));
        if let Some(rx) = state.status.notifier.take_receiver() {
            tasks.spawn(crate::status::notify::run(
                state.clone(),
                rx,
                stop_rx.clone(),
            ));
        }
        tasks.spawn(flush_last_used(state.clone(), stop_rx.clone()));
        tasks.spawn(retention(state.clone(), stop_rx.clone()));
        tasks.spawn(discovery(state.clone(), stop_rx.clone()));
        tasks.spawn({
            let state = state.clone();
            async move { state.telemetry.live.run(stop_rx).await }
        });
        // Finish any re-encryption a restart interrupted.
        state.reseal.start(&state);
        let (log_stop, log_stop_rx) = watch::channel(false);
        let log_writer = state
            .take_log_writer()
            .map(|w| tokio::spawn(w.run(state.clone(), log_stop_rx)));
        Ok(Server {
            bound,
            state,
            stop,
            tasks,
            api,
            log_stop,
            log_writer,
        })
    }

    /// Stops accepting, lets in-flight work finish (bounded), writes the
    /// queued request logs, flushes the store.
    pub async fn shutdown(mut self) {
        tracing::info!("shutting down");
        let began = tokio::time::Instant::now();
        // One grace period for the connections and the streams after them.
        let deadline = began + self.state.config.shutdown_grace;
        if let Some(api) = self.api.take() {
            api.stop().await;
        }
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        // Streams whose clients are gone may still be reading the usage to
        // charge (`usage_drain_timeout`); their records come at their end.
        let relays = &self.state.relays;
        relays.close();
        if tokio::time::timeout_at(deadline, relays.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                streams = relays.len(),
                "shutdown grace period over; cutting the remaining streams"
            );
            self.state.stopping.cancel();
            relays.wait().await;
        }
        let _ = self.log_stop.send(true);
        if let Some(w) = self.log_writer.take() {
            let _ = w.await;
        }
        if let Err(e) = crate::keys::flush_last_used(&self.state).await {
            tracing::warn!(error = %e, "last-used flush failed at shutdown");
        }
        if let Err(e) = self.state.store.flush() {
            tracing::warn!(error = %e, "store flush failed at shutdown");
        }
        let _ = std::fs::remove_file(self.state.data_dir.join(RUNTIME_FILE));
        tracing::info!(took_ms = began.elapsed().as_millis() as u64, "shut down");
    }
}

impl Server {
    /// Whether the gateway API listener is accepting.
    pub fn api_serving(&self) -> bool {
        self.api.is_some()
    }

    /// Closes the gateway API listener (in-flight requests and streams
    /// finish, bounded by `shutdown_grace`); the admin API, the dashboard
    /// and the background jobs keep running.
    pub async fn pause_api(&mut self) {
        if let Some(api) = self.api.take() {
            api.stop().await;
            tracing::info!(listen = %self.bound.listen, "gateway API paused");
        }
    }

    /// Listens again on the same address as before the pause.
    pub async fn resume_api(&mut self) -> Result<(), StartError> {
        if self.api.is_some() {
            return Ok(());
        }
        let addr = self.bound.listen;
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            StartError::Other(format!("cannot listen on {addr} (gateway API): {e}"))
        })?;
        self.api = Some(ApiListener::spawn(&self.state, listener));
        tracing::info!(listen = %addr, "gateway API resumed");
        Ok(())
    }
}

/// The running accept loop of the gateway API and the switch that stops it.
struct ApiListener {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    state: AppState,
}

impl ApiListener {
    fn spawn(state: &AppState, listener: TcpListener) -> ApiListener {
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(
            listener,
            crate::app::gateway_router(state.clone()),
            state.tls.as_ref().map(crate::tls::Tls::acceptor),
            stop_rx,
            state.config.shutdown_grace,
            (state.config.edge.clone(), Some(state.edge.conns.clone())),
        ));
        state.api_serving.store(true, Ordering::Relaxed);
        ApiListener {
            stop,
            task,
            state: state.clone(),
        }
    }

    async fn stop(self) {
        // Said first: from here on the listener accepts nothing new.
        self.state.api_serving.store(false, Ordering::Relaxed);
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Records where the server listens, in memory and in `runtime.json`.
fn publish(state: &AppState, bound: Bound) -> std::io::Result<()> {
    let runtime = serde_json::to_vec_pretty(&bound).unwrap_or_default();
    state.set_bound(bound);
    crate::fsutil::write_private(&state.data_dir.join(RUNTIME_FILE), &runtime)
}

/// After a certificate reload: the new fingerprint goes to `runtime.json`.
pub fn tls_reloaded(state: &AppState) {
    let (Some(mut b), Some(tls)) = (state.bound(), state.tls.as_ref()) else {
        return;
    };
    b.tls_fingerprint_sha256 = Some(tls.info().fingerprint_sha256);
    if let Err(e) = publish(state, b) {
        tracing::warn!(error = %e, "cannot update {RUNTIME_FILE}");
    }
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
    (edge, gate): (EdgeConfig, Option<Arc<ConnGate>>),
) {
    // Draining closes every connection gracefully; connections still open
    // when the grace period ends are cut, and waited for: their requests'
    // records are then written as cut (dropped with the runtime instead,
    // they were lost).
    let drain = CancellationToken::new();
    let cut = CancellationToken::new();
    let conns = TaskTracker::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(edge.header_read_timeout)
        .max_buf_size(edge.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(edge.h2_max_concurrent_streams)
        .initial_stream_window_size(edge.h2_stream_window)
        .initial_connection_window_size(edge.h2_connection_window)
        .max_header_list_size(edge.max_header_bytes as u32);
    let head_timeout = edge.header_read_timeout;
    // Twice the head timeout: a trickled HTTP/1 head meets hyper's own timer
    // (and its 408) first.
    let timers = (head_timeout * 2, edge.h2_idle_timeout);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Typically EMFILE: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let permit = match gate.as_ref().map(|g| g.admit(peer.ip())) {
                    // Over TLS the refusal would be plaintext the client
                    // cannot read, and a handshake per refused connection
                    // is work for whoever floods it: closed unanswered.
                    Some(Err(_)) if tls.is_some() => continue,
                    Some(Err(e)) => {
                        tokio::spawn(conn::refuse(stream, e));
                        continue;
                    }
                    Some(Ok(p)) => Some(p),
                    None => None,
                };
                // A second handle on the socket, to answer 408 after hyper
                // gave up on a trickled request head and dropped its own.
                let Some((stream, spare)) = conn::split_spare(stream) else {
                    continue;
                };
                let (stream, mid_request) = Tracked::new(stream);
                let activity = Arc::new(Activity::default());
                let seen = activity.clone();
                let router = router.clone();
                let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                    let stream_open = seen.request(req.version());
                    req.extensions_mut().insert(ConnectInfo(peer));
                    let router = router.clone();
                    async move {
                        let resp = tower::ServiceExt::oneshot(router, req).await;
                        let resp = resp.unwrap_or_else(|e| match e {});
                        Ok::<_, Infallible>(idle::hold_until_sent(resp, stream_open))
                    }
                });
                let (drain, cut) = (drain.clone(), cut.clone());
                let Some(acceptor) = tls.clone() else {
                    let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                    conns.spawn(async move {
                        let _permit = permit;
                        let ended = drive(conn, &activity, timers, (&drain, &cut), peer).await;
                        if let Err(e) = ended {
                            if is_header_timeout(&*e) && mid_request.load(Ordering::Relaxed) {
                                conn::request_timeout(spare, head_timeout);
                            }
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    });
                    continue;
                };
                // The handshake runs in the connection's task, so a slow
                // client cannot hold up the accept loop, and gets as long as
                // a request head. No plain-text 408 inside TLS: a trickled
                // head just closes the connection.
                drop(spare);
                let builder = builder.clone();
                conns.spawn(async move {
                    let _permit = permit;
                    let stream = match tokio::time::timeout(head_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake refused");
                            return;
                        }
                        Err(_) => return,
                    };
                    let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                    if let Err(e) = drive(conn, &activity, timers, (&drain, &cut), peer).await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    drain.cancel();
    conns.close();
    if tokio::time::timeout(grace, conns.wait()).await.is_err() {
        tracing::warn!("shutdown grace period over; closing the remaining connections");
        cut.cancel();
        conns.wait().await;
    }
}

/// Serves one connection to its end: closed gracefully (the requests under
/// way finish) when the server drains or an HTTP/2 connection is idle;
/// dropped when no request came in time or the grace period is over.
async fn drive<C: GracefulConnection>(
    conn: C,
    activity: &Activity,
    (first_within, idle_for): (Duration, Duration),
    (drain, cut): (&CancellationToken, &CancellationToken),
    peer: SocketAddr,
) -> Result<(), C::Error> {
    let mut conn = std::pin::pin!(conn);
    let mut watch = std::pin::pin!(activity.watch(first_within, idle_for));
    let mut closing = false;
    // After an idle GOAWAY: h2 closes once the client acks its PING, and a
    // client that never does (or is gone) kept its place for good.
    let mut give_up: Option<tokio::time::Instant> = None;
    loop {
        let unacked = async {
            match give_up {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ended = conn.as_mut() => return ended,
            () = unacked => {
                if activity.open_streams() == 0 {
                    tracing::debug!(%peer, "idle HTTP/2 connection dropped: GOAWAY unanswered");
                    return Ok(());
                }
                give_up = Some(tokio::time::Instant::now() + first_within);
            }
            () = drain.cancelled(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            why = watch.as_mut(), if !closing => match why {
                Idle::NoRequest => {
                    tracing::debug!(%peer, "no request in time; connection closed");
                    return Ok(());
                }
                Idle::NoStreams => {
                    tracing::debug!(%peer, "idle HTTP/2 connection closed");
                    closing = true;
                    give_up = Some(tokio::time::Instant::now() + first_within);
                    conn.as_mut().graceful_shutdown();
                }
            },
            () = cut.cancelled() => return Ok(()),
        }
    }
}

async fn flush_last_used(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(LAST_USED_FLUSH) => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = crate::keys::flush_last_used(&state).await {
            tracing::warn!(error = %e, "last-used flush failed");
        }
        state.throttle.prune();
    }
}

async fn retention(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(e) = crate::logs::retention::run_once(&state).await {
            tracing::warn!(error = %e, "retention pass failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(crate::logs::retention::INTERVAL) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn discovery(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(DISCOVERY_INTERVAL) => {}
            _ = stop.changed() => return,
        }
        state.discover_models().await;
    }
}

/// Polls the certificate files and reloads on change; `SIGHUP` reloads at once.
async fn tls_reload(state: AppState, mut stop: watch::Receiver<bool>) {
    let Some(tls) = state.tls.as_ref() else {
        return;
    };
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<Option<()>>();
        tokio::select! {
            _ = tokio::time::sleep(state.config.tls.reload_interval) => {
                if tls.reload_if_changed() {
                    tls_reloaded(&state);
                }
            }
            _ = hangup => match tls.reload() {
                Ok(_) => tls_reloaded(&state),
                Err(e) => tracing::warn!(error = %e, "SIGHUP: cannot reload the TLS certificate; keeping the old one"),
            },
            _ = stop.changed() => return,
        }
    }
}

async fn health_probes(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(crate::proxy::failover::probe_interval(&state)) => {}
            _ = stop.changed() => return,
        }
        crate::proxy::failover::probe_all(&state).await;
    }
}

async fn status_sampler(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        crate::status::sampler::run_once(&state).await;
        tokio::select! {
            _ = tokio::time::sleep(state.settings().status.sample_interval) => {}
            () = state.status.resample.notified() => {}
            _ = stop.changed() => return,
        }
    }
}
