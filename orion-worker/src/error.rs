//! The worker's one error type, and which of its errors are worth a retry.

use orion_domain::{OrderId, OrderStatus};
use orion_messaging::HandlerError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Persistence(#[from] orion_persistence::Error),
    #[error(transparent)]
    Domain(#[from] orion_domain::Error),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("order {0} does not exist")]
    UnknownOrder(OrderId),
    #[error("order {order_id} is {status} but has no saga")]
    NoSaga {
        order_id: OrderId,
        status: OrderStatus,
    },
    #[error("undecodable event: {0}")]
    Undecodable(String),
    #[error("payment provider: {0}")]
    Provider(String),
    #[error("SMTP: {0}")]
    Mail(String),
    #[error("template: {0}")]
    Template(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Lost a race with another transaction: running it again will do.
    pub(crate) fn is_race(&self) -> bool {
        match self {
            Self::Persistence(orion_persistence::Error::VersionConflict { .. }) => true,
            Self::Persistence(error) => error.is_retryable(),
            _ => false,
        }
    }

    /// A failure another attempt could fix (the database, the provider or the SMTP server being
    /// away), as opposed to one that will fail the same way every time.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            Self::Persistence(
                orion_persistence::Error::Database(_)
                | orion_persistence::Error::VersionConflict { .. },
            )
            | Self::Database(_)
            | Self::Provider(_)
            | Self::Io(_) => true,
            Self::Persistence(error) => error.is_retryable(),
            // Connection refused, timeouts and 4xx replies are worth another try; a malformed
            // recipient is caught before sending and is not.
            Self::Mail(message) => !message.starts_with("invalid recipient"),
            _ => false,
        }
    }

    /// The database is away: nothing is wrong with the message, which waits for it.
    pub(crate) fn is_unavailable(&self) -> bool {
        match self {
            Self::Persistence(error) => error.is_unavailable(),
            Self::Database(error) => orion_persistence::sqlx_unavailable(error),
            _ => false,
        }
    }

    /// For the consumer: retryable or not, with the whole chain of causes in the message, which
    /// is what an admin reads on a parked message.
    pub(crate) fn into_handler_error(self) -> HandlerError {
        let mut message = self.to_string();
        let mut source = std::error::Error::source(&self);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        if self.is_unavailable() {
            HandlerError::Unavailable(message)
        } else if self.is_transient() {
            HandlerError::Retryable(message)
        } else {
            HandlerError::Permanent(message)
        }
    }
}
