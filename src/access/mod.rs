//! Who may call with a key: the client's address (through trusted proxies),
//! IP allowlists, allowed domains with CORS, and throttling of failed
//! authentication per address.

pub mod origin;
pub mod throttle;

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Parses `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a /32 or /128).
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    let net = if s.contains('/') {
        s.parse::<IpNet>()
            .map_err(|e| format!("invalid CIDR {s:?}: {e}"))?
    } else {
        IpNet::from(
            s.parse::<IpAddr>()
                .map_err(|e| format!("invalid IP address {s:?}: {e}"))?,
        )
    };
    Ok(normalize_net(net.trunc()))
}

/// IPv4-mapped IPv6 (`::ffff:1.2.3.4`) compares as the IPv4 address it is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

fn normalize_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        _ => net,
    }
}

pub fn allowed(list: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    list.iter().any(|n| n.contains(&ip))
}

/// An address as text, as `Display` writes it. IPv4 is written by hand: it
/// goes into every request's log record, and `fmt` cost 1.3k instructions.
pub fn ip_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut s = String::with_capacity(15);
    for (i, o) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        if o >= 100 {
            s.push(char::from(b'0' + o / 100));
        }
        if o >= 10 {
            s.push(char::from(b'0' + o / 10 % 10));
        }
        s.push(char::from(b'0' + o % 10));
    }
    s
}

/// The client's address: the socket peer, unless the peer is a trusted
/// proxy, in which case the right-most `X-Forwarded-For` hop that is not a
/// trusted proxy. A header from an untrusted peer is ignored.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer_ip = canonical(peer.ip());
    if trusted.is_empty() || !allowed(trusted, peer_ip) {
        return peer_ip;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    let mut client = peer_ip;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            // Garbage where the client's address should be: it is unknown.
            // Not the proxy's own address, which an allowlist may hold and
            // which every client would then share in the auth throttle.
            return IpAddr::from([0, 0, 0, 0]);
        };
        let ip = canonical(ip);
        client = ip;
        if !allowed(trusted, ip) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` hop: an address, or one with a port as some
/// proxies write it (`192.0.2.1:5100`, `[2001:db8::1]:5100`, `[2001:db8::1]`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .or_else(|| hop.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().filter_map(|s| parse_cidr(s).ok()).collect()
    }

    #[test]
    fn cidrs_and_mapped_addresses() {
        let l = nets(&[
            "10.0.0.0/8",
            "2001:db8::/32",
            "192.0.2.7",
            "::ffff:198.51.100.0/120",
        ]);
        assert!(allowed(
            &l,
            "10.1.2.3".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
        ));
        assert!(allowed(
            &l,
            "::ffff:10.9.9.9"
                .parse()
                .unwrap_or(IpAddr::from([0, 0, 0, 0]))
        ));
        assert!(allowed(
            &l,
            "2001:db8::1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
        ));
        assert!(allowed(
            &l,
            "192.0.2.7".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
        ));
        assert!(allowed(
            &l,
            "198.51.100.20"
                .parse()
                .unwrap_or(IpAddr::from([0, 0, 0, 0]))
        ));
        assert!(!allowed(
            &l,
            "192.0.2.8".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
        ));
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("example.com").is_err());
    }

    #[test]
    fn forwarded_for_only_through_trusted_proxies() {
        let trusted = nets(&["127.0.0.1", "10.0.0.0/8"]);
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.9, 10.0.0.2"
                .parse()
                .unwrap_or(axum::http::HeaderValue::from_static("")),
        );
        let proxy: SocketAddr = "127.0.0.1:5000"
            .parse()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        let stranger: SocketAddr = "198.51.100.1:5000"
            .parse()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        assert_eq!(client_ip(proxy, &h, &trusted).to_string(), "203.0.113.9");
        assert_eq!(
            client_ip(stranger, &h, &trusted).to_string(),
            "198.51.100.1"
        );
        assert_eq!(client_ip(proxy, &h, &[]).to_string(), "127.0.0.1");
        // Hops with ports; garbage makes the client unknown, not the proxy.
        for (xff, client) in [
            ("203.0.113.9:41000, 10.0.0.2", "203.0.113.9"),
            ("[2001:db8::5]:41000", "2001:db8::5"),
            ("[2001:db8::5]", "2001:db8::5"),
            ("6.6.6.6, not-an-ip, 10.0.0.2", "0.0.0.0"),
            ("10.0.0.3, 10.0.0.2", "10.0.0.3"),
            ("", "127.0.0.1"),
        ] {
            let mut h = HeaderMap::new();
            h.insert(
                "x-forwarded-for",
                xff.parse()
                    .unwrap_or(axum::http::HeaderValue::from_static("")),
            );
            assert_eq!(client_ip(proxy, &h, &trusted).to_string(), client, "{xff}");
        }
    }

    #[test]
    fn ip_text_writes_what_display_writes() {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        let fixed = [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.100.9",
            "1.20.199.250",
            "::1",
            "2001:db8::7",
        ];
        let random = (0..5000).map(|_| IpAddr::from(rng.gen::<[u8; 4]>()));
        for ip in fixed.iter().map(|s| s.parse().unwrap()).chain(random) {
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }
}
