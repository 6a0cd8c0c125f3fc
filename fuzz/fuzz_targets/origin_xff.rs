//! Client-controlled addressing headers: `Origin` / `Referer` parsing and
//! allowed-domain matching, and the client address from `X-Forwarded-For`
//! through trusted proxies. Must never panic; an untrusted peer's address
//! is never replaced.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use assisters::access::{client_ip, origin, parse_cidr};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let (a, b, c) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(a.as_bytes()) {
        h.insert("origin", v.clone());
        h.insert("referer", v);
    }
    if let Ok(v) = HeaderValue::from_bytes(b.as_bytes()) {
        h.insert("x-forwarded-for", v);
    }
    let patterns: Vec<_> = c.split(',').filter_map(|p| origin::parse_pattern(p).ok()).collect();
    let host = origin::request_origin(&h).and_then(|(_, host)| host);
    let _ = origin::allows(&patterns, host.as_deref());
    let _ = parse_cidr(c);

    let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)), 4000);
    assert_eq!(client_ip(peer, &h, &[]), peer.ip(), "untrusted peer kept");
    let trusted = parse_cidr("203.0.113.0/24").map(|n| vec![n]).unwrap_or_default();
    let _ = client_ip(peer, &h, &trusted);
});
