//! Orion's worker as a library: `run` consumes the work queues (the order saga, email,
//! projections), parks what fails for good, sweeps overdue saga steps, relays the outbox, and
//! serves health and metrics on a listener the caller binds, until the caller's shutdown future
//! completes. Any number of workers can run side by side.

pub mod email;
mod error;
mod health;
pub mod payments;
pub mod projections;
pub mod saga;
pub mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use orion_config::{AmqpArgs, CommonArgs, DatabaseArgs, SagaArgs, WebhookGuardArgs, defaults};
use orion_messaging::dead_letters::DeadLetterKeeper;
use orion_messaging::{
    Broker, ConsumerSettings, Management, OutboxRelay, Publisher, QueueConsumer, RelaySettings,
    Topology, WorkQueue,
};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use error::{Error, Result};

use crate::email::{EmailHandler, EmailSettings, Mailer, Templates};
use crate::payments::{PaymentFault, SimulatedProvider};
use crate::projections::ProjectionsHandler;
use crate::saga::{SagaSettings, SagaShell};
use crate::webhooks::{DeliverySettings, WebhookDelivery, WebhookFanOut};

/// Orion's worker: the order saga, payments, email and read-model projections.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "orion-worker", version, about, long_about = None)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Print the queue policies Orion relies on (for operators who put them in place
    /// themselves) as JSON, and exit.
    #[arg(long)]
    pub print_policies: bool,

    /// Address of the health and metrics endpoints.
    #[arg(long, env = "ORION_LISTEN", default_value = defaults::WORKER_LISTEN)]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub amqp: AmqpArgs,

    /// RabbitMQ's management API, through which the worker keeps the queue policies Orion
    /// relies on in place (credentials from this URL, else the AMQP URL's). Empty when the
    /// operators put them in place themselves (`orion-worker --print-policies` lists them).
    #[arg(long, env = "ORION_AMQP_MANAGEMENT_URL", default_value = defaults::AMQP_MANAGEMENT_URL,
          hide_env_values = true)]
    pub amqp_management_url: String,

    /// SMTP server for customer email, e.g. `smtp://127.0.0.1:1025` or `smtps://user:pass@host`.
    #[arg(long, env = "ORION_SMTP_URL", default_value = defaults::SMTP_URL, hide_env_values = true)]
    pub smtp_url: String,

    /// Sender of every email.
    #[arg(
        long,
        env = "ORION_EMAIL_FROM",
        default_value = "Orion <orders@orion.localhost>"
    )]
    pub email_from: String,

    /// Sends tried for one email before it is marked failed (each retry waits longer: 1 s, 5 s,
    /// 30 s). At most 4, so that an email gives up before its message would be parked.
    #[arg(long, env = "ORION_EMAIL_MAX_ATTEMPTS", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=4))]
    pub email_max_attempts: u32,

    /// Base URL of the shop, for links in emails.
    #[arg(
        long,
        env = "ORION_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_url: String,

    #[command(flatten)]
    pub saga: SagaArgs,

    /// Seconds one call to the payment provider may take; a call that takes longer counts as
    /// unanswered. An attempt makes three calls (by the same idempotency key); an unanswered
    /// attempt is tried again by the sweeper once a whole attempt could have ended.
    #[arg(long, env = "ORION_SAGA_PAYMENT_TIMEOUT_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub payment_timeout_seconds: u32,

    /// Payment attempts the provider may leave unanswered before the order fails with
    /// `timeout` (each attempt calls it a few times, by the same idempotency key).
    #[arg(long, env = "ORION_SAGA_PAYMENT_ATTEMPTS", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub payment_attempts: u32,

    /// Milliseconds the simulated payment provider takes to answer.
    #[arg(long, env = "ORION_PAYMENT_LATENCY_MS", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=60_000))]
    pub payment_latency_ms: u32,

    /// A fault for the simulated payment provider to play: `none`, `unavailable` (answers no
    /// authorization) or `timeout-after-authorize` (authorizes, then loses the answer).
    #[arg(long, env = "ORION_PAYMENT_FAULT", default_value = "none")]
    pub payment_fault: PaymentFault,

    /// Milliseconds between two looks for overdue saga steps.
    #[arg(long, env = "ORION_SAGA_SWEEP_INTERVAL_MS", default_value_t = 1_000,
          value_parser = clap::value_parser!(u32).range(50..=60_000))]
    pub sweep_interval_ms: u32,

    /// Messages each queue's consumer handles at the same time.
    #[arg(long, env = "ORION_WORKER_CONCURRENCY", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: u32,

    /// Play the faults messages ask for in their `x-orion-fault` header (`panic`, `crash`): for
    /// the fault suite only, never in production.
    #[arg(long, env = "ORION_FAULT_INJECTION", default_value_t = false)]
    pub fault_injection: bool,

    /// Most messages a consumer hands its handler at once when a backlog waits (the saga, email
    /// and projections each handle a batch in a couple of transactions); 1 handles one by one.
    #[arg(long, env = "ORION_WORKER_BATCH", default_value_t = 32,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub batch: u16,

    #[command(flatten)]
    pub webhook_guard: WebhookGuardArgs,

    /// Delays before each retry of a webhook delivery that failed, comma-separated (`5s`, `30m`,
    /// `2h`); each is spread by ±20 %. When the last retry fails, the delivery has failed.
    #[arg(long, env = "ORION_WEBHOOK_RETRY_SCHEDULE",
          default_value = orion_webhooks::schedule::DEFAULT)]
    pub webhook_retry_schedule: orion_webhooks::RetrySchedule,

    /// Seconds a webhook receiver has to answer one delivery.
    #[arg(long, env = "ORION_WEBHOOK_TIMEOUT_SECONDS",
          default_value_t = orion_webhooks::sender::DEFAULT_TIMEOUT_SECONDS,
          value_parser = clap::value_parser!(u32).range(1..=300))]
    pub webhook_timeout_seconds: u32,

    /// How long a webhook endpoint may fail every delivery before it is disabled and the admins
    /// are emailed (`5days`, `12h`).
    #[arg(long, env = "ORION_WEBHOOK_DISABLE_AFTER", default_value = "5days",
          value_parser = humantime::parse_duration)]
    pub webhook_disable_after: Duration,

    /// Unacknowledged messages the broker may send ahead to each consumer.
    #[arg(long, env = "ORION_WORKER_PREFETCH", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub prefetch: u16,
}

