//! Server-side request forgery: a webhook URL is an address someone else chose, and Orion's
//! worker sits inside the shop's network, next to its database, its broker and (in a cloud) the
//! instance's metadata service. So a webhook may reach only public addresses: loopback, private,
//! shared (carrier NAT), link-local (where metadata services live), multicast and reserved
//! addresses are refused, at registration and again at every delivery after the name is resolved
//! (a name can be pointed elsewhere after it was registered). The worker connects to exactly the
//! addresses it checked: its resolver drops the forbidden ones.
//!
//! `ORION_WEBHOOK_ALLOW_PRIVATE=true` (the default in dev mode only) lets a receiver on the same
//! machine or network be used, for development and tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

use crate::{Error, Result};

/// Longest URL Orion stores.
pub const MAX_URL_LENGTH: usize = 2_048;

/// Which addresses webhooks may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPolicy {
    pub allow_private: bool,
}

impl AddressPolicy {
    /// Whether a delivery may connect to `ip`.
    pub fn permits(self, ip: IpAddr) -> bool {
        self.allow_private || is_public(ip)
    }
}

/// Whether `ip` is an ordinary address on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // 100.64.0.0/10: shared address space (carrier-grade NAT).
        || (a == 100 && (64..128).contains(&b))
        // 192.0.0.0/24: IETF protocol assignments.
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        // 198.18.0.0/15: benchmarking.
        || (a == 198 && (b == 18 || b == 19))
        // 240.0.0.0/4: reserved.
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    // An IPv4 address in IPv6 clothing is judged as the IPv4 address it reaches.
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    let [first, second, third, fourth, ..] = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
        // 2001:db8::/32: documentation; 2001::/32: Teredo, which tunnels to IPv4.
        || (first == 0x2001 && (second == 0x0db8 || second == 0))
        // 64:ff9b:1::/48: NAT64 for local use (RFC 8215), which reaches private IPv4.
        || (first == 0x64 && second == 0xff9b && third == 1)
        // 100::/64: discard.
        || (first == 0x100 && second == 0 && third == 0 && fourth == 0)
        // Site-local (deprecated, still routed inside some networks).
        || (first & 0xffc0) == 0xfec0)
}

/// The IPv4 address an IPv6 address stands for: mapped (`::ffff:a.b.c.d`), compatible
/// (`::a.b.c.d`, deprecated), translated (`::ffff:0:a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) or
/// 6to4 (`2002:aabb:ccdd::`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    // Mapped and compatible addresses (`::1` and `::` among them, judged as 0.0.0.x).
    if let Some(v4) = ip.to_ipv4() {
        return Some(v4);
    }
    let s = ip.segments();
    let from = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    match s {
        [0, 0, 0, 0, 0xffff, 0, hi, lo] | [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(from(hi, lo)),
        [0x2002, hi, lo, ..] => Some(from(hi, lo)),
        _ => None,
    }
}

/// Checks a URL given at registration: `http` or `https`, a host, no credentials, and (unless
/// the policy allows private addresses) a host that resolves, only to public addresses.
pub async fn check_url(raw: &str, policy: AddressPolicy) -> Result<Url> {
    let url = Url::parse(raw).map_err(|e| Error::Url(format!("not a URL: {e}")))?;
    // Measured as stored: parsing percent-encodes, which can lengthen it.
    if url.as_str().len() > MAX_URL_LENGTH {
        return Err(Error::Url(format!(
            "the URL is longer than {MAX_URL_LENGTH} characters"
        )));
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::Url("the URL must be http or https".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::Url(
            "the URL must not carry credentials; verify Orion by the signature instead".into(),
        ));
    }
    if url.fragment().is_some() {
        return Err(Error::Url("the URL must not have a fragment".into()));
    }
    if policy.allow_private {
        return Ok(url);
    }
    // One answer whatever the name resolves to, or whether it resolves: the registration is no
    // probe of the shop's internal names.
    let public = resolve(&url)
        .await
        .is_ok_and(|addresses| addresses.iter().all(|a| is_public(a.ip())));
    if !public {
        return Err(Error::Forbidden(
            "the URL must reach a public address: its host does not resolve, or resolves to a \
             loopback, private, link-local or reserved address"
                .into(),
        ));
    }
    Ok(url)
}

