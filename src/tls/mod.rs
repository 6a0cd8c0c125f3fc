//! HTTPS on the gateway listener: the rustls server config (TLS 1.3 only
//! unless 1.2 is allowed, ALPN h2 and http/1.1, no 0-RTT), the certificate
//! it presents, and reloading that certificate without a restart (files
//! polled for changes, `SIGHUP`, or the admin API).
//!
//! The certificate sits behind a resolver, so a reload swaps one `Arc` and
//! every later handshake sees the new certificate; connections already
//! open keep theirs.

pub mod certs;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::{Mutex, RwLock};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::Serialize;

pub use certs::client_config;

use crate::config::TlsConfig;

/// What the admin API shows about the certificate in use.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct CertInfo {
    /// SHA-256 of the leaf certificate, colon-separated hex.
    pub fingerprint_sha256: String,
    pub self_signed: bool,
    pub cert_file: String,
    /// When this certificate was loaded (RFC 3339).
    pub loaded_at: String,
    /// `1.3`, or `1.2` when TLS 1.2 is allowed.
    pub min_version: &'static str,
    pub alpn: Vec<&'static str>,
}

#[derive(Debug)]
struct Resolver(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().clone())
    }
}

pub struct Tls {
    config: Arc<rustls::ServerConfig>,
    resolver: Arc<Resolver>,
    cert: PathBuf,
    key: PathBuf,
    self_signed: bool,
    min_version: &'static str,
    info: RwLock<CertInfo>,
    /// The files' modification times when last loaded.
    mtimes: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl Tls {
    /// The TLS setup the config asks for, or `None` for plain HTTP.
    pub fn load(cfg: &TlsConfig, data_dir: &Path) -> Result<Option<Tls>, String> {
        let (cert, key, self_signed) = match (&cfg.cert, &cfg.key) {
            (Some(c), Some(k)) => (c.clone(), k.clone(), false),
            _ if cfg.self_signed => {
                let (c, k) = certs::self_signed(data_dir, &cfg.self_signed_names)?;
                (c, k, true)
            }
            _ => return Ok(None),
        };
        let mtimes = (mtime(&cert), mtime(&key));
        let pair = certs::load_pair(&cert, &key)?;
        let min_version = if cfg.allow_tls12 { "1.2" } else { "1.3" };
        let info = RwLock::new(info(&pair, &cert, self_signed, min_version));
        let resolver = Arc::new(Resolver(RwLock::new(Arc::new(pair))));
        let versions: &[&rustls::SupportedProtocolVersion] = if cfg.allow_tls12 {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13]
        };
        let mut config = rustls::ServerConfig::builder_with_provider(certs::provider())
            .with_protocol_versions(versions)
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        // No 0-RTT: early data can be replayed, and a completion costs money.
        config.max_early_data_size = 0;
        config.send_half_rtt_data = false;
        Ok(Some(Tls {
            config: Arc::new(config),
            resolver,
            cert,
            key,
            self_signed,
            min_version,
            info,
            mtimes: Mutex::new(mtimes),
        }))
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }

    pub fn info(&self) -> CertInfo {
        self.info.read().clone()
    }

    /// Reads the files again and swaps the certificate in. A broken pair
    /// leaves the current one in place.
    pub fn reload(&self) -> Result<CertInfo, String> {
        let mtimes = (mtime(&self.cert), mtime(&self.key));
        let pair = certs::load_pair(&self.cert, &self.key)?;
        let next = info(&pair, &self.cert, self.self_signed, self.min_version);
        *self.resolver.0.write() = Arc::new(pair);
        *self.info.write() = next.clone();
        *self.mtimes.lock() = mtimes;
        tracing::info!(fingerprint = %next.fingerprint_sha256, "TLS certificate loaded");
        Ok(next)
    }

    /// Reloads when either file changed since the last load; true when a
    /// new certificate is in use. A pair caught half-written fails to load
    /// and is tried again at the next poll.
    pub fn reload_if_changed(&self) -> bool {
        let now = (mtime(&self.cert), mtime(&self.key));
        if *self.mtimes.lock() == now {
            return false;
        }
        match self.reload() {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "TLS certificate changed but cannot be loaded; keeping the old one");
                false
            }
        }
    }
}

fn info(pair: &CertifiedKey, cert: &Path, self_signed: bool, min: &'static str) -> CertInfo {
    CertInfo {
        fingerprint_sha256: pair
            .cert
            .first()
            .map(certs::fingerprint)
            .unwrap_or_default(),
        self_signed,
        cert_file: cert.display().to_string(),
        loaded_at: crate::timefmt::rfc3339(crate::store::now()),
        min_version: min,
        alpn: vec!["h2", "http/1.1"],
    }
}
