//! Header hygiene: what a replica gets of the client's headers (hop-by-hop and identity
//! headers out; `X-Forwarded-*`, `X-Request-Id` and `traceparent` made right) and what the client
//! gets of the replica's.

use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};

use super::Scheme;
use super::access_log::Record;
use crate::config::Network;

/// Headers that belong to one connection, never forwarded (RFC 9110 7.6.1). Names made once:
/// a name given as a string is parsed again at every use.
pub(super) const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
];

pub(super) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(super) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub(super) const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Identity headers only the gateway's own checks may assert; a client sending them is ignored.
pub(super) const INTERNAL_IDENTITY: [&str; 5] = [
    "x-user-id",
    "x-user",
    "x-authenticated-user",
    "x-forwarded-user",
    "x-remote-user",
];

/// Removes hop-by-hop headers, including every header the `Connection` header names.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The headers the replica gets.
pub(super) fn upstream_headers(
    incoming: &HeaderMap,
    record: &Record,
    scheme: Scheme,
    trusted_peer: bool,
    websocket: bool,
) -> HeaderMap {
    let mut headers = incoming.clone();
    strip_hop_by_hop(&mut headers);
    let internal: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let name = name.as_str();
            name.starts_with("x-orion-") || INTERNAL_IDENTITY.contains(&name)
        })
        .cloned()
        .collect();
    for name in internal {
        headers.remove(name);
    }
    if websocket {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    }
    let forwarded_for = match incoming.get(X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(chain) if trusted_peer => format!("{chain}, {}", record.peer),
        _ => record.peer.to_string(),
    };
    insert(&mut headers, X_FORWARDED_FOR, &forwarded_for);
    let proto = incoming
        .get(X_FORWARDED_PROTO)
        .filter(|_| trusted_peer)
        .cloned()
        .unwrap_or(HeaderValue::from_static(scheme.as_str()));
    headers.insert(X_FORWARDED_PROTO, proto);
    let host = incoming
        .get(X_FORWARDED_HOST)
        .filter(|_| trusted_peer)
        .or_else(|| incoming.get(header::HOST))
        .cloned();
    if let Some(host) = host {
        headers.insert(X_FORWARDED_HOST, host);
    }
    insert(&mut headers, X_REQUEST_ID, &record.request_id);
    match &record.traceparent {
        Some(own) => insert(&mut headers, TRACEPARENT, own),
        None => insert(&mut headers, TRACEPARENT, &traceparent(incoming)),
    }
    headers
}

fn insert(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// The caller's request id if it is a sane one, else a new one.
pub(super) fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 128
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        // Unique, not secret: a fast generator rather than a system call per request.
        .map_or_else(|| format!("{:032x}", fastrand::u128(..)), str::to_owned)
}

/// The client's address: the socket's, or, behind a trusted proxy, the last address in
/// `X-Forwarded-For` that is not itself a trusted proxy.
pub(super) fn client_ip(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[Network],
    trusted_peer: bool,
) -> IpAddr {
    if !trusted_peer {
        return peer;
    }
    let chain: Vec<IpAddr> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|ip| ip.trim().parse().ok())
        .collect();
    chain
        .iter()
        .rev()
        .find(|ip| !trusted.iter().any(|n| n.contains(**ip)))
        .or(chain.first())
        .copied()
        .unwrap_or(peer)
}

/// Continues the caller's W3C trace (same trace, the gateway as the new parent) or starts one.
fn traceparent(headers: &HeaderMap) -> String {
    let span = format!("{:016x}", fastrand::u64(1..));
    let incoming = headers
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|value| {
            let parts: Vec<&str> = value.trim().split('-').collect();
            let hex = |s: &str, n: usize| {
                s.len() == n
                    && s.bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            };
            match parts.as_slice() {
                [version, trace, parent, flags]
                    if hex(version, 2)
                        && *version != "ff"
                        && hex(trace, 32)
                        && hex(parent, 16)
                        && hex(flags, 2)
                        && trace.bytes().any(|b| b != b'0')
                        && parent.bytes().any(|b| b != b'0') =>
                {
                    Some(format!("00-{trace}-{span}-{flags}"))
                }
                _ => None,
            }
        });
    incoming.unwrap_or_else(|| format!("00-{:032x}-{span}-01", fastrand::u128(1..)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert("connection", "keep-alive, x-secret-hop".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert("x-secret-hop", "1".parse().unwrap());
        headers.insert("te", "trailers".parse().unwrap());
        headers.insert("accept", "application/json".parse().unwrap());
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("accept"));
    }

    #[test]
    fn the_client_ip_comes_from_the_socket_unless_the_peer_is_trusted() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 10.0.0.5".parse().unwrap());
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(client_ip(peer, &headers, &[], false), peer);
        let trusted = [crate::config::parse_network("10.0.0.0/8").unwrap()];
        assert_eq!(
            client_ip(peer, &headers, &trusted, true),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn traceparent_is_continued_or_started() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        let continued = traceparent(&headers);
        assert!(continued.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(!continued.contains("00f067aa0ba902b7"));
        headers.insert("traceparent", "garbage".parse().unwrap());
        let started = traceparent(&headers);
        assert_eq!(started.len(), 55);
        assert!(!started.contains("4bf92f"));
    }

    #[test]
    fn request_ids_are_passed_when_sane() {
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", "abc-123".parse().unwrap());
        assert_eq!(request_id(&headers), "abc-123");
        headers.insert("x-request-id", "has spaces".parse().unwrap());
        assert_ne!(request_id(&headers), "has spaces");
    }
}
