//! Command line and environment of `orion-api`.

use std::net::SocketAddr;

use orion_config::{AmqpArgs, CommonArgs, DatabaseArgs, SagaArgs, defaults};

/// Orion's REST API.
#[derive(Debug, clap::Parser)]
#[command(name = "orion-api", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Create an admin account; the password is read from standard input.
    CreateAdmin {
        /// The admin's email address.
        #[arg(long)]
        email: String,
        /// The admin's display name.
        #[arg(long, default_value = "Administrator")]
        name: String,
    },
}

/// Settings of one API replica.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Address to listen on.
    #[arg(long, env = "ORION_LISTEN", default_value = defaults::API_LISTEN)]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub http: orion_http::HttpLimits,

    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub amqp: AmqpArgs,

    #[command(flatten)]
    pub saga: SagaArgs,

    #[command(flatten)]
    pub webhooks: orion_config::WebhookGuardArgs,

    #[command(flatten)]
    pub jwt: orion_config::JwtArgs,

    /// Name of this replica in logs and queue names; defaults to a random one.
    #[arg(long, env = "ORION_INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// Memory password hashing may hold at once, in MiB: each argon2id hash takes 19 MiB, so
    /// the default runs six at a time. Sign-ins beyond that wait briefly, then get `503`.
    #[arg(long, env = "ORION_PASSWORD_HASH_MEMORY_MIB", default_value_t = 128,
          value_parser = clap::value_parser!(u32).range(19..=65_536))]
    pub password_hash_memory_mib: u32,

    /// Lifetime of access tokens, in seconds.
    #[arg(long, env = "ORION_ACCESS_TOKEN_TTL_SECONDS", default_value_t = 900,
          value_parser = clap::value_parser!(u32).range(30..=86_400))]
    pub access_token_ttl_seconds: u32,

    /// Lifetime of refresh tokens, in days.
    #[arg(long, env = "ORION_REFRESH_TOKEN_TTL_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=365))]
    pub refresh_token_ttl_days: u32,

    /// Origins allowed to call the API from a browser (CORS), comma-separated; `*` for any.
    /// Empty: same-origin only.
    #[arg(long, env = "ORION_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Run an outbox relay in this process (the default). Turn off to leave publishing to other
    /// processes.
    #[arg(long, env = "ORION_OUTBOX_RELAY", default_value_t = true, action = clap::ArgAction::Set)]
    pub outbox_relay: bool,

    /// Longest a request may take before it is answered `504`.
    #[arg(long, env = "ORION_REQUEST_TIMEOUT_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub request_timeout_seconds: u64,

    /// Hub messages queued for one WebSocket client before a client that does not read is
    /// dropped.
    #[arg(long, env = "ORION_HUB_SEND_BUFFER", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub hub_send_buffer: u32,

    /// How often the hub pings a quiet WebSocket client.
    #[arg(long, env = "ORION_HUB_KEEP_ALIVE_SECONDS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub hub_keep_alive_seconds: u64,

    /// Hub connections this replica takes at most; past it, `503` with `Retry-After`.
    #[arg(long, env = "ORION_HUB_MAX_CONNECTIONS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub hub_max_connections: u32,

    /// Hub connections one user may hold open on a replica (browser tabs, devices); past it,
    /// `429`.
    #[arg(long, env = "ORION_HUB_MAX_CONNECTIONS_PER_USER", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub hub_max_connections_per_user: u32,

    /// How long a hub client may stay silent (clients ping every 15 s) before it is closed, and
    /// how long one write to it may take.
    #[arg(long, env = "ORION_HUB_CLIENT_TIMEOUT_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(2..=600))]
    pub hub_client_timeout_seconds: u64,
}

impl Config {
    /// Refuses settings the API cannot run with, before it connects to anything.
    pub fn check(&self) -> orion_config::Result<()> {
        self.jwt.check(self.common.env)?;
        self.database.check()?;
        self.amqp.check()
    }

    /// Which addresses webhooks may be registered for.
    pub fn webhook_policy(&self) -> orion_webhooks::AddressPolicy {
        orion_webhooks::AddressPolicy {
            allow_private: self.webhooks.allow_private(self.common.env),
        }
    }

    /// The hub's settings from this configuration.
    pub fn hub_settings(&self) -> crate::hub::HubSettings {
        crate::hub::HubSettings {
            send_buffer: usize::try_from(self.hub_send_buffer).unwrap_or(256),
            keep_alive: std::time::Duration::from_secs(self.hub_keep_alive_seconds),
            client_timeout: std::time::Duration::from_secs(self.hub_client_timeout_seconds),
            handshake_timeout: std::time::Duration::from_secs(15),
            max_connections: self.hub_max_connections as usize,
            max_connections_per_user: self.hub_max_connections_per_user as usize,
        }
    }
}
