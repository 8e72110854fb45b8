//! Rate limits (GCRA, from tower-governor's configuration and limiter): per client IP for
//! anonymous calls with a tighter policy on login and registration, per user or API key for
//! authenticated ones. A refusal is a 429 problem with `Retry-After` and the IETF `RateLimit`
//! headers; every answer carries `RateLimit-Policy` and `RateLimit`.

use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use tower_governor::governor::GovernorConfigBuilder;

use crate::config::RatePolicy;
use crate::edge_auth::Caller;
use crate::problem::problem;

type Limiter<K> =
    governor::RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// The key a request is counted under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Ip(IpAddr),
    User(uuid::Uuid),
    /// A keyed hash of an API key.
    Integrator(String),
}

/// Reads the [`Key`] the gateway put in the request's extensions. The gateway consults the
/// limiters itself (it picks the policy by caller); this lets the same configuration serve as a
/// tower layer too.
#[derive(Debug, Clone, Copy)]
struct KeyFromExtensions;

impl tower_governor::key_extractor::KeyExtractor for KeyFromExtensions {
    type Key = Key;

    fn extract<T>(
        &self,
        request: &axum::http::Request<T>,
    ) -> Result<Key, tower_governor::GovernorError> {
        request
            .extensions()
            .get::<Key>()
            .cloned()
            .ok_or(tower_governor::GovernorError::UnableToExtractKey)
    }
}

/// One named policy and its limiter.
struct Policy {
    name: &'static str,
    quota: RatePolicy,
    /// The `RateLimit-Policy` value, the same on every answer.
    header: HeaderValue,
    limiter: Arc<Limiter<Key>>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// `None` for a quota the limiter cannot express (a zero period or burst), which the
    /// configuration parser already refuses.
    fn new(name: &'static str, quota: RatePolicy) -> Option<Policy> {
        // tower-governor's `per_*` set the interval between two tokens, not a rate: the period
        // of one token is the policy's window divided by its requests.
        let interval = (quota.period / quota.requests).max(Duration::from_nanos(1));
        let nanos = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
        let limiter = GovernorConfigBuilder::default()
            .key_extractor(KeyFromExtensions)
            .per_nanosecond(nanos)
            .burst_size(quota.requests)
            .use_headers()
            .finish()?
            .limiter()
            .clone();
        let header = header_value(&format!(
            "\"{name}\";q={};w={}",
            quota.requests,
            quota.period.as_secs()
        ));
        Some(Policy {
            name,
            quota,
            header,
            limiter,
        })
    }
}

/// The verdict on one request.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Allowed; these headers go on the answer.
    Allowed(Vec<(&'static str, HeaderValue)>),
    /// Refused with this answer.
    Refused(Response<Body>),
}

/// All policies.
#[derive(Debug)]
pub(crate) struct RateLimits {
    login: Policy,
    anonymous: Policy,
    authenticated: Policy,
}

impl RateLimits {
    pub(crate) fn new(
        login: RatePolicy,
        anonymous: RatePolicy,
        authenticated: RatePolicy,
    ) -> Result<RateLimits, String> {
        let policy = |name, quota: RatePolicy| {
            Policy::new(name, quota)
                .ok_or_else(|| format!("the {name} rate policy {quota:?} cannot be enforced"))
        };
        Ok(RateLimits {
            login: policy("login", login)?,
            anonymous: policy("anonymous", anonymous)?,
            authenticated: policy("authenticated", authenticated)?,
        })
    }

    pub(crate) fn check(&self, caller: &Caller, client_ip: IpAddr, login: bool) -> Verdict {
        let (policy, key) = match caller {
            _ if login => (&self.login, Key::Ip(client_ip)),
            Caller::Anonymous => (&self.anonymous, Key::Ip(client_ip)),
            Caller::User(sub) => (&self.authenticated, Key::User(*sub)),
            Caller::ApiKey(hash) => (&self.authenticated, Key::Integrator(hash.clone())),
        };
        let policy_header = policy.header.clone();
        match policy.limiter.check_key(&key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let reset = if remaining >= policy.quota.requests {
                    0
                } else {
                    let per_token = policy.quota.period / policy.quota.requests;
                    ceil_secs(per_token * (policy.quota.requests - remaining))
                };
                Verdict::Allowed(vec![
                    ("ratelimit-policy", policy_header),
                    (
                        "ratelimit",
                        header_value(&format!("\"{}\";r={remaining};t={reset}", policy.name)),
                    ),
                ])
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let retry_after = ceil_secs(wait).max(1);
                metrics::counter!("gateway_rate_limited_total", "policy" => policy.name)
                    .increment(1);
                let mut response = problem(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate-limited",
                    format!(
                        "too many requests under the {} policy ({} per {} s); retry in {retry_after} s",
                        policy.name,
                        policy.quota.requests,
                        policy.quota.period.as_secs()
                    ),
                );
                let headers = response.headers_mut();
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                headers.insert("ratelimit-policy", policy_header);
                headers.insert(
                    "ratelimit",
                    header_value(&format!("\"{}\";r=0;t={retry_after}", policy.name)),
                );
                Verdict::Refused(response)
            }
        }
    }

    /// Forgets keys that are back to a full bucket, so memory stays flat; returns the keys left.
    pub(crate) fn purge(&self) -> usize {
        let mut left = 0;
        for policy in [&self.login, &self.anonymous, &self.authenticated] {
            policy.limiter.retain_recent();
            policy.limiter.shrink_to_fit();
            left += policy.limiter.len();
        }
        metrics::gauge!("gateway_rate_limit_keys").set(left as f64);
        left
    }
}

fn ceil_secs(duration: Duration) -> u64 {
    let secs = duration.as_secs();
    if duration.subsec_nanos() > 0 {
        secs + 1
    } else {
        secs
    }
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn policy(requests: u32, seconds: u64) -> RatePolicy {
        RatePolicy {
            requests,
            period: Duration::from_secs(seconds),
        }
    }

    #[test]
    fn the_login_policy_refuses_past_its_burst_per_ip() {
        let limits = RateLimits::new(policy(3, 60), policy(100, 1), policy(100, 1)).unwrap();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..3 {
            assert!(matches!(
                limits.check(&Caller::Anonymous, ip, true),
                Verdict::Allowed(_)
            ));
        }
        let Verdict::Refused(response) = limits.check(&Caller::Anonymous, ip, true) else {
            panic!("the fourth login is refused");
        };
        assert_eq!(response.status(), 429);
        let retry: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=20).contains(&retry), "{retry}");
        assert_eq!(response.headers()["ratelimit-policy"], "\"login\";q=3;w=60");
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(matches!(
            limits.check(&Caller::Anonymous, other, true),
            Verdict::Allowed(_)
        ));
        assert_eq!(limits.purge(), 2);
    }

    #[test]
    fn users_are_counted_apart_from_their_ip() {
        let limits = RateLimits::new(policy(1, 60), policy(1, 60), policy(2, 60)).unwrap();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let user = Caller::User(uuid::Uuid::now_v7());
        assert!(matches!(
            limits.check(&Caller::Anonymous, ip, false),
            Verdict::Allowed(_)
        ));
        assert!(matches!(
            limits.check(&user, ip, false),
            Verdict::Allowed(_)
        ));
        let Verdict::Allowed(headers) = limits.check(&user, ip, false) else {
            panic!("the user's second request is allowed");
        };
        assert!(
            headers
                .iter()
                .any(|(n, v)| *n == "ratelimit" && v.to_str().unwrap().contains("r=0"))
        );
        assert!(matches!(
            limits.check(&user, ip, false),
            Verdict::Refused(..)
        ));
    }
}
