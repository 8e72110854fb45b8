//! Authentication at the edge: which routes need a caller, and checking the access token of those
//! that do with the API's own rules (HS256 only, `exp`, `iss`, `aud`). API keys are the API's to
//! check; the gateway passes them on, uses a keyed hash of them as a rate-limit key once the API
//! has vouched for them, and counts them against the client's address until then.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, Uri, header};
use orion_auth::{Credential, TokenKeys};
use sha2::{Digest, Sha256};

/// Verified access tokens remembered at most; a few megabytes when full.
const VERIFIED_TOKENS: usize = 8_192;

/// Who the caller is, as far as the gateway knows: the subject of a valid access token, and a
/// keyed hash of the API key the API will authenticate the request with (never the key itself).
/// A request may carry both; the rate limits count it under each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Caller {
    pub(crate) user: Option<uuid::Uuid>,
    pub(crate) key: Option<KeyHash>,
    /// The request also carries a key the API will not look at (`X-Api-Key` beside an
    /// `Authorization` header): it is counted against the client's address, and never vouched
    /// for by an answer that another credential earned.
    pub(crate) ignored_key: bool,
}

/// A keyed hash of an API key.
pub(crate) type KeyHash = Box<str>;

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
pub fn is_public(method: &Method, path: &str) -> bool {
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

/// The edge's checks of who calls: access tokens with the API's rules, API keys hashed.
///
/// A verified token is remembered, by its exact bytes, with its subject and expiry: a client
/// sends the same token with every request for up to its lifetime, and parsing it and checking
/// its HMAC again each time would be most of what the gateway spends on an authenticated
/// request. A remembered token is still refused from the moment it expires; the signature of
/// those exact bytes cannot change.
pub(crate) struct EdgeAuth {
    keys: TokenKeys,
    key_salt: [u8; 16],
    verified: quick_cache::sync::Cache<Box<str>, Verified>,
}

#[derive(Debug, Clone, Copy)]
struct Verified {
    sub: uuid::Uuid,
    exp: i64,
}

impl std::fmt::Debug for EdgeAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeAuth")
            .field("verified", &self.verified.len())
            .finish_non_exhaustive()
    }
}

impl EdgeAuth {
    pub(crate) fn new(keys: TokenKeys, key_salt: [u8; 16]) -> EdgeAuth {
        EdgeAuth {
            keys,
            key_salt,
            verified: quick_cache::sync::Cache::new(VERIFIED_TOKENS),
        }
    }

    /// The caller of a request, or why it is refused when the route is protected.
    pub(crate) fn identify(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Caller, Refusal> {
        let path = uri.path();
        let public = is_public(method, path);
        let authorization = headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or_default());
        let x_api_key = headers
            .get("x-api-key")
            .map(|v| v.to_str().unwrap_or_default());
        // The API reads the headers by the same rule: the key counted is the key it checks.
        let credential = Credential::of(authorization, x_api_key);
        let mut key = match credential {
            Credential::ApiKey(key) => Some(keyed_hash(&self.key_salt, key)),
            _ => None,
        };
        // An `X-Api-Key` beside an `Authorization` header is one the API never looks at, unless
        // it is the very key the header carries (SDKs send a key both ways).
        let ignored_key = authorization.is_some()
            && x_api_key.is_some_and(|sent| credential != Credential::ApiKey(sent.trim()));
        let query_token;
        let mut token = match credential {
            Credential::Bearer(token) => Some(token),
            // Browsers cannot set headers on a WebSocket; hubs accept the token in the query.
            _ if path.starts_with("/hubs/") => {
                query_token = query_param(uri, "access_token");
                query_token.as_deref()
            }
            _ => None,
        };
        // ... or an integrator's API key, which shows by its start: the API checks it.
        if key.is_none()
            && let Some(query_key) = token.filter(|t| t.starts_with(orion_auth::API_KEY_START))
        {
            key = Some(keyed_hash(&self.key_salt, query_key));
            token = None;
        }
        let user = match token.map(|token| self.verify(token)) {
            Some(Some(sub)) => Some(sub),
            // A bad token on a public route is the API's business (it may ignore it).
            Some(None) if public => None,
            Some(None) => return Err(Refusal::Invalid),
            None => None,
        };
        if !public && user.is_none() && key.is_none() {
            return Err(Refusal::Missing);
        }
        Ok(Caller {
            user,
            key,
            ignored_key,
        })
    }

