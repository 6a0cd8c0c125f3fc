//! Allowed domains: parsing the `Origin` (or `Referer`) a browser sends,
//! matching its host against a key's list, and the CORS headers that go
//! with the answer.
//!
//! Matching is on the parsed host only, lower-cased, without a trailing dot,
//! with IDNs in their ASCII (punycode) form, so `example.com.evil.com`,
//! `evilexample.com`, `https://example.com@evil.com` and `null` never pass
//! for `example.com`.

use axum::http::{header, HeaderMap, HeaderValue};

/// An allowed-domain entry: `example.com` (that host only) or
/// `*.example.com` (its subdomains at any depth, not the apex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Exact(String),
    Subdomains(String),
}

/// Normalises an entry as an admin typed it; refuses schemes, paths and ports.
pub fn parse_pattern(raw: &str) -> Result<Pattern, String> {
    let s = raw.trim();
    let (wild, host) = match s.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if host.is_empty() || host.contains(['/', ':', '@', '*', ' ']) {
        return Err(format!(
            "invalid allowed domain {raw:?}: give a host like example.com or *.example.com (no scheme, port or path)"
        ));
    }
    // Checked again after IDNA mapping, which turns full-width `：／＠＊`
    // into the characters refused above: what is stored must parse back
    // to itself when the store is loaded.
    let ascii = normalize_host(host)
        .filter(|h| {
            h.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
        })
        .ok_or_else(|| format!("invalid allowed domain {raw:?}"))?;
    Ok(if wild {
        Pattern::Subdomains(ascii)
    } else {
        Pattern::Exact(ascii)
    })
}

impl Pattern {
    pub fn matches(&self, host: &str) -> bool {
        match self {
            Pattern::Exact(h) => host == h,
            Pattern::Subdomains(apex) => host
                .strip_suffix(apex.as_str())
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
        }
    }

    pub fn as_string(&self) -> String {
        match self {
            Pattern::Exact(h) => h.clone(),
            Pattern::Subdomains(h) => format!("*.{h}"),
        }
    }
}

fn normalize_host(host: &str) -> Option<String> {
    let h = host.trim_end_matches('.');
    let ascii = idna::domain_to_ascii(h).ok()?;
    (!ascii.is_empty()).then(|| ascii.to_ascii_lowercase())
}

/// The requesting page's origin as a browser states it: `Origin`, or
/// lacking it, the origin of `Referer`. Returns the origin text and its host.
pub fn request_origin(headers: &HeaderMap) -> Option<(String, Option<String>)> {
    let raw = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))?
        .to_str()
        .ok()?;
    let host = url::Url::parse(raw)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .and_then(|u| u.host_str().map(str::to_owned))
        .and_then(|h| normalize_host(h.trim_start_matches('[').trim_end_matches(']')));
    Some((raw.to_owned(), host))
}

pub fn allows(patterns: &[Pattern], host: Option<&str>) -> bool {
    host.is_some_and(|h| patterns.iter().any(|p| p.matches(h)))
}

const EXPOSE: &str =
    "x-request-id, x-assisters-upstream, retry-after, x-ratelimit-limit-requests, \
     x-ratelimit-remaining-requests, x-ratelimit-reset-requests, x-ratelimit-limit-tokens, \
     x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens";

/// CORS headers for an actual response. `allow_any` is for keys without a
/// domain list (and for refusals before any key is known); a restricted key
/// gets its caller's origin echoed, never `*`.
pub fn cors(h: &mut HeaderMap, request_headers: &HeaderMap, allow_any: bool, allowed_origin: bool) {
    if !request_headers.contains_key(header::ORIGIN) {
        return;
    }
    let value = if allow_any {
        Some(HeaderValue::from_static("*"))
    } else if allowed_origin {
        request_headers.get(header::ORIGIN).cloned()
    } else {
        None
    };
    if let Some(v) = value {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE),
        );
    }
    h.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// The answer to a preflight: browsers send no key with it, so it cannot
/// know the key's domains; the actual request is checked instead.
pub fn preflight(request_headers: &HeaderMap) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(origin) = request_headers.get(header::ORIGIN) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    }
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    let asked = request_headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            v.len() <= 1024
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_, ".contains(&b))
        })
        .unwrap_or("authorization, content-type");
    if let Ok(v) = HeaderValue::from_str(asked) {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
    }
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_of(origin: &str) -> Option<String> {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        request_origin(&h).and_then(|(_, host)| host)
    }

    #[test]
    fn exact_and_wildcard_matching() {
        let p = vec![
            parse_pattern("Example.COM.").unwrap(),
            parse_pattern("*.apps.example.org").unwrap(),
        ];
        let ok = |o: &str| allows(&p, host_of(o).as_deref());
        assert!(ok("https://example.com"));
        assert!(ok("https://EXAMPLE.com:8443"));
        assert!(ok("https://example.com."));
        assert!(ok("https://a.apps.example.org"));
        assert!(ok("https://x.y.apps.example.org"));
        assert!(
            !ok("https://apps.example.org"),
            "a wildcard does not cover the apex"
        );
        assert!(!ok("https://example.com.evil.com"));
        assert!(!ok("https://evilexample.com"));
        assert!(!ok("https://example.com@evil.com"));
        assert!(!ok("https://evil.com/?x=https://example.com"));
        assert!(!ok("null"));
        assert!(!ok("file:///etc/passwd"));
        assert!(!ok("https://badapps.example.org"));
    }

    #[test]
    fn idns_compare_in_ascii() {
        let p = vec![parse_pattern("bücher.example").unwrap()];
        assert_eq!(p[0], Pattern::Exact("xn--bcher-kva.example".into()));
        assert!(allows(
            &p,
            host_of("https://xn--bcher-kva.example").as_deref()
        ));
        // Browsers send IDN origins in punycode; upper case still matches.
        assert!(allows(
            &p,
            host_of("https://XN--BCHER-KVA.example").as_deref()
        ));
    }

    #[test]
    fn entries_are_validated() {
        for bad in [
            "https://example.com",
            "example.com/path",
            "example.com:80",
            "*",
            "*.",
            "a b.com",
            "",
            "a..b.com",
            // Full-width forms that IDNA maps to refused characters.
            "a\u{ff1a}b.com",
            "a\u{ff0f}b.com",
            "a\u{ff20}b.com",
            "\u{ff0a}.example.com",
            "*.\u{ff0a}.example.com",
        ] {
            assert!(parse_pattern(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_accepted_entry_parses_back_to_itself() {
        for good in [
            "Example.COM.",
            "*.apps.example.org",
            "bücher.example",
            "127.0.0.1",
            "my_host.local",
        ] {
            let p = parse_pattern(good).unwrap();
            assert_eq!(parse_pattern(&p.as_string()), Ok(p), "{good}");
        }
    }
}