impl Config {
    /// Refuses settings the worker cannot run with, without connecting to anything.
    pub fn check(&self) -> Result<()> {
        let settings = |e: orion_config::Error| Error::Config(e.to_string());
        self.database.check().map_err(settings)?;
        self.amqp.check().map_err(settings)?;
        if !self.amqp_management_url.is_empty() {
            orion_config::check_url(
                "ORION_AMQP_MANAGEMENT_URL",
                &self.amqp_management_url,
                &["http", "https"],
            )
            .map_err(settings)?;
        }
        Mailer::new(&self.smtp_url, &self.email_from)?;
        Ok(())
    }

    /// The topology this configuration names on the broker.
    pub fn topology(&self) -> Topology {
        Topology::new(self.amqp.amqp_prefix.clone()).with_retry_delays(self.amqp.retry_delays_ms())
    }
}

/// How long a stopping worker waits for the messages it holds (a handler takes milliseconds when
/// its dependencies are up; one stuck on a dead dependency is better handed back).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The queues whose handlers use the database: saga, email and webhooks.
const CONSUMED_QUEUES: u32 = 3;
/// Connections used besides the handlers: the outbox relay (claim and listener), the sweeper,
/// the dead-letter keeper, the inbox clean-up, the read models' upkeep and the health check,
/// and the webhook deliveries' own.
const BACKGROUND_CONNECTIONS: u32 = 7 + webhooks::delivery::CONNECTIONS;

/// A pool with a connection for every handler that can run at once, so handlers never queue
/// for a connection while the database is healthy.
fn pool_size(concurrency: u32) -> u32 {
    CONSUMED_QUEUES
        .saturating_mul(concurrency)
        .saturating_add(BACKGROUND_CONNECTIONS)
}

/// How long handled message ids are remembered: far longer than any retry path (about a minute)
/// or a broker outage.
const INBOX_RETENTION: time::Duration = time::Duration::days(7);

/// How long finished webhook deliveries stay listed (and replayable).
const WEBHOOK_RETENTION: time::Duration = time::Duration::days(30);