    /// The subject of a valid, unexpired token.
    fn verify(&self, token: &str) -> Option<uuid::Uuid> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let leeway = i64::try_from(orion_auth::LEEWAY_SECONDS).unwrap_or(0);
        if let Some(known) = self.verified.get(token) {
            if now <= known.exp.saturating_add(leeway) {
                return Some(known.sub);
            }
            self.verified.remove(token);
            return None;
        }
        let claims = self.keys.verify(token).ok()?;
        self.verified.insert(
            token.into(),
            Verified {
                sub: claims.sub,
                exp: claims.exp,
            },
        );
        Some(claims.sub)
    }
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
fn keyed_hash(salt: &[u8], key: &str) -> KeyHash {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(key.as_bytes());
    hasher
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .into_boxed_str()
}

/// API keys the API has accepted lately, by keyed hash. Until the API has vouched for a key, a
/// request carrying it is counted against its client's address: a made-up key never buys a
/// bucket of its own, and only keys that exist take limiter state. The API says so on every
/// answer to a request it authenticated with a key ([`KEY_ACCEPTED`]); a `401` to a request with
/// a key forgets it (revoked).
pub(crate) struct VouchedKeys {
    keys: quick_cache::sync::Cache<KeyHash, Instant>,
    ttl: Duration,
}

/// The API's answer header naming a request it authenticated with an API key. Internal: the
/// gateway takes it off the answer.
pub(crate) const KEY_ACCEPTED: &str = orion_auth::KEY_ACCEPTED_HEADER;

