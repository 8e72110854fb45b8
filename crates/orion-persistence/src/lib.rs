//! Orion's PostgreSQL persistence.
//!
//! Functions are named for the act (`reserve_stock`, `record_event`) and take `&mut PgConnection`,
//! so a caller composes several of them in one transaction: an order, its lines, its read model
//! and its events commit together or not at all.

pub mod credentials;
pub mod dead_letters;
pub mod emails;
mod error;
pub mod events;
pub mod idempotency;
pub mod inbox;
pub mod inventory;
pub mod orders;
pub mod outbox;
pub mod payments;
pub mod read_models;
pub mod sagas;
pub mod seed;
pub mod users;
pub mod webhooks;

use std::time::Duration;

use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

pub use error::{Error, Result, sqlx_unavailable};
pub use sqlx::{PgConnection, PgPool as Pool};

/// Every migration in `migrations/`, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// A value read back with the version it had, for optimistic concurrency on save.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: i64,
}

/// Opens a pool to `url`, creating the database first if it does not exist.
#[tracing::instrument(skip_all, fields(db.max_connections = max_connections))]
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool> {
    create_database_if_missing(url).await?;
    let options: PgConnectOptions = url.parse()?;
    let options = options.application_name("orion").options([
        // Nothing Orion runs takes long; a statement that does is stuck behind a lock or a
        // stalled server, and the caller is better off with an error it can retry.
        ("statement_timeout", STATEMENT_TIMEOUT),
        // A transaction left open by a stalled or killed client releases its row locks.
        (
            "idle_in_transaction_session_timeout",
            IDLE_IN_TRANSACTION_TIMEOUT,
        ),
        ("lock_timeout", LOCK_TIMEOUT),
    ]);
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// Longest wait for a pooled connection. Pools are sized so a healthy process never waits long;
/// a timeout means the database is away (or overloaded), which callers treat as "unavailable".
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
const STATEMENT_TIMEOUT: &str = "30s";
const LOCK_TIMEOUT: &str = "20s";
const IDLE_IN_TRANSACTION_TIMEOUT: &str = "60s";

/// Applies pending migrations. Safe to run from several processes at once: the migrator takes an
/// advisory lock.
#[tracing::instrument(skip_all)]
pub async fn migrate(pool: &PgPool) -> Result<()> {
    // The pool's statement timeout applies here too: a migration that rewrites a large table
    // starts with its own `SET statement_timeout`.
    MIGRATOR.run(pool).await?;
    Ok(())
}

async fn create_database_if_missing(url: &str) -> Result<()> {
    if Postgres::database_exists(url).await? {
        return Ok(());
    }
    tracing::info!("database does not exist, creating it");
    match Postgres::create_database(url).await {
        Ok(()) => Ok(()),
        // Another replica starting at the same moment created it first.
        Err(_) if Postgres::database_exists(url).await? => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// The current time at the database's precision (microseconds), so that a value written and
/// then read back, or shown to a client and then read again, is equal.
pub fn now() -> time::OffsetDateTime {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .unwrap_or(now)
}

/// Checks that the database answers.
pub async fn ping(pool: &PgPool) -> Result<()> {
    sqlx::query("select 1").execute(pool).await?;
    Ok(())
}
