//! Configuration shared by Orion's binaries: the environment (`dev` or `prod`), the design's local
//! defaults, argument groups for the database and the broker, and the shutdown signal.
//!
//! Every setting is a flag and an `ORION_*` environment variable (12-factor); defaults are the
//! "Local defaults" of the architecture, so a bare `orion-api` talks to the local services.

mod shutdown;

pub use shutdown::shutdown_signal;

/// Local defaults; clients and checks outside the project rely on these.
pub mod defaults {
    pub const GATEWAY_HTTP: &str = "127.0.0.1:8080";
    pub const GATEWAY_HTTPS: &str = "127.0.0.1:8443";
    /// The gateway's operations listener (metrics, detailed readiness): never the public port.
    pub const GATEWAY_OPS: &str = "127.0.0.1:9080";
    pub const API_LISTEN: &str = "127.0.0.1:8081";
    pub const API_SECOND_LISTEN: &str = "127.0.0.1:8082";
    pub const WORKER_LISTEN: &str = "127.0.0.1:8090";
    pub const DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/orion";
    pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
    pub const AMQP_MANAGEMENT_URL: &str = "http://127.0.0.1:15672";
    pub const SMTP_URL: &str = "smtp://127.0.0.1:1025";
    pub const MAIL_UI: &str = "http://127.0.0.1:1080";
    /// Accepted in dev mode only; prod refuses to start with it.
    pub const DEV_JWT_SECRET: &str = "orion-dev-secret-do-not-use-in-production";
}

/// The one error of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where Orion runs. Dev mode seeds demo data and accepts development secrets; prod does neither.
/// Prod is the default, so that a binary started on a server without `ORION_ENV` fails closed:
/// it refuses the public development secret instead of serving with it and a seeded admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Environment {
    Dev,
    Prod,
}

impl Environment {
    pub fn is_dev(self) -> bool {
        self == Self::Dev
    }
}

/// How logs are written: one JSON object per line for machines, or readable text for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Settings every Orion process has.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// `dev` seeds demo data and allows development secrets; `prod` (the default) refuses both.
    /// `cargo xtask up` and the tests set `dev`.
    #[arg(long, env = "ORION_ENV", value_enum, default_value = "prod")]
    pub env: Environment,

    /// Log format. Log levels come from `RUST_LOG` (default `info`).
    #[arg(long, env = "ORION_LOG_FORMAT", value_enum, default_value = "pretty")]
    pub log_format: LogFormat,

    /// Check the configuration (flags and `ORION_*` variables) and exit, without connecting to
    /// anything: status 0 if the process would start with it. A pre-flight for deployments.
    #[arg(long, global = true)]
    pub check_config: bool,
}

/// Which addresses webhooks may reach (the API checks at registration, the worker at delivery).
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookGuardArgs {
    /// Let webhooks reach loopback, private and link-local addresses: a receiver on this machine
    /// or its network. Unset, allowed in dev mode only: in production such an address is how a
    /// webhook would reach the database, the broker or a cloud's metadata service.
    #[arg(long = "webhook-allow-private", env = "ORION_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: Option<bool>,
}

impl WebhookGuardArgs {
    /// Whether private addresses are allowed in `env`.
    pub fn allow_private(&self, env: Environment) -> bool {
        self.webhook_allow_private.unwrap_or(env.is_dev())
    }
}

/// PostgreSQL connection settings.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL; the database is created if it does not exist.
    #[arg(long = "database-url", env = "ORION_DATABASE_URL", default_value = defaults::DATABASE_URL, hide_env_values = true)]
    pub database_url: String,

    /// Most connections this process opens. Unset, each binary sizes its pool for the work it
    /// runs at once (the API: 10; the worker: every consumer's handlers plus its background tasks).
    #[arg(long = "database-max-connections", env = "ORION_DATABASE_MAX_CONNECTIONS",
          value_parser = clap::value_parser!(u32).range(1..=500))]
    pub database_max_connections: Option<u32>,
}

impl DatabaseArgs {
    /// Refuses a database URL that is not a PostgreSQL URL.
    pub fn check(&self) -> Result<()> {
        check_url(
            "ORION_DATABASE_URL",
            &self.database_url,
            &["postgres", "postgresql"],
        )
    }

    /// The configured pool size, or `default` when none was set.
    pub fn max_connections(&self, default: u32) -> u32 {
        self.database_max_connections.unwrap_or(default)
    }
}

