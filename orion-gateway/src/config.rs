//! Command line and environment of `orion-gateway`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use orion_config::{CommonArgs, defaults};

/// Orion's edge in front of the API replicas.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "orion-gateway", version, about, long_about = None)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Plain HTTP address.
    #[arg(long, env = "ORION_LISTEN", default_value = defaults::GATEWAY_HTTP)]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub http: orion_http::HttpLimits,

    /// The operations listener: `/metrics` and the detailed readiness (replica addresses, their
    /// health and requests in flight), kept off the public port. `off` for none.
    #[arg(long, env = "ORION_OPS_LISTEN", default_value = defaults::GATEWAY_OPS, value_parser = parse_optional_addr)]
    pub ops_listen: ::std::option::Option<SocketAddr>,

    /// HTTPS address, or `off`.
    #[arg(long, env = "ORION_HTTPS_LISTEN", default_value = defaults::GATEWAY_HTTPS, value_parser = parse_optional_addr)]
    pub https_listen: ::std::option::Option<SocketAddr>,

    /// PEM certificate chain for HTTPS. Without it (and its key), dev mode generates a
    /// self-signed certificate for localhost on first start; prod refuses to start HTTPS.
    #[arg(long, env = "ORION_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for HTTPS.
    #[arg(long, env = "ORION_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// Where dev mode keeps its generated certificate.
    #[arg(long, env = "ORION_TLS_DEV_DIR", default_value = ".orion/tls")]
    pub tls_dev_dir: PathBuf,

    /// Serving threads, each with its own runtime and upstream connections; 0: one per core.
    #[arg(long, env = "ORION_GATEWAY_WORKERS", default_value_t = 0,
          value_parser = clap::value_parser!(u16).range(0..=256))]
    pub workers: u16,

    /// The orion-api replicas: comma-separated `host:port` entries. A name that resolves to
    /// several addresses (a headless service) stands for all of them.
    #[arg(long, env = "ORION_UPSTREAMS", value_delimiter = ',',
          default_values_t = [defaults::API_LISTEN.to_owned(), defaults::API_SECOND_LISTEN.to_owned()])]
    pub upstreams: Vec<String>,

    /// Seconds between two resolutions of the upstream names.
    #[arg(long, env = "ORION_UPSTREAM_RESOLVE_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub resolve_seconds: u64,

    /// How a replica is chosen.
    #[arg(
        long,
        env = "ORION_BALANCE",
        value_enum,
        default_value = "least-outstanding"
    )]
    pub balance: Balance,

    /// Milliseconds between active health checks of each replica's `/health/ready`.
    #[arg(long, env = "ORION_HEALTH_INTERVAL_MS", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(50..=600_000))]
    pub health_interval_ms: u64,

    /// Milliseconds a health check may take.
    #[arg(long, env = "ORION_HEALTH_TIMEOUT_MS", default_value_t = 1_000,
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub health_timeout_ms: u64,

    /// Failed checks in a row that mark a replica down.
    #[arg(long, env = "ORION_HEALTH_FAILS", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub health_fails: u32,

    /// Passed checks in a row that mark a replica up again.
    #[arg(long, env = "ORION_HEALTH_PASSES", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub health_passes: u32,

    /// Connection errors or 502/503/504 answers in a row that eject a replica.
    #[arg(long, env = "ORION_EJECT_AFTER", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub eject_after: u32,

    /// First ejection, in milliseconds; it doubles with each ejection in a row, up to 60 s.
    #[arg(long, env = "ORION_EJECT_BASE_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub eject_base_ms: u64,

    /// Milliseconds to connect to a replica.
    #[arg(long, env = "ORION_CONNECT_TIMEOUT_MS", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub connect_timeout_ms: u64,

    /// Milliseconds to wait for a replica's response headers.
    #[arg(long, env = "ORION_RESPONSE_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub response_timeout_ms: u64,

    /// Milliseconds for the whole exchange up to the response headers, retries included.
    #[arg(long, env = "ORION_REQUEST_TIMEOUT_MS", default_value_t = 60_000,
          value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub request_timeout_ms: u64,

    /// Retries as a share of requests, in percent (with a floor of a few per second).
    #[arg(long, env = "ORION_RETRY_BUDGET_PERCENT", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(0..=100))]
    pub retry_budget_percent: u32,

    #[command(flatten)]
    pub jwt: orion_config::JwtArgs,

    /// Networks whose `X-Forwarded-*` headers are believed (a load balancer in front), as
    /// comma-separated addresses or CIDRs. Empty: only the socket's address counts.
    #[arg(long, env = "ORION_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_network)]
    pub trusted_proxies: Vec<Network>,

    /// Login and registration, per client IP: `<requests>/<seconds>`.
    #[arg(long, env = "ORION_RATE_LOGIN", default_value = "10/60", value_parser = parse_policy)]
    pub rate_login: RatePolicy,

    /// Other anonymous requests, per client IP.
    #[arg(long, env = "ORION_RATE_ANONYMOUS", default_value = "300/60", value_parser = parse_policy)]
    pub rate_anonymous: RatePolicy,

    /// Authenticated requests, per user or API key.
    #[arg(long, env = "ORION_RATE_AUTHENTICATED", default_value = "1200/60", value_parser = parse_policy)]
    pub rate_authenticated: RatePolicy,

    /// Seconds readiness reports 503 before the gateway stops accepting, on shutdown.
    #[arg(long, env = "ORION_DRAIN_DELAY_SECONDS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=300))]
    pub drain_delay_seconds: u64,

    /// Seconds in-flight requests and tunnels get to finish on shutdown.
    #[arg(long, env = "ORION_SHUTDOWN_TIMEOUT_SECONDS", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub shutdown_timeout_seconds: u64,
}

