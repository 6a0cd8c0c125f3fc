//! Upstreams: named OpenAI-compatible backends, the model routing table
//! (primary and fallbacks per model), the pooled HTTP client, and model
//! discovery.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, Method, Request, Uri};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use parking_lot::RwLock;
use serde::Serialize;

use super::health::Breaker;
use crate::config::{RouteConfig, UpstreamTimeouts};

pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Builds the one pooled client every upstream call (and webhook) shares.
/// Certificates are verified against the Mozilla roots plus, when given,
/// the CAs of a PEM bundle.
pub fn build_client(
    t: &UpstreamTimeouts,
    ca_file: Option<&std::path::Path>,
) -> Result<HttpClient, String> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(t.connect_timeout));
    let tls = crate::tls::client_config(ca_file)?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(t.pool_max_idle_per_host)
        .pool_idle_timeout(Duration::from_secs(90))
        .build(https))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Declared in the config file; read-only at runtime.
    Config,
    /// Added through the admin API or CLI; stored.
    Admin,
}

pub struct Upstream {
    pub id: String,
    pub name: String,
    /// Without a trailing slash, e.g. `http://127.0.0.1:11434/v1`.
    pub base_url: String,
    /// `Bearer …`, marked sensitive so it never shows in debug output.
    auth: Option<HeaderValue>,
    /// Declared models; empty means "whatever discovery finds".
    pub models: Vec<String>,
    pub discovered: RwLock<Vec<String>>,
    pub source: Source,
    /// The URIs of the routes the gateway calls, parsed once.
    uris: Vec<(&'static str, Uri)>,
    /// Kept across reloads of the upstream table, like `discovered`.
    pub health: Arc<Breaker>,
}

/// Paths the gateway calls on every upstream, relative to its base URL.
const PATHS: [&str; 4] = [
    "/chat/completions",
    "/completions",
    "/embeddings",
    "/models",
];

impl Upstream {
    /// `text` without this upstream's own API key, should the upstream
    /// quote it back (an error message passed on to the client).
    pub fn redact<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        let key = self
            .auth
            .as_ref()
            .and_then(|a| a.to_str().ok())
            .and_then(|a| a.strip_prefix("Bearer "))
            .filter(|k| k.len() >= 8);
        match key {
            Some(k) if text.contains(k) => text.replace(k, "[redacted]").into(),
            _ => text.into(),
        }
    }

    pub fn new(
        id: String,
        name: String,
        base_url: &str,
        api_key: Option<&str>,
        models: Vec<String>,
        source: Source,
    ) -> Result<Upstream, String> {
        let base_url = parse_base_url(base_url)?;
        let auth = match api_key {
            Some(k) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {k}")).map_err(|_| {
                    "the upstream API key has characters a header cannot carry".to_owned()
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let uris = PATHS
            .iter()
            .map(|p| {
                format!("{base_url}{p}")
                    .parse::<Uri>()
                    .map(|u| (*p, u))
                    .map_err(|e| format!("bad upstream URL: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Upstream {
            id,
            name,
            base_url,
            auth,
            // Named twice (in a config file, a row stored before names were
            // made distinct), a model was tried twice on one upstream.
            models: distinct(models),
            discovered: RwLock::new(Vec::new()),
            source,
            uris,
            health: Arc::default(),
        })
    }

    pub fn has_api_key(&self) -> bool {
        self.auth.is_some()
    }

    /// Models this upstream serves: declared ones, else discovered ones.
    pub fn served_models(&self) -> Vec<String> {
        if self.models.is_empty() {
            self.discovered.read().clone()
        } else {
            self.models.clone()
        }
    }

    /// A request to `{base_url}{path}` carrying the upstream's credentials.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, String> {
        let uri = match self.uris.iter().find(|(p, _)| *p == path) {
            Some((_, u)) => u.clone(),
            None => format!("{}{path}", self.base_url)
                .parse()
                .map_err(|e| format!("bad upstream URL: {e}"))?,
        };
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::ACCEPT, "application/json, text/event-stream");
        if !body.is_empty() {
            b = b.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(auth) = &self.auth {
            b = b.header(header::AUTHORIZATION, auth.clone());
        }
        b.body(Full::new(body)).map_err(|e| e.to_string())
    }

    /// The health probe: `GET {base_url}/models` answered without a 5xx.
    /// A 404 or 401 still proves the server is up (not every server lists
    /// its models, and a bad key is not an outage).
    pub async fn probe(&self, client: &HttpClient, timeout: Duration) -> Result<(), String> {
        let req = self.request(Method::GET, "/models", Bytes::new())?;
        let resp = tokio::time::timeout(timeout, client.request(req))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| format!("unreachable: {e}"))?;
        let status = resp.status();
        // Read the (small) body so the connection goes back to the pool.
        let _ = tokio::time::timeout(
            timeout,
            http_body_util::Limited::new(resp.into_body(), 1 << 20).collect(),
        )
        .await;
        // A refused credential fails the probe as it fails a request: a
        // probe that passed it closed the circuit requests had opened.
        if status.is_server_error() || matches!(status.as_u16(), 401 | 403) {
            return Err(format!("GET /models answered {status}"));
        }
        Ok(())
    }

    /// Asks `GET {base_url}/models` which models the upstream serves.
    pub async fn discover(
        &self,
        client: &HttpClient,
        timeout: Duration,
    ) -> Result<Vec<String>, String> {
        let req = self.request(Method::GET, "/models", Bytes::new())?;
        let resp = tokio::time::timeout(timeout, client.request(req))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| format!("unreachable: {e}"))?;
        let status = resp.status();
        let body = tokio::time::timeout(timeout, resp.into_body().collect())
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("GET /models answered {status}"));
        }
        #[derive(serde::Deserialize)]
        struct List {
            data: Vec<Item>,
        }
        #[derive(serde::Deserialize)]
        struct Item {
            id: String,
        }
        let list: List = serde_json::from_slice(&body)
            .map_err(|e| format!("GET /models returned an unexpected body: {e}"))?;
        Ok(distinct(list.data.into_iter().map(|i| i.id).collect()))
    }
}

