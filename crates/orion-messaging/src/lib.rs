//! Orion's RabbitMQ side: the broker connection, the topology (every exchange and queue from one
//! prefix), the message envelope, and publishing with confirms.

mod broker;
mod connecting;
mod consumer;
pub mod dead_letters;
mod dependencies;
mod envelope;
mod faults;
mod policies;
mod publisher;
mod readiness;
mod relay;
mod spans;
mod topology;

pub use broker::Broker;
pub use consumer::{
    ATTEMPTS_HEADER, ConsumerSettings, ERROR_HEADER, Handler, HandlerError, ORIGIN_HEADER,
    QueueConsumer,
};
pub use envelope::Envelope;
pub use faults::FAULT_HEADER;
pub use policies::{Management, QueuePolicy, WORK_DELIVERY_LIMIT};
pub use publisher::Publisher;
pub use readiness::Readiness;
pub use relay::{OutboxRelay, RelaySettings, RoundReport, RunningRelay};
pub use topology::{RETRY_DELAYS_MS, Topology, WorkQueue};

/// The one error of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("broker error: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("invalid AMQP URL: {0}")]
    Url(String),
    #[error("the broker refused the message (nack)")]
    Nacked,
    #[error("no queue is bound for {0}; the broker returned the message")]
    Unroutable(String),
    #[error("the broker connection failed before the message went out: {0}")]
    ChannelLost(String),
    #[error("a message could not be settled")]
    Unsettled,
    #[error("the channel is not in confirm mode")]
    NotConfirmed,
    #[error("cannot encode the message: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("cannot decode the message: {0}")]
    Decode(#[source] serde_json::Error),
    #[error("RabbitMQ management API: {0}")]
    Management(String),
    #[error(transparent)]
    Persistence(#[from] orion_persistence::Error),
}

impl Error {
    /// The message itself was refused (a nack, no queue bound, not encodable), as opposed to the
    /// broker being unreachable: the message waits out a backoff, the rest carry on.
    pub fn is_message_fault(&self) -> bool {
        matches!(self, Self::Nacked | Self::Unroutable(_) | Self::Encode(_))
    }

    /// A short, stable name of the kind of failure (a span's `error.type`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Broker(_) => "broker",
            Self::Timeout(_) => "timeout",
            Self::Url(_) => "url",
            Self::Nacked => "nacked",
            Self::Unroutable(_) => "unroutable",
            Self::ChannelLost(_) => "channel_lost",
            Self::Unsettled => "unsettled",
            Self::NotConfirmed => "not_confirmed",
            Self::Encode(_) => "encode",
            Self::Decode(_) => "decode",
            Self::Management(_) => "management",
            Self::Persistence(_) => "persistence",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
