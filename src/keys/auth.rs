//! Admission of a `/v1` request before its handler runs: the client's
//! address (global allowlist, failed-auth throttle), one valid and active
//! `ask_` bearer key looked up by its SHA-256, then the key's own IP
//! allowlist and allowed domains.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};

use super::{hash_secret, well_formed, ApiKey, KeyStatus};
use crate::access::{self, origin};
use crate::app::AppState;
use crate::error::{ApiError, AuthError, PolicyError};

/// The authenticated key and the client's address. Every `/v1` handler takes
/// it first, so no handler can run without it. (An extractor rather than a
/// middleware layer: the layer's boxing cost showed in the benchmark.)
#[derive(Clone)]
pub struct AuthedKey {
    pub key: Arc<ApiKey>,
    pub client_ip: IpAddr,
}

impl AuthedKey {
    /// The request log record of this request.
    pub fn draft(&self, headers: &HeaderMap) -> crate::logs::Draft {
        let mut d = crate::logs::Draft::for_request(headers, self.client_ip);
        d.record.key_id = Some(self.key.id.clone());
        d
    }
}

impl FromRequestParts<AppState> for AuthedKey {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0);
        let nets = state.access_nets();
        let client_ip = access::client_ip(peer, &parts.headers, &nets.trusted_proxies);
        match admit(state, &parts.headers, client_ip, &nets.allowed_ips) {
            Ok(key) => Ok(AuthedKey { key, client_ip }),
            Err((err, restricted)) => {
                let code = err.body().error.code;
                let mut resp = err.into_response();
                // Refusals are readable by the page that made them, except
                // that a domain-restricted key never answers with `*`.
                origin::cors(resp.headers_mut(), &parts.headers, !restricted, false);
                // Refused requests are logged too (without a body or key id:
                // nothing the client sent is trusted yet).
                let d = crate::logs::Draft::for_request(&parts.headers, client_ip);
                if let Ok(v) = axum::http::HeaderValue::from_str(d.answer_id()) {
                    resp.headers_mut().insert(crate::logs::REQUEST_ID_HEADER, v);
                }
                state
                    .logs
                    .submit(d.finish(resp.status().as_u16(), code, None))
                    .await;
                Err(resp)
            }
        }
    }
}

/// `Err` carries whether the refusal concerns a domain-restricted key.
fn admit(
    state: &AppState,
    headers: &HeaderMap,
    ip: IpAddr,
    global_allow: &[ipnet::IpNet],
) -> Result<Arc<ApiKey>, (ApiError, bool)> {
    if !global_allow.is_empty() && !access::allowed(global_allow, ip) {
        return Err((PolicyError::IpNotAllowed { for_key: false }.into(), false));
    }
    if let Some(retry_after) = state.throttle.blocked_for(ip) {
        return Err((PolicyError::AuthThrottled { retry_after }.into(), false));
    }
    let key = match authenticate(state, headers) {
        Ok(k) => k,
        Err(e) => {
            state.throttle.failed(ip);
            return Err((e.into(), false));
        }
    };
    let restricted = !key.allowed_domains.is_empty();
    if !key.allowed_ips.is_empty() && !access::allowed(&key.allowed_ips, ip) {
        return Err((
            PolicyError::IpNotAllowed { for_key: true }.into(),
            restricted,
        ));
    }
    if restricted {
        let found = origin::request_origin(headers);
        let ok = found
            .as_ref()
            .is_some_and(|(_, host)| origin::allows(&key.allowed_domains, host.as_deref()));
        if !ok {
            let origin = found.map(|(raw, _)| raw.chars().take(200).collect());
            return Err((PolicyError::OriginNotAllowed { origin }.into(), true));
        }
    }
    Ok(key)
}

pub fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Arc<ApiKey>, AuthError> {
    let secret = bearer(headers)?;
    if !well_formed(secret) {
        return Err(AuthError::Malformed);
    }
    let key = state
        .keys
        .get(&hash_secret(secret))
        .ok_or(AuthError::Unknown)?;
    let now = crate::store::now();
    match key.status(now) {
        KeyStatus::Active => {}
        KeyStatus::Revoked => return Err(AuthError::Revoked),
        KeyStatus::Expired => return Err(AuthError::Expired),
    }
    key.last_used_at.fetch_max(now, Ordering::Relaxed);
    Ok(key)
}

/// The token of the single `Authorization: Bearer …` header. Two headers are
/// refused outright: proxies disagree on which one wins.
pub fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthError::Missing)?;
    if values.next().is_some() {
        return Err(AuthError::Malformed);
    }
    let value = value.to_str().map_err(|_| AuthError::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed);
    }
    Ok(token.trim())
}