/// The upstreams that may serve one model, primary first.
pub type Candidates = Arc<[Arc<Upstream>]>;

/// All upstreams and the model → candidates table, swapped whole on change.
#[derive(Default)]
pub struct Upstreams {
    table: RwLock<Arc<Table>>,
}

#[derive(Default)]
struct Table {
    list: Vec<Arc<Upstream>>,
    explicit: Vec<RouteConfig>,
    routes: HashMap<String, Candidates>,
}

impl Upstreams {
    /// Replaces the set of upstreams and rebuilds the routes.
    pub fn replace(&self, list: Vec<Arc<Upstream>>) {
        let explicit = self.table.read().explicit.clone();
        self.rebuild(list, explicit);
    }

    /// Replaces the declared failover routes (from the settings).
    pub fn set_routes(&self, explicit: Vec<RouteConfig>) {
        let list = self.table.read().list.clone();
        self.rebuild(list, explicit);
    }

    /// A model's candidates are its declared route, else every upstream
    /// serving it in list order (so the first in the list is the primary).
    fn rebuild(&self, list: Vec<Arc<Upstream>>, explicit: Vec<RouteConfig>) {
        let mut routes: HashMap<String, Vec<Arc<Upstream>>> = HashMap::new();
        for u in &list {
            for m in u.served_models() {
                routes.entry(m).or_default().push(u.clone());
            }
        }
        for r in &explicit {
            let named: Vec<_> = r
                .upstreams
                .iter()
                .filter_map(|n| list.iter().find(|u| &u.name == n).cloned())
                .collect();
            if named.len() < r.upstreams.len() {
                tracing::warn!(model = %r.model, "a route names an upstream that does not exist");
            }
            if !named.is_empty() {
                routes.insert(r.model.clone(), named);
            }
        }
        let routes = routes
            .into_iter()
            .map(|(m, v)| (m, Candidates::from(v)))
            .collect();
        *self.table.write() = Arc::new(Table {
            list,
            explicit,
            routes,
        });
    }

    /// Rebuilds the routes after discovery changed what an upstream serves.
    pub fn reroute(&self) {
        let list = self.table.read().list.clone();
        self.replace(list);
    }

    /// The model's upstreams, primary first.
    pub fn candidates(&self, model: &str) -> Option<Candidates> {
        self.table.read().routes.get(model).cloned()
    }

    /// The model's primary upstream.
    pub fn route(&self, model: &str) -> Option<Arc<Upstream>> {
        self.table
            .read()
            .routes
            .get(model)
            .and_then(|c| c.first().cloned())
    }

    pub fn list(&self) -> Vec<Arc<Upstream>> {
        self.table.read().list.clone()
    }

    pub fn get(&self, id_or_name: &str) -> Option<Arc<Upstream>> {
        self.table
            .read()
            .list
            .iter()
            .find(|u| u.id == id_or_name || u.name == id_or_name)
            .cloned()
    }

