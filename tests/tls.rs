//! HTTPS on the gateway listener: TLS 1.3 only by default, ALPN, the
//! self-signed certificate, reload without restart, and upstream calls
//! verified against a custom CA bundle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Gateway;
use http_body_util::{BodyExt, Empty};
use reqwest::Method;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio_rustls::client::TlsStream;

const BASE: &str =
    "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nshutdown_grace = \"5s\"\n";

fn addr(gw: &Gateway) -> String {
    gw.api.trim_start_matches("http://").to_owned()
}

fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A client trusting only `ca`, speaking exactly `versions`, offering `alpn`.
async fn handshake(
    addr: &str,
    ca: &Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Result<TlsStream<tokio::net::TcpStream>, std::io::Error> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// `GET /healthz` over HTTP/2 on an established TLS stream.
async fn healthz_h2(tls: TlsStream<tokio::net::TcpStream>) -> String {
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get("https://localhost/healthz")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

fn peer_fingerprint(tls: &TlsStream<tokio::net::TcpStream>) -> String {
    let certs = tls.get_ref().1.peer_certificates().unwrap();
    fingerprint(certs[0].as_ref())
}

#[tokio::test(flavor = "multi_thread")]
async fn self_signed_tls13_only_h2_and_the_fingerprint_is_shown() {
    let gw = Gateway::start(&format!("{BASE}[tls]\nself_signed = true\n")).await;
    let cert = gw.path().join("tls-self-signed.pem");
    let key = gw.path().join("tls-self-signed-key.pem");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the private key is the owner's only");
    }
    let (status, v) = gw.admin_call(Method::GET, "/admin/tls", None).await;
    assert_eq!(status, 200, "{v}");
    let fp = v["certificate"]["fingerprint_sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(v["certificate"]["self_signed"], true);
    assert_eq!(v["certificate"]["min_version"], "1.3");
    let runtime: serde_json::Value =
        serde_json::from_slice(&std::fs::read(gw.path().join("runtime.json")).unwrap()).unwrap();
    assert_eq!(runtime["tls_fingerprint_sha256"], fp.as_str());

    // A TLS 1.2 ClientHello is refused.
    let refused = handshake(
        &addr(&gw),
        &cert,
        &[&rustls::version::TLS12],
        &[b"http/1.1"],
    )
    .await;
    assert!(refused.is_err(), "TLS 1.2 must be refused by default");

    // TLS 1.3 succeeds, negotiates h2, and shows the advertised certificate.
    let tls = handshake(
        &addr(&gw),
        &cert,
        &[&rustls::version::TLS13],
        &[b"h2", b"http/1.1"],
    )
    .await
    .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(peer_fingerprint(&tls), fp);
    assert_eq!(healthz_h2(tls).await, "ok");

    // Plain HTTP on the TLS port gets nowhere.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/healthz", addr(&gw)))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);

    // The certificate is generated once and kept.
    let dir = gw.take_dir();
    let gw = Gateway::start_in(dir, &format!("{BASE}[tls]\nself_signed = true\n"), &[]).await;
    let (_, v) = gw.admin_call(Method::GET, "/admin/tls", None).await;
    assert_eq!(v["certificate"]["fingerprint_sha256"], fp.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_over_the_cap_is_closed_without_plaintext() {
    use tokio::io::AsyncReadExt;
    let gw = Gateway::start(&format!(
        "{BASE}[tls]\nself_signed = true\n[edge]\nmax_connections_per_ip = 1\n"
    ))
    .await;
    let cert = gw.path().join("tls-self-signed.pem");
    let held = handshake(&addr(&gw), &cert, &[&rustls::version::TLS13], &[b"h2"])
        .await
        .unwrap();
    // The second connection is refused: closed, with no plaintext HTTP
    // answer written into what the client reads as a TLS stream.
    let mut extra = tokio::net::TcpStream::connect(addr(&gw)).await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), extra.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "closed at once");
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    assert!(
        handshake(&addr(&gw), &cert, &[&rustls::version::TLS13], &[b"h2"])
            .await
            .is_err()
    );
    // The connection held still serves, and a place freed is taken again.
    assert_eq!(healthz_h2(held).await, "ok");
    let again = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(tls) =
                handshake(&addr(&gw), &cert, &[&rustls::version::TLS13], &[b"h2"]).await
            {
                return tls;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(healthz_h2(again).await, "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn tls12_only_when_allowed() {
    let gw = Gateway::start(&format!(
        "{BASE}[tls]\nself_signed = true\nallow_tls12 = true\n"
    ))
    .await;
    let cert = gw.path().join("tls-self-signed.pem");
    let tls = handshake(
        &addr(&gw),
        &cert,
        &[&rustls::version::TLS12],
        &[b"http/1.1"],
    )
    .await
    .unwrap();
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
}

fn write_pair(dir: &Path) -> String {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    fingerprint(ck.cert.der())
}

#[tokio::test(flavor = "multi_thread")]
async fn certificate_files_reload_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let first = write_pair(certs.path());
    let cfg = format!(
        "{BASE}[tls]\ncert = \"{0}/cert.pem\"\nkey = \"{0}/key.pem\"\nreload_interval = \"100ms\"\n",
        certs.path().display()
    );
    let gw = Gateway::start_in(dir, &cfg, &[]).await;
    let cert = certs.path().join("cert.pem");
    let tls = handshake(&addr(&gw), &cert, &[&rustls::version::TLS13], &[b"h2"])
        .await
        .unwrap();
    assert_eq!(peer_fingerprint(&tls), first);

    // New files are picked up by the poll, without a restart.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = write_pair(certs.path());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, v) = gw.admin_call(Method::GET, "/admin/tls", None).await;
        if v["certificate"]["fingerprint_sha256"] == second.as_str() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not loaded: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tls = handshake(&addr(&gw), &cert, &[&rustls::version::TLS13], &[b"h2"])
        .await
        .unwrap();
    assert_eq!(peer_fingerprint(&tls), second);
    let runtime: serde_json::Value =
        serde_json::from_slice(&std::fs::read(gw.path().join("runtime.json")).unwrap()).unwrap();
    assert_eq!(runtime["tls_fingerprint_sha256"], second.as_str());

    // A broken pair is refused and the current certificate stays.
    std::fs::write(certs.path().join("key.pem"), "not a key").unwrap();
    let (status, v) = gw.admin_call(Method::POST, "/admin/tls/reload", None).await;
    assert_eq!(status, 400, "{v}");
    let tls = handshake(&addr(&gw), &cert, &[&rustls::version::TLS13], &[b"h2"])
        .await
        .unwrap();
    assert_eq!(peer_fingerprint(&tls), second);
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_certificates_are_verified_against_the_ca_bundle() {
    // Gateway A serves the echo model over HTTPS with a self-signed certificate.
    let a = Gateway::start(&format!("{BASE}[tls]\nself_signed = true\n")).await;
    let a_key = a.key().await;
    let a_cert = a.path().join("tls-self-signed.pem");
    let upstream = |ca: &str| {
        format!(
            "{BASE}echo_model = false\n[tls]\n{ca}\n[[upstreams]]\nname = \"a\"\n\
             base_url = \"https://{}/v1\"\napi_key_env = \"A_KEY\"\nmodels = [\"assisters-echo\"]\n",
            addr(&a)
        )
    };
    let body = json!({"model": "assisters-echo", "messages": [{"role": "user", "content": "hi"}]});

    // B trusts A's certificate through its CA bundle.
    let b_cfg = upstream(&format!("upstream_ca_file = \"{}\"", a_cert.display()));
    let b = Gateway::start_in(tempfile::tempdir().unwrap(), &b_cfg, &[("A_KEY", &a_key)]).await;
    let b_key = b.key().await;
    let resp = b.post(&b_key, "/v1/chat/completions", body.clone()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-assisters-upstream"], "a");

    // C does not, so it refuses to talk to A.
    let c = Gateway::start_in(
        tempfile::tempdir().unwrap(),
        &upstream(""),
        &[("A_KEY", &a_key)],
    )
    .await;
    let c_key = c.key().await;
    let resp = c.post(&c_key, "/v1/chat/completions", body).await;
    assert_eq!(resp.status(), 502);
}
