//! Authentication at the edge: which routes need a caller, and checking the access token of those
//! that do with the API's own rules (HS256 only, `exp`, `iss`, `aud`). API keys are the API's to
//! check; the gateway passes them on and only uses a keyed hash of them as a rate-limit key.

use axum::http::{HeaderMap, Method, Uri, header};
use orion_auth::TokenKeys;
use sha2::{Digest, Sha256};

/// Who the caller is, as far as the gateway knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    Anonymous,
    /// A valid access token's subject.
    User(uuid::Uuid),
    /// A keyed hash of an API key (never the key itself).
    ApiKey(String),
}

/// Why a protected route was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Missing,
    Invalid,
}

impl Refusal {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Invalid => "invalid",
        }
    }
}

/// Routes anyone may call: sign-up and sign-in, the catalog, docs, the admin panel's files,
/// health. Everything else under `/api` and `/hubs` needs a caller.
pub(crate) fn is_public(method: &Method, path: &str) -> bool {
    if method == Method::OPTIONS {
        // CORS preflights carry no credentials by design.
        return true;
    }
    let read = method == Method::GET || method == Method::HEAD;
    match path {
        "/api/auth/login" | "/api/auth/register" | "/api/auth/refresh" => true,
        _ if path.starts_with("/api/inventory") => read,
        _ if path.starts_with("/api/") || path == "/api" => false,
        _ if path.starts_with("/hubs/") || path == "/hubs" => false,
        // Docs, the admin panel's static files, health, anything else the API serves.
        _ => true,
    }
}

/// Whether the request is a login or registration (the tight rate policy).
pub(crate) fn is_login(method: &Method, path: &str) -> bool {
    method == Method::POST && matches!(path, "/api/auth/login" | "/api/auth/register")
}

/// The caller of a request, or why it is refused when the route is protected.
pub(crate) fn identify(
    keys: &TokenKeys,
    key_salt: &[u8],
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Caller, Refusal> {
    let path = uri.path();
    let public = is_public(method, path);
    if let Some(key) = api_key(headers) {
        return Ok(Caller::ApiKey(keyed_hash(key_salt, key)));
    }
    let token = bearer(headers).or_else(|| {
        // Browsers cannot set headers on a WebSocket; hubs accept the token in the query.
        (path.starts_with("/hubs/"))
            .then(|| query_param(uri, "access_token"))
            .flatten()
    });
    match token {
        Some(token) => match keys.verify(&token) {
            Ok(claims) => Ok(Caller::User(claims.sub)),
            // A bad token on a public route is the API's business (it may ignore it).
            Err(_) if public => Ok(Caller::Anonymous),
            Err(_) => Err(Refusal::Invalid),
        },
        None if public => Ok(Caller::Anonymous),
        None => Err(Refusal::Missing),
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn api_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(key.trim());
    }
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("apikey").then(|| key.trim())
}

fn query_param(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| percent_decode(value))
}

fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A hash of the key under a per-process secret: a stable rate-limit key that reveals nothing.
fn keyed_hash(salt: &[u8], key: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(key.as_bytes());
    hasher
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The query string with any `access_token` value replaced, for logs.
pub(crate) fn redacted_query(uri: &Uri) -> Option<String> {
    let query = uri.query()?;
    Some(
        query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some(("access_token", _)) => "access_token=REDACTED".to_owned(),
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&"),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn public_and_protected_routes() {
        assert!(is_public(&Method::POST, "/api/auth/login"));
        assert!(is_public(&Method::GET, "/api/inventory/SKU-1"));
        assert!(!is_public(&Method::POST, "/api/inventory"));
        assert!(!is_public(&Method::GET, "/api/orders"));
        assert!(!is_public(&Method::GET, "/api/auth/me"));
        assert!(!is_public(&Method::GET, "/hubs/orders"));
        assert!(is_public(&Method::GET, "/docs"));
        assert!(is_public(&Method::GET, "/admin"));
        assert!(is_public(&Method::OPTIONS, "/api/orders"));
    }

    #[test]
    fn tokens_in_the_query_count_only_on_hubs_and_are_redacted() {
        let uri: Uri = "/hubs/orders?id=1&access_token=abc%2Edef".parse().unwrap();
        assert_eq!(
            query_param(&uri, "access_token").as_deref(),
            Some("abc.def")
        );
        assert_eq!(
            redacted_query(&uri).as_deref(),
            Some("id=1&access_token=REDACTED")
        );
        let keys = TokenKeys::new(
            b"secret-secret-secret-secret-secret",
            time::Duration::minutes(5),
        );
        let api: Uri = "/api/orders?access_token=abc".parse().unwrap();
        assert_eq!(
            identify(&keys, b"s", &Method::GET, &api, &HeaderMap::new()),
            Err(Refusal::Missing)
        );
    }

    #[test]
    fn api_keys_are_hashed() {
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", "ork_abc_def".parse().unwrap());
        let keys = TokenKeys::new(
            b"secret-secret-secret-secret-secret",
            time::Duration::minutes(5),
        );
        let uri: Uri = "/api/orders".parse().unwrap();
        let Ok(Caller::ApiKey(hash)) = identify(&keys, b"salt", &Method::GET, &uri, &headers)
        else {
            panic!("an API key caller");
        };
        assert!(!hash.contains("ork_"));
        assert_eq!(hash.len(), 32);
    }
}