impl std::fmt::Debug for VouchedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VouchedKeys")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl VouchedKeys {
    /// Keys remembered at most: integrators are few, and only keys the API accepted get in.
    const CAPACITY: usize = 8_192;

    pub(crate) fn new(ttl: Duration) -> VouchedKeys {
        VouchedKeys {
            keys: quick_cache::sync::Cache::new(Self::CAPACITY),
            ttl,
        }
    }

    pub(crate) fn is_vouched(&self, key: &str) -> bool {
        self.keys
            .get(key)
            .is_some_and(|since| since.elapsed() < self.ttl)
    }

    /// Learns from the API's answer to a request that carried `key`.
    pub(crate) fn learn(&self, key: &str, status: u16, accepted: bool) {
        if accepted {
            self.keys.insert(key.into(), Instant::now());
        } else if status == 401 {
            self.keys.remove(key);
        }
    }
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

    const SECRET: &[u8] = b"secret-secret-secret-secret-secret";

    fn edge() -> EdgeAuth {
        EdgeAuth::new(
            TokenKeys::new(SECRET, &[], time::Duration::minutes(5)),
            *b"0123456789abcdef",
        )
    }

    fn bearer_headers(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        headers
    }

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
        let api: Uri = "/api/orders?access_token=abc".parse().unwrap();
        assert_eq!(
            edge().identify(&Method::GET, &api, &HeaderMap::new()),
            Err(Refusal::Missing)
        );
    }

    #[test]
    fn api_keys_are_hashed() {
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", "ork_abc_def".parse().unwrap());
        let uri: Uri = "/api/orders".parse().unwrap();
        let Ok(Caller {
            user: None,
            key: Some(hash),
            ignored_key: false,
        }) = edge().identify(&Method::GET, &uri, &headers)
        else {
            panic!("an API key caller");
        };
        assert!(!hash.contains("ork_"));
        assert_eq!(hash.len(), 32);
    }

    #[test]
    fn a_bearer_and_a_key_are_both_the_caller() {
        let user = uuid::Uuid::now_v7();
        let token = TokenKeys::new(SECRET, &[], time::Duration::minutes(5))
            .issue(
                user,
                orion_auth::Role::Customer,
                time::OffsetDateTime::now_utc(),
            )
            .unwrap();
        let mut headers = bearer_headers(&token.token);
        headers.insert("x-api-key", "made-up".parse().unwrap());
        let uri: Uri = "/api/orders".parse().unwrap();
        let caller = edge().identify(&Method::GET, &uri, &headers).unwrap();
        assert_eq!(caller.user, Some(user));
        // The API authenticates with the token and never looks at the key.
        assert_eq!(caller.key, None);
        assert!(caller.ignored_key);
    }

    #[test]
    fn the_key_is_the_one_the_api_authenticates_with() {
        let uri: Uri = "/api/orders".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "ApiKey real".parse().unwrap());
        headers.insert("x-api-key", "junk".parse().unwrap());
        let edge = edge();
        let both = edge.identify(&Method::GET, &uri, &headers).unwrap();
        headers.remove("x-api-key");
        let real = edge.identify(&Method::GET, &uri, &headers).unwrap();
        assert_eq!(both.key, real.key, "Authorization wins, as in the API");
        assert!(both.ignored_key && !real.ignored_key);
    }

    #[test]
    fn a_key_sent_as_bearer_and_as_x_api_key_is_one_key_caller() {
        let uri: Uri = "/api/orders".parse().unwrap();
        let mut headers = bearer_headers("ork_abc_def");
        headers.insert("x-api-key", "ork_abc_def".parse().unwrap());
        let edge = edge();
        let both = edge.identify(&Method::GET, &uri, &headers).unwrap();
        headers.remove(header::AUTHORIZATION);
        let alone = edge.identify(&Method::GET, &uri, &headers).unwrap();
        assert_eq!(both.user, None);
        assert!(both.key.is_some());
        assert_eq!(both.key, alone.key, "the same key either way");
        assert!(!both.ignored_key);
    }

    #[test]
    fn keys_are_vouched_by_the_api_and_forgotten_on_a_401() {
        let vouched = VouchedKeys::new(Duration::from_secs(60));
        assert!(!vouched.is_vouched("k"));
        vouched.learn("k", 200, false);
        assert!(
            !vouched.is_vouched("k"),
            "a public answer vouches for nothing"
        );
        vouched.learn("k", 200, true);
        assert!(vouched.is_vouched("k"));
        vouched.learn("k", 401, false);
        assert!(!vouched.is_vouched("k"), "revoked");
        let brief = VouchedKeys::new(Duration::ZERO);
        brief.learn("k", 200, true);
        assert!(!brief.is_vouched("k"), "expired");
    }

    #[test]
    fn a_remembered_token_is_refused_once_it_expires() {
        let edge = edge();
        let orders: Uri = "/api/orders".parse().unwrap();
        let user = uuid::Uuid::now_v7();
        let fresh = TokenKeys::new(SECRET, &[], time::Duration::minutes(5))
            .issue(
                user,
                orion_auth::Role::Customer,
                time::OffsetDateTime::now_utc(),
            )
            .unwrap();
        let headers = bearer_headers(&fresh.token);
        for _ in 0..2 {
            assert_eq!(
                edge.identify(&Method::GET, &orders, &headers),
                Ok(Caller {
                    user: Some(user),
                    key: None,
                    ignored_key: false,
                })
            );
        }
        assert_eq!(edge.verified.len(), 1);

        // The same bytes, remembered as expiring a minute ago: refused, and forgotten.
        edge.verified.insert(
            fresh.token.as_str().into(),
            Verified {
                sub: user,
                exp: time::OffsetDateTime::now_utc().unix_timestamp() - 60,
            },
        );
        assert_eq!(
            edge.identify(&Method::GET, &orders, &headers),
            Err(Refusal::Invalid)
        );
        assert_eq!(edge.verified.len(), 0);

        // A token signed with another secret is never remembered.
        let forged = TokenKeys::new(
            b"another-secret-another-secret-xx",
            &[],
            time::Duration::minutes(5),
        )
        .issue(
            user,
            orion_auth::Role::Admin,
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
        assert_eq!(
            edge.identify(&Method::GET, &orders, &bearer_headers(&forged.token)),
            Err(Refusal::Invalid)
        );
        assert_eq!(edge.verified.len(), 0);
    }
}