impl Config {
    /// Everything [`Config::check`] refuses, and an HTTPS listener whose certificate and key
    /// cannot be read or do not fit (in dev mode without them, one is made at start).
    pub fn preflight(&self) -> crate::Result<()> {
        self.check()?;
        let own_certificate = self.tls_cert.is_some() || self.tls_key.is_some();
        if self.https_listen.is_some() && (own_certificate || !self.common.env.is_dev()) {
            crate::tls::server_config(self)?;
        }
        Ok(())
    }

    /// Refuses settings the gateway cannot run with, before it binds anything.
    pub fn check(&self) -> orion_config::Result<()> {
        self.jwt.check(self.common.env)?;
        if self.upstreams.iter().all(|u| u.trim().is_empty()) {
            return Err(orion_config::Error::Invalid(
                "ORION_UPSTREAMS names no API replica".into(),
            ));
        }
        Ok(())
    }

    pub(crate) fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }

    /// The serving threads to start.
    pub(crate) fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => usize::from(n),
        }
    }
}

/// How a replica is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Balance {
    RoundRobin,
    /// Power of two choices: of two random replicas, the one with fewer requests in flight.
    LeastOutstanding,
}

/// A rate: `requests` allowed per `period`, refilled evenly, with bursts up to `requests`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatePolicy {
    pub requests: u32,
    pub period: Duration,
}

fn parse_policy(raw: &str) -> Result<RatePolicy, String> {
    let invalid = || format!("{raw:?} is not <requests>/<seconds>, e.g. 10/60");
    let (requests, seconds) = raw.split_once('/').ok_or_else(invalid)?;
    let requests: u32 = requests.trim().parse().map_err(|_| invalid())?;
    let seconds: u64 = seconds
        .trim()
        .trim_end_matches('s')
        .parse()
        .map_err(|_| invalid())?;
    if requests == 0 || seconds == 0 {
        return Err(format!("{raw:?}: both numbers must be positive"));
    }
    Ok(RatePolicy {
        requests,
        period: Duration::from_secs(seconds),
    })
}

fn parse_optional_addr(raw: &str) -> Result<Option<SocketAddr>, String> {
    match raw.trim() {
        "" | "off" | "none" => Ok(None),
        other => other
            .parse()
            .map(Some)
            .map_err(|e| format!("{other:?}: {e}")),
    }
}

/// An address or a CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    base: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.base, ip) {
            (IpAddr::V4(base), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(base) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(base), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(base) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

pub(crate) fn parse_network(raw: &str) -> Result<Network, String> {
    let raw = raw.trim();
    let (ip, prefix) = match raw.split_once('/') {
        Some((ip, prefix)) => (ip, Some(prefix)),
        None => (raw, None),
    };
    let base: IpAddr = ip.parse().map_err(|e| format!("{raw:?}: {e}"))?;
    let max = if base.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("{raw:?}: prefix must be 0 to {max}"))?,
        None => max,
    };
    Ok(Network { base, prefix })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn policies_and_networks_parse() {
        assert_eq!(
            parse_policy("10/60").unwrap(),
            RatePolicy {
                requests: 10,
                period: Duration::from_secs(60)
            }
        );
        assert!(parse_policy("0/60").is_err());
        assert!(parse_policy("ten").is_err());
        let net = parse_network("10.0.0.0/8").unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(!net.contains("11.1.2.3".parse().unwrap()));
        assert!(
            parse_network("::1")
                .unwrap()
                .contains("::1".parse().unwrap())
        );
        assert!(
            parse_network("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(parse_network("10.0.0.0/33").is_err());
        assert_eq!(parse_optional_addr("off").unwrap(), None);
    }
}