/// Connects, migrates, then works until `shutdown` completes; in-flight messages are finished
/// and acknowledged before it returns.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let pool = orion_persistence::connect(
        &config.database.database_url,
        config
            .database
            .max_connections(pool_size(config.concurrency)),
    )
    .await?;
    orion_persistence::migrate(&pool).await?;
    let templates = Arc::new(Templates::load()?);
    let mailer = Mailer::new(&config.smtp_url, &config.email_from)?;
    let broker = Arc::new(Broker::new(config.amqp.amqp_url.clone()));
    let topology = config.topology();
    let publisher = Publisher::new(broker.clone(), topology.clone());
    let relay = OutboxRelay::new(
        pool.clone(),
        publisher,
        "orion-worker",
        RelaySettings::default(),
    )
    .spawn();

    let (stop, stopped) = watch::channel(false);
    let stopping = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    let settings = ConsumerSettings {
        prefetch: config.prefetch,
        concurrency: usize::try_from(config.concurrency).unwrap_or(8),
        batch: usize::from(config.batch),
        fault_injection: config.fault_injection,
        ..ConsumerSettings::default()
    };
    let consumer = |queue, settings: ConsumerSettings| {
        QueueConsumer::new(broker.clone(), topology.clone(), queue, settings)
            .with_database(pool.clone())
    };

    let saga = SagaShell::new(
        pool.clone(),
        Arc::new(SimulatedProvider::new(
            Duration::from_millis(u64::from(config.payment_latency_ms)),
            config.payment_fault,
        )),
        SagaSettings::new(
            config.saga.reserve_step(),
            Duration::from_secs(u64::from(config.payment_timeout_seconds)),
            config.payment_attempts,
            Duration::from_millis(u64::from(config.sweep_interval_ms)),
        ),
    );
    let email = EmailHandler::new(
        pool.clone(),
        mailer,
        templates,
        EmailSettings {
            public_url: config.public_url.clone(),
            max_attempts: config.email_max_attempts,
        },
    );
    let projections = ProjectionsHandler;
    let webhooks_queued = Arc::new(tokio::sync::Notify::new());
    let webhook_fan_out = WebhookFanOut::new(pool.clone(), webhooks_queued.clone());
    let webhook_delivery = WebhookDelivery::new(
        pool.clone(),
        DeliverySettings {
            policy: orion_webhooks::AddressPolicy {
                allow_private: config.webhook_guard.allow_private(config.common.env),
            },
            timeout: Duration::from_secs(u64::from(config.webhook_timeout_seconds)),
            schedule: config.webhook_retry_schedule.clone(),
            disable_after: config.webhook_disable_after,
        },
        webhooks_queued,
    )?;

    let mut tasks = tokio::task::JoinSet::new();
    if config.amqp_management_url.is_empty() {
        tracing::info!("queue policies are put in place by the operators");
    } else {
        let management = Management::new(&config.amqp_management_url, &config.amqp.amqp_url)
            .map_err(|error| Error::Config(error.to_string()))?;
        tasks.spawn(management.keep(topology.policies(), stopping()));
    }
    // At most two saga batches at a time: every reservation takes the same few item rows, so a
    // third batch would only wait (and PostgreSQL checks each wait of over a second for
    // deadlocks); two keep one reserving while the other records payments.
    let saga_settings = ConsumerSettings {
        concurrency: settings.concurrency.min(2),
        ..settings.clone()
    };
    tasks.spawn(consumer(WorkQueue::Saga, saga_settings).run(saga.clone(), stopping()));
    // An email's handler may wait out an outage to record a send the SMTP server already took.
    // One batch at a time, as large as the concurrency: every email of a batch is sent at once,
    // so the emails in flight (those a killed worker leaves unknown) stay at the concurrency.
    let email_settings = ConsumerSettings {
        handler_timeout: email::HANDLER_TIMEOUT,
        concurrency: 1,
        batch: settings.concurrency.min(settings.batch),
        ..settings.clone()
    };
    tasks.spawn(consumer(WorkQueue::Email, email_settings).run(email, stopping()));
    tasks.spawn(consumer(WorkQueue::Projections, settings.clone()).run(projections, stopping()));
    tasks.spawn(consumer(WorkQueue::Webhooks, settings.clone()).run(webhook_fan_out, stopping()));
    tasks.spawn(webhook_delivery.run(stopping()));
    tasks.spawn(
        DeadLetterKeeper::new(broker.clone(), topology.clone(), pool.clone()).run(stopping()),
    );
    tasks.spawn(saga.run_sweeper(stopping()));
    tasks.spawn(projections::keep_read_models(pool.clone(), stopping()));
    tasks.spawn(forget_old_messages(pool.clone(), stopping()));

    let address = listener.local_addr()?;
    tracing::info!(%address, "orion-worker listening");
    let served = axum::serve(listener, health::routes(pool, broker))
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop.send(true);
        })
        .await;
    // Consumers finish and acknowledge what they hold, and the relay its round, side by side and
    // for a bounded time: what is still unfinished then is handed back by the broker when the
    // connection closes, and redelivered to another worker, where the inbox makes it harmless.
    let drain = async {
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                seconds = DRAIN_TIMEOUT.as_secs(),
                "work still running at shutdown; stopping anyway"
            );
            tasks.abort_all();
        }
    };
    tokio::join!(drain, relay.stop());
    served?;
    tracing::info!("orion-worker stopped");
    Ok(())
}

pub(crate) use orion_persistence::now;

/// Deletes inbox rows older than the retention, and finished webhook deliveries older than
/// theirs, hourly.
async fn forget_old_messages(pool: orion_persistence::Pool, stopping: impl Future<Output = ()>) {
    tokio::pin!(stopping);
    let mut ticker = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            () = &mut stopping => break,
            _ = ticker.tick() => {}
        }
        let now = time::OffsetDateTime::now_utc();
        let deleted = async {
            let mut conn = pool.acquire().await?;
            let inbox =
                orion_persistence::inbox::delete_handled_before(&mut conn, now - INBOX_RETENTION)
                    .await?;
            let deliveries = orion_persistence::webhooks::delete_finished_before(
                &mut conn,
                now - WEBHOOK_RETENTION,
            )
            .await?;
            Ok::<_, orion_persistence::Error>((inbox, deliveries))
        }
        .await;
        match deleted {
            Ok((0, 0)) => {}
            Ok((inbox, deliveries)) => {
                tracing::info!(inbox, webhook_deliveries = deliveries, "forgot old rows");
            }
            Err(error) => tracing::warn!(%error, "clean-up failed"),
        }
    }
}
