//! `AppState`, built once through [`AppState::new`], and the two routers.
//!
//! Layer order of the gateway listener, outermost first:
//! 1. `CatchPanicLayer`: a bug in one request becomes a 500 in OpenAI's
//!    shape; the server keeps serving.
//! 2. Routes: `/v1/*`, behind two edge layers: `edge::load::shed` (503
//!    with `Retry-After` past `edge.max_in_flight`, before any other work),
//!    then `edge::hygiene::check` (keys in the URL, underscored header
//!    names); their handlers all start with the `keys::auth::AuthedKey`
//!    extractor (a bearer `ask_` key). `/healthz` is open and never shed.
//!    `/status` and `/status/summary.json` are open (not shed) when the
//!    page is public.
//! 3. Fallbacks: unknown paths and methods answer in OpenAI's error shape.
//!
//! The admin listener has its own stack (see `admin`).

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use parking_lot::RwLock;
use tower_http::catch_panic::CatchPanicLayer;

use crate::admin::AdminAuth;
use crate::config::Config;
use crate::crypto::Keyring;
use crate::keys::KeyRegistry;
use crate::proxy::upstream::{self, HttpClient, Source, Upstream, Upstreams};
use crate::settings::Settings;
use crate::store::Store;
use crate::tokens::Tokenizer;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    #[error("{0}")]
    Other(String),
}

/// Everything a request or an admin call may touch. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub data_dir: PathBuf,
    pub store: Store,
    pub keyring: Keyring,
    pub keys: KeyRegistry,
    pub limits: crate::limits::Limits,
    pub throttle: crate::access::throttle::AuthThrottle,
    pub logs: crate::logs::LogSink,
    pub telemetry: Arc<crate::telemetry::Telemetry>,
    pub reseal: crate::logs::reseal::Resealer,
    pub edge: crate::edge::Edge,
    pub redactor: crate::logs::redact::Redactor,
    log_writer: parking_lot::Mutex<Option<crate::logs::LogWriter>>,
    pub upstreams: Upstreams,
    pub client: HttpClient,
    pub tokenizer: Tokenizer,
    /// The request schemas, compiled once.
    pub validators: crate::validate::Validators,
    /// The moderation and injection engines, compiled once.
    pub safety: crate::safety::Safety,
    pub admin: AdminAuth,
    pub sessions: crate::admin::session::Sessions,
    /// Held by every admin change from its read to its commit and publish.
    pub admin_changes: tokio::sync::Mutex<()>,
    /// The SSE relay tasks, which outlive their requests: shutdown waits
    /// for them (bounded) before the log writer stops.
    pub relays: tokio_util::task::TaskTracker,
    /// Cancelled when shutdown cuts the streams still running.
    pub stopping: tokio_util::sync::CancellationToken,
    /// Whether the gateway API listener accepts (it may be paused, or not
    /// started yet, while the admin API answers).
    pub api_serving: std::sync::atomic::AtomicBool,
    /// Held while this process serves the data dir.
    _lock: std::fs::File,
    /// HTTPS on the gateway listener, when configured.
    pub tls: Option<crate::tls::Tls>,
    /// Component states, incidents, maintenance, the page's view, notifications.
    pub status: crate::status::StatusHub,
    settings: RwLock<Arc<Settings>>,
    access_nets: RwLock<Arc<AccessNets>>,
    bound: RwLock<Option<crate::server::Bound>>,
}

/// The settings' address lists, parsed once per change rather than per request.
#[derive(Debug, Default)]
pub struct AccessNets {
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub allowed_ips: Vec<ipnet::IpNet>,
}

impl AccessNets {
    fn from_settings(s: &Settings) -> AccessNets {
        let parse = |v: &[String]| {
            v.iter()
                .filter_map(|e| crate::access::parse_cidr(e).ok())
                .collect()
        };
        AccessNets {
            trusted_proxies: parse(&s.access.trusted_proxies),
            allowed_ips: parse(&s.access.allowed_ips),
        }
    }
}

/// What an app embedding the engine (the desktop shell) adds to a plain
/// `assisters serve`.
#[derive(Default, Clone)]
pub struct Embedding {
    /// Keep the master key in the operating system's secret store.
    pub secret_store: Option<Arc<dyn crate::crypto::SecretStore>>,
}

