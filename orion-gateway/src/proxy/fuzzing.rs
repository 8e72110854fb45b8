//! Entry point for the fuzz target of the gateway's request handling (`fuzz/`): a request head
//! of arbitrary bytes through the edge's checks and header hygiene, with what must hold for
//! every one of them. Not an API.

use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Instant;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, header};
use orion_auth::TokenKeys;

use super::access_log::{Record, route_label};
use super::headers::{
    HOP_BY_HOP, INTERNAL_IDENTITY, TRACEPARENT, X_FORWARDED_FOR, X_REQUEST_ID, client_ip,
    request_id, upstream_headers,
};
use super::{Scheme, body, tunnel};
use crate::config::{Network, parse_network};
use crate::edge_auth::{self, EdgeAuth};

static EDGE: LazyLock<EdgeAuth> = LazyLock::new(|| {
    EdgeAuth::new(
        TokenKeys::new(
            b"fuzzing-secret-fuzzing-secret-fuzzing",
            &[],
            time::Duration::minutes(15),
        ),
        [7; 16],
    )
});

static TRUSTED: LazyLock<Vec<Network>> =
    LazyLock::new(|| parse_network("10.0.0.0/8").into_iter().collect());

/// A request head made of `data`: a first line `METHOD TARGET`, then `name: value` lines. What
/// hyper would refuse (an invalid method, target, name or value) is skipped. Panics (failing
/// the fuzz run) if the gateway's handling of it breaks a rule.
pub fn request_head(data: &[u8]) {
    let mut lines = data.split(|b| *b == b'\n');
    let mut start = lines.next().unwrap_or_default().splitn(2, |b| *b == b' ');
    let Ok(method) = Method::from_bytes(start.next().unwrap_or_default()) else {
        return;
    };
    let Ok(uri) = Uri::try_from(start.next().unwrap_or_default()) else {
        return;
    };
    let mut incoming = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name),
            HeaderValue::from_bytes(value[1..].trim_ascii()),
        ) {
            incoming.append(name, value);
        }
    }
    let _ = EDGE.identify(&method, &uri, &incoming);
    let _ = body::body_length(&incoming, &method);
    let _ = body::is_replayable(&method, uri.path(), &incoming);

    // Half the inputs as from a trusted proxy, half from anyone.
    let trusted_peer = data.len().is_multiple_of(2);
    let peer: IpAddr = if trusted_peer {
        IpAddr::from([10, 0, 0, 1])
    } else {
        IpAddr::from([203, 0, 113, 7])
    };
    let record = Record {
        method: method.clone(),
        route: route_label(uri.path()),
        path: uri.path().to_owned(),
        query: edge_auth::redacted_query(&uri),
        request_id: request_id(&incoming),
        traceparent: None,
        peer,
        client_ip: client_ip(peer, &incoming, &TRUSTED, trusted_peer),
        started: Instant::now(),
    };
    // No access token the client put in the query reaches the log: each value, however it is
    // spelled in the query, is absent from what is logged.
    if let (Some(raw), Some(logged)) = (uri.query(), &record.query) {
        let is_token = |pair: &&str| pair.starts_with("access_token=");
        let rest: Vec<&str> = raw.split('&').filter(|pair| !is_token(pair)).collect();
        for pair in raw.split('&').filter(is_token) {
            let value = &pair["access_token=".len()..];
            // A value short or common enough to appear in the rest of the query proves nothing.
            let telling = value.len() >= 8
                && !rest.iter().any(|other| other.contains(value))
                && !"access_token=REDACTED".contains(value);
            assert!(
                !telling || !logged.contains(value),
                "a token left in the logged query: {logged}"
            );
        }
    }

    let websocket = tunnel::is_websocket(&incoming);
    let outgoing = upstream_headers(&incoming, &record, Scheme::Https, trusted_peer, websocket);
    for name in &HOP_BY_HOP {
        let reset_for_websocket =
            websocket && (name == header::CONNECTION || name == header::UPGRADE);
        assert!(
            reset_for_websocket || !outgoing.contains_key(name),
            "hop-by-hop {name} forwarded"
        );
    }
    assert!(
        !outgoing.keys().any(|name| {
            name.as_str().starts_with("x-orion-") || INTERNAL_IDENTITY.contains(&name.as_str())
        }),
        "a client-sent identity header forwarded"
    );
    assert_eq!(outgoing.get_all(X_FORWARDED_FOR).iter().count(), 1);
    assert_eq!(
        outgoing.get(TRACEPARENT).map(HeaderValue::len),
        Some(55),
        "traceparent"
    );
    assert!(outgoing.contains_key(X_REQUEST_ID));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_keep_the_rules() {
        for seed in [
            &b"GET /api/orders\nauthorization: Bearer abc.def.ghi\nx-api-key: ork_x"[..],
            b"GET /hubs/orders?access_token=a%2Eb&x=1\nupgrade: websocket\nconnection: upgrade, x-user-id\nx-user-id: admin",
            b"POST /api/orders\ncontent-length: 99999999999999999999\ntransfer-encoding: chunked\nidempotency-key: k",
            b"GET //..%00/api\nx-forwarded-for: 1.2.3.4, ::1, garbage\ntraceparent: 00-0-0-0\nx-request-id: a b",
        ] {
            request_head(seed);
        }
    }
}
