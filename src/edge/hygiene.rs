//! Header and URL hygiene on `/v1`, before authentication: keys in query
//! strings and header names with underscores are refused with a clear 400.
//!
//! Two other classic attacks are settled below us and tested rather than
//! re-implemented: hyper refuses differing `Content-Length` values, and
//! when `Transfer-Encoding: chunked` and `Content-Length` both arrive it
//! frames the body by `Transfer-Encoding` alone and closes the connection
//! after the response (RFC 9112 §6.3), so no second request can be
//! smuggled; duplicate `Authorization` headers get the same 401 as any bad
//! key (`keys::auth::bearer`).

use axum::extract::Request;
use axum::http::{HeaderMap, Uri};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::EdgeError;

/// Query parameter names clients use for keys, compared case-insensitively.
const KEY_PARAMS: [&str; 7] = [
    "api_key",
    "api-key",
    "apikey",
    "key",
    "access_token",
    "token",
    "authorization",
];

pub fn inspect(headers: &HeaderMap, uri: &Uri) -> Result<(), EdgeError> {
    if let Some(name) = headers.keys().find(|n| n.as_str().contains('_')) {
        return Err(EdgeError::BadHeader(format!(
            "Header names with underscores are refused (`{name}`): proxies disagree on \
             whether they equal the hyphenated name. Use hyphens."
        )));
    }
    if let Some(q) = uri.query() {
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            let named = KEY_PARAMS.iter().any(|p| k.eq_ignore_ascii_case(p));
            // A key as the value, with or without `Bearer` and spaces, or
            // as a bare parameter (`…?ask_…`).
            let is_key = |s: &str| {
                let s = s.trim_start();
                let s = match s.get(..7) {
                    Some(b) if b.eq_ignore_ascii_case("bearer ") => s[7..].trim_start(),
                    _ => s,
                };
                s.starts_with("ask_")
            };
            if named || is_key(&v) || is_key(&k) {
                return Err(EdgeError::KeyInQuery(k.into_owned()));
            }
        }
    }
    Ok(())
}

/// The hygiene layer on `/v1`.
pub async fn check(req: Request, next: Next) -> Response {
    match inspect(req.headers(), req.uri()) {
        Ok(()) => next.run(req).await,
        Err(e) => crate::error::readable(e.into(), req.headers()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn keys_in_the_url_are_refused_by_name_or_by_shape() {
        let h = HeaderMap::new();
        assert!(inspect(&h, &uri("/v1/models?limit=3")).is_ok());
        for q in [
            "?api_key=x",
            "?API-KEY=x",
            "?x=ask_abc",
            "?token=t",
            "?ask_live123",
            "?x=%20ask_abc",
            "?x=bearer%20ask_abc",
            "?x=Bearer%20%20ask_abc",
        ] {
            assert!(
                matches!(
                    inspect(&h, &uri(&format!("/v1/models{q}"))),
                    Err(EdgeError::KeyInQuery(_))
                ),
                "{q}"
            );
        }
    }

    #[test]
    fn underscored_header_names_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-api-key",
            "a".parse()
                .unwrap_or(axum::http::HeaderValue::from_static("")),
        );
        assert!(inspect(&h, &uri("/v1/models")).is_ok());
        h.insert("x_api_key", axum::http::HeaderValue::from_static("a"));
        assert!(matches!(
            inspect(&h, &uri("/v1/models")),
            Err(EdgeError::BadHeader(_))
        ));
    }
}
