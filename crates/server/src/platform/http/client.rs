//! Who is on the other end of the connection: the client address and its user agent. The
//! address is the TCP peer, or — only when the peer is one of the configured trusted proxies —
//! the rightmost address in `X-Forwarded-For` that is not itself a trusted proxy. Anything left
//! of that hop was written by the client and could be anything, so it is never believed.
//! (`Forwarded`, RFC 7239, is not read.)

use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use std::convert::Infallible;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

/// An address or a CIDR range: `10.0.0.1`, `10.0.0.0/8`, `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = || format!("`{s}` is not an IP address or a CIDR range such as 10.0.0.0/8");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network = IpAddr::from_str(addr).map_err(|_| bad())?.to_canonical();
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Parses a comma-separated list of addresses and ranges (empty entries are ignored).
pub fn parse_ranges(list: &str) -> Result<Vec<IpRange>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(IpRange::from_str)
        .collect()
}

fn trusted(ip: IpAddr, proxies: &[IpRange]) -> bool {
    proxies.iter().any(|r| r.contains(ip))
}

/// One `X-Forwarded-For` hop: an address, possibly with a port or in brackets.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    IpAddr::from_str(hop)
        .ok()
        .or_else(|| SocketAddr::from_str(hop).ok().map(|s| s.ip()))
        .or_else(|| {
            hop.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .and_then(|h| IpAddr::from_str(h).ok())
        })
        .map(|ip| ip.to_canonical())
}

/// The client address for a request from `peer` carrying these `X-Forwarded-For` values (in
/// header order). From an untrusted peer the header is ignored. From a trusted proxy, the hops
/// are read right to left, skipping trusted proxies: the first other address is the client.
/// A hop that is not an address stops the walk at the last good one; when every hop is a
/// trusted proxy, the leftmost is the client.
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    proxies: &[IpRange],
) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted(peer, proxies) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            return client;
        };
        client = ip;
        if !trusted(ip, proxies) {
            return ip;
        }
    }
    client
}

/// The client of this request: its address (see `client_ip`) and what its `User-Agent` says
/// (at most 200 characters, control characters dropped).
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub ip: IpAddr,
    pub user_agent: String,
}

impl ClientInfo {
    /// Code acting for someone inside the process (the demo loader, the command line).
    pub fn internal() -> Self {
        Self {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            user_agent: "clipcart (internal)".into(),
        }
    }

    pub fn from_parts(peer: Option<SocketAddr>, headers: &HeaderMap, proxies: &[IpRange]) -> Self {
        let peer = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip());
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        let user_agent = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        Self {
            ip: client_ip(peer, forwarded, proxies),
            user_agent,
        }
    }
}

impl FromRequestParts<AppState> for ClientInfo {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        Ok(Self::from_parts(
            peer,
            &parts.headers,
            &state.config.trusted_proxies,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn ranges_parse_and_match() {
        let r: IpRange = "10.0.0.0/8".parse().expect("range");
        assert!(r.contains(ip("10.200.3.4")));
        assert!(!r.contains(ip("11.0.0.1")));
        assert!(
            r.contains(ip("::ffff:10.1.2.3")),
            "IPv4-mapped IPv6 is IPv4"
        );
        let one: IpRange = " 127.0.0.1 ".parse().expect("address");
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6: IpRange = "fd00::/8".parse().expect("v6");
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let all: IpRange = "0.0.0.0/0".parse().expect("all");
        assert!(all.contains(ip("203.0.113.9")));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "proxy",
            "10.0.0/8",
        ] {
            assert!(bad.parse::<IpRange>().is_err(), "{bad}");
        }
        assert_eq!(
            parse_ranges("10.0.0.1, 192.168.0.0/16,,").expect("list"),
            vec![
                "10.0.0.1/32".parse().expect("a"),
                "192.168.0.0/16".parse().expect("b")
            ]
        );
        assert!(parse_ranges("10.0.0.1,nope").is_err());
        assert!(parse_ranges("").expect("empty").is_empty());
    }

    #[test]
    fn forwarded_for_is_read_only_from_trusted_proxies_rightmost_untrusted_hop() {
        let proxies = parse_ranges("10.0.0.0/8, 192.0.2.1").expect("proxies");
        let proxy = ip("10.0.0.5");
        // An untrusted peer's header is ignored, whatever it says.
        assert_eq!(
            client_ip(ip("198.51.100.7"), ["203.0.113.9"], &proxies),
            ip("198.51.100.7")
        );
        // No header from a proxy: the proxy itself.
        assert_eq!(client_ip(proxy, [], &proxies), proxy);
        // The client wrote the left part; the proxy appended the real peer on the right.
        assert_eq!(
            client_ip(proxy, ["1.1.1.1, 203.0.113.9"], &proxies),
            ip("203.0.113.9")
        );
        // Proxies in a chain are skipped, over several header lines too.
        assert_eq!(
            client_ip(
                proxy,
                ["1.1.1.1, 203.0.113.9", "192.0.2.1, 10.9.9.9"],
                &proxies
            ),
            ip("203.0.113.9")
        );
        // Every hop a proxy: the leftmost.
        assert_eq!(
            client_ip(proxy, ["10.1.1.1, 10.2.2.2"], &proxies),
            ip("10.1.1.1")
        );
        // Garbage stops the walk at the last good hop.
        assert_eq!(client_ip(proxy, ["203.0.113.9, unknown"], &proxies), proxy);
        assert_eq!(
            client_ip(proxy, ["evil, 203.0.113.9"], &proxies),
            ip("203.0.113.9")
        );
        // Ports and brackets, and IPv4-mapped IPv6.
        assert_eq!(
            client_ip(proxy, ["203.0.113.9:4711"], &proxies),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_ip(proxy, ["[2001:db8::1]:443"], &proxies),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_ip(proxy, ["[2001:db8::2]"], &proxies),
            ip("2001:db8::2")
        );
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.5"), ["::ffff:203.0.113.9"], &proxies),
            ip("203.0.113.9")
        );
        // Nothing is trusted by default.
        assert_eq!(client_ip(proxy, ["203.0.113.9"], &[]), proxy);
    }

    #[test]
    fn user_agent_is_bounded_and_printable() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::USER_AGENT,
            "a\tb".repeat(300).parse().expect("header"),
        );
        let c = ClientInfo::from_parts(None, &headers, &[]);
        assert_eq!(c.user_agent.chars().count(), 200);
        assert!(!c.user_agent.contains('\t'));
        assert_eq!(c.ip, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }
}
