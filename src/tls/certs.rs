//! Certificates on disk: PEM loading, the self-signed certificate kept in the
//! data directory, fingerprints, and the client-side trust store for
//! upstream calls.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

pub const SELF_SIGNED_CERT: &str = "tls-self-signed.pem";
pub const SELF_SIGNED_KEY: &str = "tls-self-signed-key.pem";

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a PEM chain and key and checks that they belong together.
pub fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no PEM certificate in it", cert.display()));
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    CertifiedKey::from_der(chain, key_der, &provider())
        .map_err(|e| format!("{} and {}: {e}", cert.display(), key.display()))
}

/// The self-signed pair's paths, generated (mode 0600) when missing.
pub fn self_signed(data_dir: &Path, extra_names: &[String]) -> Result<(PathBuf, PathBuf), String> {
    let cert = data_dir.join(SELF_SIGNED_CERT);
    let key = data_dir.join(SELF_SIGNED_KEY);
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
    for n in extra_names {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    let mut params =
        rcgen::CertificateParams::new(names).map_err(|e| format!("self-signed: {e}"))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Assisters Gateway (self-signed)");
    // Browsers refuse leaf certificates valid for much over two years.
    let (y, m, d) = today();
    params.not_before = rcgen::date_time_ymd(y, m, d);
    params.not_after = rcgen::date_time_ymd(y + 2, m, d.min(28));
    let pair = rcgen::KeyPair::generate().map_err(|e| format!("self-signed: {e}"))?;
    let issued = params
        .self_signed(&pair)
        .map_err(|e| format!("self-signed: {e}"))?;
    let write = |p: &Path, b: &[u8]| {
        crate::fsutil::write_private(p, b).map_err(|e| format!("{}: {e}", p.display()))
    };
    write(&key, pair.serialize_pem().as_bytes())?;
    write(&cert, issued.pem().as_bytes())?;
    tracing::info!(cert = %cert.display(), "generated a self-signed certificate");
    Ok((cert, key))
}

/// Today's UTC date as (year, month, day).
fn today() -> (i32, u8, u8) {
    let s = crate::timefmt::rfc3339(crate::store::now());
    let y = s.get(0..4).and_then(|p| p.parse().ok()).unwrap_or(2026);
    let m = s.get(5..7).and_then(|p| p.parse().ok()).unwrap_or(1);
    let d = s.get(8..10).and_then(|p| p.parse().ok()).unwrap_or(1);
    (y, m, d)
}

/// SHA-256 of the leaf certificate, as browsers show it (`AB:CD:…`).
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The client config for upstream and webhook calls: the Mozilla roots and,
/// when given, the certificates of a PEM CA bundle. TLS 1.2 stays allowed
/// here because many upstreams still speak only that.
pub fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let mut added = 0;
        for cert in
            CertificateDer::pem_file_iter(path).map_err(|e| format!("{}: {e}", path.display()))?
        {
            let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!("{}: no PEM certificate in it", path.display()));
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
