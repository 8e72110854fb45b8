//! The API's error type.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] orion_config::Error),
    #[error(transparent)]
    Persistence(#[from] orion_persistence::Error),
    #[error(transparent)]
    Auth(#[from] orion_auth::Error),
    #[error(transparent)]
    Domain(#[from] orion_domain::Error),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}