/// One gateway per data dir: a second one took over `runtime.json`, so
/// the CLI's changes (a revocation) went to it while the first one went on
/// serving the key; and it removed the file when it stopped. The lock is
/// the OS's, so it goes with the process however that ends.
fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File, StartError> {
    let path = dir.join("serve.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StartError::DataDir(dir.to_path_buf(), e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StartError::Other(format!(
            "another assisters is already serving the data directory {}; stop it first, \
             or give this one its own --data-dir",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(StartError::DataDir(dir.to_path_buf(), e)),
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Opens the data dir, store and keyring, and loads keys, upstreams and
    /// settings into memory.
    pub fn new(config: Config) -> Result<AppState, StartError> {
        AppState::embedded(config, Embedding::default())
    }

    /// As [`AppState::new`], with what an embedding app provides.
    pub fn embedded(config: Config, embedding: Embedding) -> Result<AppState, StartError> {
        let data_dir = config.data_dir();
        crate::fsutil::ensure_private_dir(&data_dir)
            .map_err(|e| StartError::DataDir(data_dir.clone(), e))?;
        let lock = lock_data_dir(&data_dir)?;
        let store = Store::open(&data_dir)?;
        let env_key = std::env::var("ASSISTERS_MASTER_KEY").ok();
        let keyring = match embedding.secret_store {
            Some(store) => Keyring::load_with_secret_store(&data_dir, env_key.as_deref(), store)?,
            None => Keyring::load_or_create(&data_dir, env_key.as_deref())?,
        };
        let admin = AdminAuth::load_or_create(&data_dir)
            .map_err(|e| StartError::DataDir(data_dir.clone(), e))?;
        let keys = KeyRegistry::new(store.read_now(crate::store::keys::all)?);
        let limits = crate::limits::Limits::new(store.read_now(crate::store::tiers::all)?);
        let today = crate::store::now().div_euclid(86_400);
        limits.seed_daily(
            today,
            store.read_now(|c| crate::store::usage::tokens_on_day(c, today * 86_400))?,
        );
        limits.share_rotations(&keys.all());
        let tls = crate::tls::Tls::load(&config.tls, &data_dir)
            .map_err(|e| StartError::Other(format!("TLS: {e}")))?;

        let mut settings = Settings::from_config(&config);
        let stored = store.read_now(crate::store::settings::all)?;
        if !stored.is_empty() {
            let patch = serde_json::Value::Object(stored.into_iter().collect());
            settings = settings.patched(&patch).map_err(StartError::Other)?;
        }
        // From the settings in force, stored ones included: the pool's
        // connect timeout and idle size apply from the next start.
        let client = upstream::build_client(
            &settings.upstream_defaults,
            config.tls.upstream_ca_file.as_deref(),
        )
        .map_err(StartError::Other)?;

        let safety =
            crate::safety::Safety::new(safety_used(&settings, &keys)).map_err(StartError::Other)?;
        let telemetry = Arc::new(crate::telemetry::Telemetry::new());
        let (log_sink, log_writer) =
            crate::logs::channel(telemetry.clone(), config.edge.max_log_queue_bytes);
        let state = AppState(Arc::new(Inner {
            data_dir,
            store,
            keyring,
            keys,
            limits,
            throttle: crate::access::throttle::AuthThrottle::new(
                settings.access.auth_failures_per_min,
            ),
            access_nets: RwLock::new(Arc::new(AccessNets::from_settings(&settings))),
            logs: log_sink,
            telemetry,
            reseal: Default::default(),
            edge: crate::edge::Edge::new(&config.edge),
            redactor: crate::logs::redact::Redactor::new(),
            log_writer: parking_lot::Mutex::new(Some(log_writer)),
            upstreams: Upstreams::default(),
            client,
            tokenizer: Tokenizer::default(),
            validators: crate::validate::Validators::new().map_err(StartError::Other)?,
            safety,
            admin,
            sessions: Default::default(),
            admin_changes: tokio::sync::Mutex::new(()),
            relays: Default::default(),
            stopping: Default::default(),
            api_serving: Default::default(),
            _lock: lock,
            tls,
            status: Default::default(),
            settings: RwLock::new(Arc::new(settings.clone())),
            bound: RwLock::new(None),
            config,
        }));
        match state.store.read_now(crate::store::incidents::hand_resolved) {
            Ok(ids) => state.status.hand_resolved.lock().extend(ids),
            Err(e) => tracing::warn!(error = %e, "cannot read incidents resolved by hand"),
        }
        state.reload_upstreams()?;
        state.upstreams.set_routes(settings.routes.clone());
        Ok(state)
    }

    /// The settings in force for this request.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings.read().clone()
    }

    pub fn set_settings(&self, s: Settings) {
        *self.access_nets.write() = Arc::new(AccessNets::from_settings(&s));
        self.throttle.set_limit(s.access.auth_failures_per_min);
        if !self.safety.is_built() && safety_used(&s, &self.keys) {
            self.warm_safety();
        }
        if self.settings.read().routes != s.routes {
            self.upstreams.set_routes(s.routes.clone());
        }
        *self.settings.write() = Arc::new(s);
    }

    /// Builds the safety engines in the background, so that the request
    /// that first needs them does not wait.
    pub fn warm_safety(&self) {
        if self.safety.is_built() {
            return;
        }
        let state = self.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = state.safety.warm().await;
            });
        }
    }

    /// The log writer, taken once by the server that runs it.
    pub fn take_log_writer(&self) -> Option<crate::logs::LogWriter> {
        self.log_writer.lock().take()
    }

    pub fn access_nets(&self) -> Arc<AccessNets> {
        self.access_nets.read().clone()
    }

    pub fn bound(&self) -> Option<crate::server::Bound> {
        self.bound.read().clone()
    }

    pub fn set_bound(&self, b: crate::server::Bound) {
        *self.bound.write() = Some(b);
    }

    /// Rebuilds the upstream table from the config file and the store,
    /// keeping models already discovered.
    pub fn reload_upstreams(&self) -> Result<(), StartError> {
        let mut list = Vec::new();
        for u in &self.config.upstreams {
            let key = u.api_key_env.as_deref().and_then(crate::config::secret_env);
            let up = Upstream::new(
                format!("cfg_{}", u.name),
                u.name.clone(),
                &u.base_url,
                key.as_deref(),
                u.models.clone(),
                Source::Config,
            )
            .map_err(|e| StartError::Other(format!("upstream {}: {e}", u.name)))?;
            list.push(up);
        }
        for row in self.store.read_now(crate::store::upstreams::all)? {
            if list.iter().any(|u| u.name == row.name) {
                tracing::warn!(upstream = %row.name, "stored upstream shadowed by the config file");
                continue;
            }
            let key = match &row.api_key_enc {
                Some(sealed) => Some(
                    String::from_utf8_lossy(&self.keyring.open(sealed, row.id.as_bytes())?)
                        .into_owned(),
                ),
                None => None,
            };
            let up = Upstream::new(
                row.id.clone(),
                row.name.clone(),
                &row.base_url,
                key.as_deref(),
                row.models.clone(),
                Source::Admin,
            )
            .map_err(|e| StartError::Other(format!("upstream {}: {e}", row.name)))?;
            list.push(up);
        }
        let old = self.upstreams.list();
        let list = list
            .into_iter()
            .map(|u| {
                let mut u = u;
                if let Some(prev) = old.iter().find(|o| o.id == u.id) {
                    *u.discovered.write() = prev.discovered.read().clone();
                    u.health = prev.health.clone();
                }
                Arc::new(u)
            })
            .collect();
        self.upstreams.replace(list);
        Ok(())
    }

    /// Asks every upstream without declared models which models it serves.
    pub async fn discover_models(&self) {
        let timeout = self.settings().upstream_defaults.connect_timeout * 2;
        let pending: Vec<_> = self
            .upstreams
            .list()
            .into_iter()
            .filter(|u| u.models.is_empty())
            .map(|u| async move {
                let found = u.discover(&self.client, timeout).await;
                (u, found)
            })
            .collect();
        let mut changed = false;
        for (u, found) in futures_util::future::join_all(pending).await {
            match found {
                Ok(models) => {
                    let mut d = u.discovered.write();
                    if *d != models {
                        *d = models;
                        changed = true;
                    }
                }
                Err(e) => tracing::warn!(upstream = %u.name, error = %e, "model discovery failed"),
            }
        }
        if changed {
            self.upstreams.reroute();
        }
    }
}

/// The gateway listener's router.
pub fn gateway_router(state: AppState) -> Router {
    let v1 = crate::proxy::router()
        .layer(axum::middleware::from_fn(crate::edge::hygiene::check))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::edge::load::shed,
        ));
    Router::new()
        .merge(v1)
        .merge(crate::status::routes::router())
        .route("/healthz", get(|| async { "ok" }))
        .fallback(crate::error::gateway_route_not_found)
        .method_not_allowed_fallback(crate::error::gateway_method_not_allowed)
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    crate::error::ApiError::from(crate::error::InternalError::Other(
        "handler panicked".into(),
    ))
    .into_response()
}

/// Whether any check of the settings or of a key's overrides may run.
pub fn safety_used(s: &Settings, keys: &KeyRegistry) -> bool {
    let m = &s.safety.moderation;
    m.input
        || m.output
        || s.safety.injection.enabled
        || keys.all().iter().any(|k| k.overrides.safety.is_some())
}
