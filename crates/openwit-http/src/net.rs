//! Address safety for everything that fetches from the web (the crawler, the WARC reader, the
//! downloader): names are resolved and private, loopback, link-local, multicast, unspecified,
//! and other non-public addresses are refused — IPv4, IPv6 and IPv4-mapped/compatible forms —
//! unless the pipeline sets `allow_private_networks = true` (tests do, to reach 127.0.0.1).
//!
//! - [`is_forbidden`]: whether an address is off limits.
//! - [`GuardedResolver`]: resolves a name and drops forbidden addresses, failing with
//!   [`ForbiddenAddress`] when none is left. [`crate::client::HttpClient`], the one HTTP client,
//!   resolves every name through it (behind a cache).
//!   URLs whose host is an IP literal never reach a resolver: check them with [`is_forbidden`]
//!   before each request and each redirect hop.
//!
//! - [`without_env_proxies`]: through a proxy named in the environment (`http_proxy`,
//!   `HTTPS_PROXY`, `ALL_PROXY`, ...) host names would be resolved by the proxy, never by the
//!   guarded resolver, so those variables are ignored (with one warning per process that says
//!   so). A proxy is used only when the pipeline names one (`[pipeline] proxy`); the client of
//!   [`crate::client`] then resolves and checks every name itself before the request goes there.
//!
//! Every HTTP request of openwit goes through [`crate::client::HttpClient`], which applies these
//! rules to the first request and to every redirect hop.
//!
//! ```
//! use std::net::IpAddr;
//! use openwit_http::net::is_forbidden;
//! assert!(is_forbidden(&"127.0.0.1".parse::<IpAddr>().unwrap()));
//! assert!(is_forbidden(&"::ffff:10.0.0.1".parse::<IpAddr>().unwrap()));
//! assert!(!is_forbidden(&"93.184.216.34".parse::<IpAddr>().unwrap()));
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The environment variables through which `reqwest` would pick up a proxy.
pub const PROXY_ENV_VARS: [&str; 6] = [
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
];

/// Turns off `reqwest`'s use of proxy environment variables on `b`, and warns once per process
/// when one of them is set: through an unchecked proxy, names are resolved by the proxy and the
/// address rules could not hold. The only proxy openwit uses is the one `[pipeline] proxy` names
/// ([`crate::client`] checks every name itself before it goes there).
pub fn without_env_proxies(b: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
    static WARNED: std::sync::Once = std::sync::Once::new();
    let set: Vec<&str> = PROXY_ENV_VARS
        .iter()
        .copied()
        .filter(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
        .collect();
    if !set.is_empty() {
        WARNED.call_once(|| {
            tracing::warn!(
                "ignoring the proxy set in {}: openwit uses only the proxy named by `[pipeline] proxy`, \
                 and checks every address itself (a proxy from the environment would resolve host \
                 names where the private-address check cannot see them)",
                set.join(", ")
            );
        });
    }
    b.no_proxy()
}

/// Whether `ip` is not a public unicast address: private, loopback, link-local, multicast,
/// unspecified, broadcast, shared (CGNAT), documentation, benchmarking, reserved, unique-local,
/// and the IPv4-mapped / IPv4-compatible / NAT64 / 6to4 forms of those.
pub fn is_forbidden(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: &Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || o[0] == 0 // "this network"
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10 shared address space
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24 IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15 benchmarking
        || o[0] >= 240 // 240.0.0.0/4 reserved
}

fn forbidden_v6(ip: &Ipv6Addr) -> bool {
    let s = ip.segments();
    if ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() {
        return true;
    }
    // IPv4-mapped ::ffff:a.b.c.d and IPv4-compatible ::a.b.c.d
    if s[0..5] == [0, 0, 0, 0, 0] && (s[5] == 0xffff || s[5] == 0) {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return forbidden_v4(&v4);
    }
    // NAT64 64:ff9b::/96 embeds an IPv4 address
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return forbidden_v4(&v4);
    }
    // 6to4 2002::/16 embeds an IPv4 address in the next 32 bits
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        if forbidden_v4(&v4) {
            return true;
        }
    }
    (s[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local
        || (s[0] & 0xffc0) == 0xfe80 // fe80::/10 link-local
        || (s[0] & 0xffc0) == 0xfec0 // fec0::/10 site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // 2001:db8::/32 documentation
        || s[0] == 0x0100 && s[1..4] == [0, 0, 0] // 100::/64 discard-only
}

/// The error a [`GuardedResolver`] returns when every address of a name is forbidden (or an
/// IP-literal check fails). Find it in a `reqwest::Error` by walking `source()`.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "{host} resolves only to non-public addresses ({addrs}); set allow_private_networks = true to allow them"
)]
pub struct ForbiddenAddress {
    pub host: String,
    pub addrs: String,
}