/// When an order's saga is due. Placement (in the API) writes every order's saga with this
/// deadline, and the worker resumes a reservation step that made no progress for this long; the
/// two processes read the same setting.
#[derive(Debug, Clone, clap::Args)]
pub struct SagaArgs {
    /// Seconds the stock reservation step may go without progress before the worker's sweeper
    /// resumes it (an order whose `order.placed` was delayed, parked or lost is begun then).
    #[arg(long, env = "ORION_SAGA_RESERVE_TIMEOUT_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub reserve_timeout_seconds: u32,
}

impl SagaArgs {
    pub fn reserve_step(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.reserve_timeout_seconds))
    }
}

/// RabbitMQ connection settings.
#[derive(Debug, Clone, clap::Args)]
pub struct AmqpArgs {
    /// RabbitMQ URL.
    #[arg(long = "amqp-url", env = "ORION_AMQP_URL", default_value = defaults::AMQP_URL, hide_env_values = true)]
    pub amqp_url: String,

    /// Prefix of every exchange and queue name, so that several installations (or test runs)
    /// can share one broker. Empty in a normal installation.
    #[arg(long = "amqp-prefix", env = "ORION_AMQP_PREFIX", default_value = "")]
    pub amqp_prefix: String,

    /// Waits before the first, second and later retries of a failed message, in milliseconds.
    /// Every process on one broker must use the same three values.
    #[arg(long = "amqp-retry-delays-ms", env = "ORION_AMQP_RETRY_DELAYS_MS",
          default_value = "1000,5000,30000", value_parser = parse_retry_delays)]
    pub amqp_retry_delays_ms: [u32; 3],
}

impl AmqpArgs {
    /// Refuses a broker URL that is not an AMQP URL.
    pub fn check(&self) -> Result<()> {
        check_url("ORION_AMQP_URL", &self.amqp_url, &["amqp", "amqps"])
    }

    /// The three retry delays, in milliseconds.
    pub fn retry_delays_ms(&self) -> [u32; 3] {
        self.amqp_retry_delays_ms
    }
}

/// `a,b,c`: three delays in milliseconds, each from 10 ms to an hour.
fn parse_retry_delays(raw: &str) -> std::result::Result<[u32; 3], String> {
    let delays = raw
        .split(',')
        .map(|part| {
            part.trim()
                .parse::<u32>()
                .ok()
                .filter(|ms| (10..=3_600_000).contains(ms))
                .ok_or_else(|| format!("{part:?} is not a delay from 10 to 3600000 ms"))
        })
        .collect::<std::result::Result<Vec<u32>, String>>()?;
    <[u32; 3]>::try_from(delays)
        .map_err(|d| format!("expected three delays separated by commas, got {}", d.len()))
}

/// What `--check-config` prints when the configuration is good.
pub fn report_config_ok(binary: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    writeln!(std::io::stdout().lock(), "{binary}: configuration ok")
}

/// Refuses a URL that does not parse or has another scheme; the message names the setting and
/// never the URL (it may hold a password).
pub fn check_url(setting: &str, value: &str, schemes: &[&str]) -> Result<()> {
    match url::Url::parse(value) {
        Ok(url) if schemes.contains(&url.scheme()) && url.has_host() => Ok(()),
        Ok(url) => Err(Error::Invalid(format!(
            "{setting} must be a {} URL with a host, not {}:",
            schemes.join(" or "),
            url.scheme()
        ))),
        Err(error) => Err(Error::Invalid(format!("{setting} is not a URL: {error}"))),
    }
}

/// The secrets access tokens are signed and verified with (HS256), shared by the API (which
/// signs and verifies) and the gateway (which verifies at the edge).
#[derive(Debug, Clone, clap::Args)]
pub struct JwtArgs {
    /// Access-token secrets, comma-separated (spaces around them ignored): the first signs new
    /// tokens, every one is accepted. To rotate without signing anyone out, in three rollouts
    /// of the gateway and the API: `old,new` (the new one accepted everywhere before anyone
    /// signs with it), then `new,old`, then, a token lifetime later, `new`. Prod refuses the
    /// development default and any secret under 32 bytes.
    #[arg(long = "jwt-secret", env = "ORION_JWT_SECRET", default_value = defaults::DEV_JWT_SECRET,
          value_delimiter = ',', value_parser = trimmed, hide_default_value = true, hide_env_values = true)]
    pub jwt_secrets: Vec<String>,
}

/// A value without the spaces around it (`new, old` names the secrets `new` and `old`).
fn trimmed(value: &str) -> std::result::Result<String, String> {
    Ok(value.trim().to_owned())
}