    /// Every routable model, sorted, with its primary upstream.
    pub fn models(&self) -> Vec<(String, Arc<Upstream>)> {
        let t = self.table.read();
        let mut out: Vec<_> = t
            .routes
            .iter()
            .filter_map(|(m, c)| Some((m.clone(), c.first()?.clone())))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

pub fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid upstream name {name:?}: use 1-64 letters, digits, '-', '_' or '.'"
        ))
    }
}

/// Checks an `http(s)://host[:port][/path]` base URL and drops a trailing slash.
pub fn parse_base_url(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim().trim_end_matches('/');
    // Credentials in the URL were stored and listed in the clear, and never
    // sent. Refused without echoing the URL, which holds them.
    let authority = trimmed
        .split_once("://")
        .map_or(trimmed, |(_, rest)| rest)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    if authority.contains('@') {
        return Err(
            "invalid base URL: credentials in the URL are not supported; \
                    give the upstream's key as its API key, which is stored sealed"
                .into(),
        );
    }
    let uri: Uri = trimmed
        .parse()
        .map_err(|e| format!("invalid base URL {raw:?}: {e}"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => {
            return Err(format!(
                "invalid base URL {raw:?}: it must start with http:// or https://"
            ))
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("invalid base URL {raw:?}: it has no host"));
    }
    if uri.query().is_some() {
        return Err(format!(
            "invalid base URL {raw:?}: it must not have a query string"
        ));
    }
    Ok(trimmed.to_owned())
}

/// Model names in their first order, each once: a list may name one twice.
pub fn distinct(mut models: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    models.retain(|m| seen.insert(m.clone()));
    models
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(
            parse_base_url("http://127.0.0.1:11434/v1/").ok().as_deref(),
            Some("http://127.0.0.1:11434/v1")
        );
        assert!(parse_base_url("ftp://x/v1").is_err());
        assert!(parse_base_url("not a url").is_err());
        assert!(parse_base_url("http://x/v1?a=b").is_err());
        let e = parse_base_url("http://user:PASSWORD@127.0.0.1:1/v1").unwrap_err();
        assert!(!e.contains("PASSWORD"), "{e}");
        assert!(parse_base_url("https://tok@host/v1").is_err());
        assert!(
            parse_base_url("http://host/v1/me@x").is_ok(),
            "an @ in the path is not userinfo"
        );
    }

    #[test]
    fn declared_routes_order_the_fallbacks() {
        let mk = |n: &str, models: &[&str]| {
            Arc::new(
                Upstream::new(
                    n.into(),
                    n.into(),
                    &format!("http://{n}/v1"),
                    None,
                    models.iter().map(|m| (*m).to_owned()).collect(),
                    Source::Admin,
                )
                .unwrap_or_else(|e| panic!("{e}")),
            )
        };
        let u = Upstreams::default();
        u.replace(vec![mk("a", &["m"]), mk("b", &["m"]), mk("c", &[])]);
        let names = |m: &str| -> Vec<String> {
            u.candidates(m)
                .map(|c| c.iter().map(|x| x.name.clone()).collect())
                .unwrap_or_default()
        };
        assert_eq!(names("m"), ["a", "b"]);
        u.set_routes(vec![RouteConfig {
            model: "m".into(),
            upstreams: vec!["c".into(), "a".into(), "nope".into()],
        }]);
        assert_eq!(names("m"), ["c", "a"]);
        assert_eq!(u.route("m").map(|x| x.name.clone()).as_deref(), Some("c"));
    }

    #[test]
    fn first_upstream_wins_a_model() {
        let a = Arc::new(
            Upstream::new(
                "a".into(),
                "a".into(),
                "http://a/v1",
                None,
                vec!["m".into()],
                Source::Admin,
            )
            .unwrap_or_else(|e| panic!("{e}")),
        );
        let b = Arc::new(
            Upstream::new(
                "b".into(),
                "b".into(),
                "http://b/v1",
                None,
                vec!["m".into(), "n".into()],
                Source::Admin,
            )
            .unwrap_or_else(|e| panic!("{e}")),
        );
        let u = Upstreams::default();
        u.replace(vec![a, b]);
        assert_eq!(u.route("m").map(|x| x.name.clone()).as_deref(), Some("a"));
        assert_eq!(u.route("n").map(|x| x.name.clone()).as_deref(), Some("b"));
        assert!(u.route("o").is_none());
    }
}
