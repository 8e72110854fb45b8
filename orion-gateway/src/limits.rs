//! Rate limits (GCRA, from tower-governor's configuration and limiter): per client address for
//! anonymous calls with a tighter policy on login and registration, per user and per vouched
//! API key for authenticated ones (a request with both counts under both). A refusal is a 429
//! problem with `Retry-After` and the IETF `RateLimit` headers; every answer carries
//! `RateLimit-Policy` and `RateLimit`.

use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use governor::clock::{Clock, DefaultClock, QuantaInstant};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use tower_governor::governor::GovernorConfigBuilder;

use crate::config::RatePolicy;
use crate::edge_auth::{Caller, KeyHash, VouchedKeys};
use crate::problem::problem;

type Limiter<K> =
    governor::RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// The key a request is counted under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    /// A client address (an IPv6 client's /64).
    Ip(IpAddr),
    User(uuid::Uuid),
    /// A keyed hash of an API key the API has vouched for.
    Integrator(KeyHash),
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

    /// Counts a request under every key it is limited by: its client's address (an IPv6
    /// client's /64) when it is anonymous or carries an API key the API has not vouched for,
    /// the user of its access token, the vouched key. Refused if any of them is spent; the
    /// answer's headers describe the tightest.
    pub(crate) fn check(
        &self,
        caller: &Caller,
        client_ip: IpAddr,
        login: bool,
        vouched: &VouchedKeys,
    ) -> Verdict {
        let client = || Key::Ip(orion_http::client_network(client_ip));
        let mut counted: [Option<(&Policy, Key)>; 3] = [None, None, None];
        if login {
            counted[0] = Some((&self.login, client()));
        } else {
            counted[0] = caller
                .user
                .map(|user| (&self.authenticated, Key::User(user)));
            let vouched_key = caller.key.as_ref().filter(|key| vouched.is_vouched(key));
            counted[1] = vouched_key.map(|key| (&self.authenticated, Key::Integrator(key.clone())));
            // The address counts for anonymous requests and for every key the API has not
            // vouched for (a made-up one, or one it ignores beside another credential).
            let unvouched_key = caller.key.is_some() && vouched_key.is_none();
            let anonymous = caller.user.is_none() && caller.key.is_none();
            if anonymous || unvouched_key || caller.ignored_key {
                counted[2] = Some((&self.anonymous, client()));
            }
        }
        let mut tightest: Option<(&Policy, u32)> = None;
        for (policy, key) in counted.into_iter().flatten() {
            match policy.limiter.check_key(&key) {
                Ok(snapshot) => {
                    let remaining = snapshot.remaining_burst_capacity();
                    if tightest.is_none_or(|(_, least)| remaining < least) {
                        tightest = Some((policy, remaining));
                    }
                }
                Err(not_until) => return Verdict::Refused(refusal(policy, &not_until)),
            }
        }
        let Some((policy, remaining)) = tightest else {
            return Verdict::Allowed(Vec::new());
        };
        let reset = if remaining >= policy.quota.requests {
            0
        } else {
            let per_token = policy.quota.period / policy.quota.requests;
            ceil_secs(per_token * (policy.quota.requests - remaining))
        };
        Verdict::Allowed(vec![
            ("ratelimit-policy", policy.header.clone()),
            (
                "ratelimit",
                header_value(&format!("\"{}\";r={remaining};t={reset}", policy.name)),
            ),
        ])
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

/// The `429` for a request `policy` refused.
fn refusal(policy: &Policy, not_until: &governor::NotUntil<QuantaInstant>) -> Response<Body> {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    let retry_after = ceil_secs(wait).max(1);
    metrics::counter!("gateway_rate_limited_total", "policy" => policy.name).increment(1);
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
    headers.insert("ratelimit-policy", policy.header.clone());
    headers.insert(
        "ratelimit",
        header_value(&format!("\"{}\";r=0;t={retry_after}", policy.name)),
    );
    response
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

    fn anonymous() -> Caller {
        Caller::default()
    }

    fn none() -> VouchedKeys {
        VouchedKeys::new(Duration::from_secs(60))
    }

    fn with_key(user: Option<uuid::Uuid>, key: &str) -> Caller {
        Caller {
            user,
            key: Some(key.into()),
            ignored_key: false,
        }
    }

    /// A bearer token with an `X-Api-Key` the API ignores.
    fn with_ignored_key(user: Option<uuid::Uuid>) -> Caller {
        Caller {
            user,
            key: None,
            ignored_key: true,
        }
    }

    #[test]
    fn an_unvouched_key_counts_against_the_client_and_a_vouched_one_has_its_own_bucket() {
        let limits = RateLimits::new(policy(1, 60), policy(2, 60), policy(5, 60)).unwrap();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let vouched = none();
        // Two made-up keys share the address's bucket of two.
        for key in ["a", "b"] {
            assert!(matches!(
                limits.check(&with_key(None, key), ip, false, &vouched),
                Verdict::Allowed(_)
            ));
        }
        assert!(matches!(
            limits.check(&with_key(None, "c"), ip, false, &vouched),
            Verdict::Refused(_)
        ));
        // A key the API accepted is counted on its own.
        vouched.learn("good", 200, true);
        assert!(matches!(
            limits.check(&with_key(None, "good"), ip, false, &vouched),
            Verdict::Allowed(_)
        ));
    }

    #[test]
    fn a_user_with_a_made_up_key_is_limited_as_both() {
        let limits = RateLimits::new(policy(1, 60), policy(100, 60), policy(2, 60)).unwrap();
        let user = Some(uuid::Uuid::now_v7());
        let vouched = none();
        for n in 0..2 {
            // A new address and a new key each time: only the user's bucket is shared.
            let ip: IpAddr = format!("10.0.0.{n}").parse().unwrap();
            assert!(matches!(
                limits.check(&with_ignored_key(user), ip, false, &vouched),
                Verdict::Allowed(_)
            ));
        }
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        assert!(matches!(
            limits.check(&with_ignored_key(user), ip, false, &vouched),
            Verdict::Refused(_)
        ));
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_slash_64() {
        let limits = RateLimits::new(policy(1, 60), policy(1, 60), policy(1, 60)).unwrap();
        let first: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        let same_net: IpAddr = "2001:db8:0:1:dead:beef:0:2".parse().unwrap();
        assert!(matches!(
            limits.check(&anonymous(), first, false, &none()),
            Verdict::Allowed(_)
        ));
        assert!(matches!(
            limits.check(&anonymous(), same_net, false, &none()),
            Verdict::Refused(_)
        ));
    }

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
                limits.check(&anonymous(), ip, true, &none()),
                Verdict::Allowed(_)
            ));
        }
        let Verdict::Refused(response) = limits.check(&anonymous(), ip, true, &none()) else {
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
            limits.check(&anonymous(), other, true, &none()),
            Verdict::Allowed(_)
        ));
        assert_eq!(limits.purge(), 2);
    }

    #[test]
    fn users_are_counted_apart_from_their_ip() {
        let limits = RateLimits::new(policy(1, 60), policy(1, 60), policy(2, 60)).unwrap();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let user = Caller {
            user: Some(uuid::Uuid::now_v7()),
            key: None,
            ignored_key: false,
        };
        assert!(matches!(
            limits.check(&anonymous(), ip, false, &none()),
            Verdict::Allowed(_)
        ));
        assert!(matches!(
            limits.check(&user, ip, false, &none()),
            Verdict::Allowed(_)
        ));
        let Verdict::Allowed(headers) = limits.check(&user, ip, false, &none()) else {
            panic!("the user's second request is allowed");
        };
        assert!(
            headers
                .iter()
                .any(|(n, v)| *n == "ratelimit" && v.to_str().unwrap().contains("r=0"))
        );
        assert!(matches!(
            limits.check(&user, ip, false, &none()),
            Verdict::Refused(..)
        ));
    }
}