/// More secrets than a rotation needs is a mistake (and each one is tried on tokens that name
/// no key).
const MAX_JWT_SECRETS: usize = 4;

impl JwtArgs {
    /// The secret new tokens are signed with.
    pub fn current(&self) -> &[u8] {
        self.jwt_secrets.first().map_or(&[][..], |s| s.as_bytes())
    }

    /// The secrets still accepted besides the current one.
    pub fn previous(&self) -> Vec<&[u8]> {
        self.jwt_secrets
            .iter()
            .skip(1)
            .map(|s| s.as_bytes())
            .collect()
    }

    /// Refuses an empty secret anywhere, and outside dev mode the development default or a
    /// secret under 32 bytes.
    pub fn check(&self, env: Environment) -> Result<()> {
        const MIN_LEN: usize = 32;
        if self.jwt_secrets.is_empty() || self.jwt_secrets.iter().any(String::is_empty) {
            return Err(Error::Invalid(
                "ORION_JWT_SECRET holds an empty secret; give one secret, or several separated by commas"
                    .into(),
            ));
        }
        if self.jwt_secrets.len() > MAX_JWT_SECRETS {
            return Err(Error::Invalid(format!(
                "ORION_JWT_SECRET holds {} secrets; a rotation needs at most {MAX_JWT_SECRETS}",
                self.jwt_secrets.len()
            )));
        }
        if env.is_dev() {
            return Ok(());
        }
        for (index, secret) in self.jwt_secrets.iter().enumerate() {
            // The current secret is the setting itself for most installations (one secret).
            let which = if index == 0 {
                String::new()
            } else {
                format!(" (previous secret #{index})")
            };
            if secret == defaults::DEV_JWT_SECRET {
                return Err(Error::Invalid(format!(
                    "ORION_JWT_SECRET{which} is the development default; set a random secret of at \
                     least 32 bytes (or ORION_ENV=dev on a development machine)"
                )));
            }
            if secret.len() < MIN_LEN {
                return Err(Error::Invalid(format!(
                    "ORION_JWT_SECRET{which} is {} bytes; prod needs at least {MIN_LEN}",
                    secret.len()
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_are_three_bounded_numbers() {
        assert_eq!(parse_retry_delays("100, 200,400"), Ok([100, 200, 400]));
        assert!(parse_retry_delays("100,200").is_err());
        assert!(parse_retry_delays("100,200,400,800").is_err());
        assert!(parse_retry_delays("1,200,400").is_err());
        assert!(parse_retry_delays("a,b,c").is_err());
    }

    #[test]
    fn urls_are_checked_without_showing_them() {
        assert!(check_url("ORION_DATABASE_URL", defaults::DATABASE_URL, &["postgres"]).is_ok());
        let wrong = check_url("ORION_AMQP_URL", "http://user:pw@host", &["amqp"]).unwrap_err();
        assert!(!wrong.to_string().contains("pw"), "{wrong}");
        assert!(check_url("ORION_AMQP_URL", "not a url", &["amqp"]).is_err());
    }

    #[test]
    fn prod_refuses_default_and_short_secrets() {
        let jwt = |value: &str| {
            #[derive(clap::Parser)]
            struct Cli {
                #[command(flatten)]
                jwt: JwtArgs,
            }
            <Cli as clap::Parser>::parse_from(["test", "--jwt-secret", value]).jwt
        };
        let long = "x".repeat(32);
        let other = "y".repeat(40);
        assert!(
            jwt(defaults::DEV_JWT_SECRET)
                .check(Environment::Dev)
                .is_ok()
        );
        assert!(
            jwt(defaults::DEV_JWT_SECRET)
                .check(Environment::Prod)
                .is_err()
        );
        assert!(jwt("short").check(Environment::Prod).is_err());
        assert!(jwt(&long).check(Environment::Prod).is_ok());
        // Rotation: the new secret first, the previous after it; each must be strong.
        let rotating = jwt(&format!("{other},{long}"));
        assert!(rotating.check(Environment::Prod).is_ok());
        assert_eq!(rotating.current(), other.as_bytes());
        assert_eq!(rotating.previous(), vec![long.as_bytes()]);
        assert!(
            jwt(&format!("{long},short"))
                .check(Environment::Prod)
                .is_err()
        );
        assert!(jwt(&format!("{long},")).check(Environment::Dev).is_err());
        let spaced = jwt(&format!("{other}, {long}"));
        assert_eq!(spaced.previous(), vec![long.as_bytes()]);
        assert!(jwt("a,b,c,d,e").check(Environment::Dev).is_err());
    }
}
