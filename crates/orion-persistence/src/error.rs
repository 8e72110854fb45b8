//! The one error type of the persistence crate: database failures and broken constraints,
//! translated by constraint name into the domain's terms.

use orion_domain::{OrderId, Shortage};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("an account with this email already exists")]
    DuplicateEmail,
    #[error("an item with SKU {0} already exists")]
    DuplicateSku(String),
    #[error("stock for order {0} is already reserved")]
    AlreadyReserved(OrderId),
    #[error("{aggregate} {id} was changed concurrently; reload and retry")]
    VersionConflict { aggregate: &'static str, id: String },
    #[error("order {0} not found")]
    OrderNotFound(OrderId),
    #[error("no inventory item with SKU {0}")]
    ItemNotFound(String),
    #[error("not enough stock for {} line(s)", .0.len())]
    InsufficientStock(Vec<Shortage>),
    #[error("constraint {constraint} violated")]
    Constraint {
        constraint: String,
        source: sqlx::Error,
    },
    #[error("stored {table} row is invalid: {reason}")]
    Corrupt { table: &'static str, reason: String },
    #[error(transparent)]
    Domain(#[from] orion_domain::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error")]
    Database(#[source] sqlx::Error),
}

impl Error {
    pub(crate) fn corrupt(table: &'static str, reason: impl std::fmt::Display) -> Self {
        Self::Corrupt {
            table,
            reason: reason.to_string(),
        }
    }

    /// The violated constraint, for errors that are one.
    pub fn constraint(&self) -> Option<&str> {
        match self {
            Self::Constraint { constraint, .. } => Some(constraint),
            _ => None,
        }
    }

    /// A serialization failure or deadlock: the transaction may simply be run again.
    pub fn is_retryable(&self) -> bool {
        let code = match self {
            Self::Database(e) | Self::Constraint { source: e, .. } => e
                .as_database_error()
                .and_then(|d| d.code().map(|c| c.into_owned())),
            _ => None,
        };
        matches!(code.as_deref(), Some("40001" | "40P01"))
    }

    /// The database could not be reached or is shutting down, restarting or overloaded: the
    /// request or message was not at fault and succeeds unchanged once the database is back.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Database(e) | Self::Constraint { source: e, .. } => sqlx_unavailable(e),
            Self::Migrate(sqlx::migrate::MigrateError::Execute(e)) => sqlx_unavailable(e),
            _ => false,
        }
    }
}

/// Whether a driver error means "the database is away" rather than "this statement is wrong".
pub fn sqlx_unavailable(error: &sqlx::Error) -> bool {
    use sqlx::Error as E;
    match error {
        E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::Tls(_) | E::WorkerCrashed => true,
        // The server closed the connection under us (it was stopped or restarted).
        E::Protocol(_) => true,
        E::Database(db) => db.code().is_some_and(|code| {
            // Class 08: connection exception; 57P01-57P03: administrator or crash shutdown,
            // cannot connect now; 53300: too many connections; 57014: a statement timeout,
            // which is how a stalled database shows up.
            code.starts_with("08")
                || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300" | "57014")
        }),
        _ => false,
    }
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        let constraint = error
            .as_database_error()
            .and_then(|d| d.constraint())
            .map(str::to_owned);
        match constraint.as_deref() {
            Some("users_email_uq") => Self::DuplicateEmail,
            Some(name) => Self::Constraint {
                constraint: name.to_owned(),
                source: error,
            },
            None => Self::Database(error),
        }
    }
}