impl ForbiddenAddress {
    /// Whether `err` or any error in its `source()` chain is a [`ForbiddenAddress`].
    pub fn is_in(err: &(dyn std::error::Error + 'static)) -> bool {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = cur {
            if e.downcast_ref::<ForbiddenAddress>().is_some() {
                return true;
            }
            // `io::Error::source()` skips its own payload: look inside it.
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && io
                    .get_ref()
                    .is_some_and(|inner| inner.downcast_ref::<ForbiddenAddress>().is_some())
            {
                return true;
            }
            cur = e.source();
        }
        false
    }
}

static OVERRIDES: std::sync::RwLock<Vec<(String, SocketAddr)>> = std::sync::RwLock::new(Vec::new());

/// Makes every [`GuardedResolver`] in this process resolve `host` to `addr` (its port is used
/// when a URL names none). The CLI uses it to serve the demo's web site on 127.0.0.1 under a
/// stable name for the whole run, so that recorded URLs do not depend on the port. The address
/// rules still apply to `addr`.
pub fn override_host(host: &str, addr: SocketAddr) {
    let mut o = OVERRIDES.write().unwrap_or_else(|e| e.into_inner());
    o.retain(|(h, _)| !h.eq_ignore_ascii_case(host));
    o.push((host.to_ascii_lowercase(), addr));
}

fn overridden(host: &str) -> Option<SocketAddr> {
    let o = OVERRIDES.read().unwrap_or_else(|e| e.into_inner());
    o.iter()
        .find(|(h, _)| h.eq_ignore_ascii_case(host))
        .map(|(_, a)| *a)
}

/// A `reqwest` resolver (system resolver via tokio) that refuses forbidden addresses unless
/// `allow_private` is set.
#[derive(Debug, Clone, Copy, Default)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl GuardedResolver {
    /// Resolves `host` (a [`override_host`] entry first, then the system resolver) and keeps the
    /// allowed addresses (port 0, unless an override names one).
    pub async fn lookup(&self, host: &str) -> Result<Vec<SocketAddr>, std::io::Error> {
        let addrs: Vec<SocketAddr> = match overridden(host) {
            Some(addr) => vec![addr],
            None => tokio::net::lookup_host((host, 0)).await?.collect(),
        };
        keep_allowed(host, addrs, self.allow_private)
    }
}

/// The addresses of `addrs` (what `host` resolved to) that the address rules allow; all of them
/// when `allow_private`. None left is a `PermissionDenied` error carrying a [`ForbiddenAddress`].
fn keep_allowed(
    host: &str,
    addrs: Vec<SocketAddr>,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, std::io::Error> {
    if allow_private {
        return Ok(addrs);
    }
    let allowed: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|a| !is_forbidden(&a.ip()))
        .collect();
    if allowed.is_empty() {
        let list = addrs
            .iter()
            .map(|a| a.ip().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            ForbiddenAddress {
                host: host.to_string(),
                addrs: list,
            },
        ));
    }
    Ok(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> bool {
        is_forbidden(&s.parse::<IpAddr>().unwrap())
    }

    #[test]
    fn forbidden_v4_ranges() {
        for a in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "224.0.0.1",
            "239.255.255.250",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "240.0.0.1",
        ] {
            assert!(f(a), "{a} should be forbidden");
        }
        for a in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "93.184.216.34",
            "198.20.0.1",
        ] {
            assert!(!f(a), "{a} should be allowed");
        }
    }

    #[test]
    fn forbidden_v6_ranges() {
        for a in [
            "::1",
            "::",
            "ff02::1",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:c0a8:0101::1",
            "2001:db8::1",
            "fec0::1",
        ] {
            assert!(f(a), "{a} should be forbidden");
        }
        for a in [
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(!f(a), "{a} should be allowed");
        }
    }

    #[test]
    fn resolver_refuses_loopback_unless_allowed() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = rt
            .block_on(
                GuardedResolver {
                    allow_private: false,
                }
                .lookup("localhost"),
            )
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(ForbiddenAddress::is_in(&err));
        let ok = rt
            .block_on(
                GuardedResolver {
                    allow_private: true,
                }
                .lookup("localhost"),
            )
            .unwrap();
        assert!(ok.iter().all(|a| a.ip().is_loopback()));
    }

    #[test]
    fn overrides_win_and_still_obey_the_rules() {
        let addr: SocketAddr = "127.0.0.1:4242".parse().unwrap();
        override_host("Demo.Override.Test", addr);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let allowed = rt
            .block_on(
                GuardedResolver {
                    allow_private: true,
                }
                .lookup("demo.override.test"),
            )
            .unwrap();
        assert_eq!(allowed, vec![addr]);
        let refused = rt
            .block_on(
                GuardedResolver {
                    allow_private: false,
                }
                .lookup("demo.override.test"),
            )
            .unwrap_err();
        assert!(ForbiddenAddress::is_in(&refused), "{refused}");
    }
}