/// The addresses a URL's host stands for.
async fn resolve(url: &Url) -> Result<Vec<SocketAddr>> {
    let port = url.port_or_known_default().unwrap_or(443);
    match url.host() {
        None => Err(Error::Url("the URL has no host".into())),
        Some(Host::Ipv4(ip)) => Ok(vec![SocketAddr::new(IpAddr::V4(ip), port)]),
        Some(Host::Ipv6(ip)) => Ok(vec![SocketAddr::new(IpAddr::V6(ip), port)]),
        Some(Host::Domain(name)) => {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
                .await
                .map_err(|e| Error::Url(format!("{name} does not resolve: {e}")))?
                .collect();
            if found.is_empty() {
                return Err(Error::Url(format!("{name} does not resolve")));
            }
            Ok(found)
        }
    }
}

/// The address of a URL whose host is an IP address, which no resolver sees.
pub(crate) fn literal_ip(url: &Url) -> Option<IpAddr> {
    match url.host() {
        Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        _ => None,
    }
}

/// The worker's resolver: the system's answers, less the addresses the policy forbids, so that a
/// connection goes only to an address that was checked (no gap for the name to change between a
/// check and the connect).
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuardedResolver {
    pub(crate) policy: AddressPolicy,
}

type Resolving = std::pin::Pin<
    Box<dyn std::future::Future<Output = std::io::Result<std::vec::IntoIter<SocketAddr>>> + Send>,
>;

impl tower_service::Service<hyper_util::client::legacy::connect::dns::Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Resolving;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|address| policy.permits(address.ip()))
                .collect();
            if allowed.is_empty() {
                let why = if found.is_empty() {
                    format!("{host} does not resolve")
                } else {
                    format!("{host} resolves only to private or reserved addresses")
                };
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    why,
                ));
            }
            Ok(allowed.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(raw: &str) -> bool {
        is_public(raw.parse().unwrap())
    }

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_not_public() {
        for raw in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "64:ff9b:1::a00:1",
            "2002:7f00:1::",
            "::7f00:1",
            "::ffff:0:a00:1",
            "2001:0:4136:e378::1",
            "100::1",
        ] {
            assert!(!public(raw), "{raw} counted as public");
        }
        for raw in [
            "93.184.215.14",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(public(raw), "{raw} counted as private");
        }
    }

    #[tokio::test]
    async fn registration_refuses_private_hosts_unless_allowed() {
        let strict = AddressPolicy {
            allow_private: false,
        };
        for url in [
            "http://127.0.0.1:9000/hook",
            "http://localhost/hook",
            "http://[::1]/hook",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.5/",
        ] {
            assert!(
                matches!(check_url(url, strict).await, Err(Error::Forbidden(_))),
                "{url} was accepted"
            );
        }
        let open = AddressPolicy {
            allow_private: true,
        };
        assert!(check_url("http://127.0.0.1:9000/hook", open).await.is_ok());
        // A name that does not resolve gets the same answer as a private one.
        assert!(matches!(
            check_url("http://no-such-host.invalid/", strict).await,
            Err(Error::Forbidden(_))
        ));
    }

    #[tokio::test]
    async fn registration_refuses_urls_that_are_not_web_addresses() {
        let open = AddressPolicy {
            allow_private: true,
        };
        let long = format!("http://127.0.0.1/{}", "é".repeat(400));
        assert!(long.len() < MAX_URL_LENGTH, "short before encoding");
        for url in [
            "ftp://127.0.0.1/",
            "not a url",
            "http://user:pass@127.0.0.1/",
            "http://127.0.0.1/#x",
            long.as_str(),
        ] {
            assert!(
                matches!(check_url(url, open).await, Err(Error::Url(_))),
                "{url} was accepted"
            );
        }
    }
}
