//! Logs and traces for every Orion process.

pub mod metrics;

use std::io::IsTerminal;

use orion_config::LogFormat;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The one error of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid RUST_LOG filter: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled(#[from] tracing_subscriber::util::TryInitError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Levels used when `RUST_LOG` is unset: Orion at info, chatty dependencies at warn.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,lapin=warn,hyper=warn,tower_http=info";

/// Installs the global subscriber: `RUST_LOG` filtering, and JSON (one object per line, with the
/// current span's fields) or human-readable output.
pub fn init(service: &'static str, format: LogFormat) -> Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(directives)?,
        _ => EnvFilter::try_new(DEFAULT_FILTER)?,
    };
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init()?,
        LogFormat::Pretty => {
            // Colours only for a person at a terminal; log files and pipes get plain text.
            let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            registry
                .with(tracing_subscriber::fmt::layer().compact().with_ansi(ansi))
                .try_init()?
        }
    }
    tracing::debug!(service, "telemetry initialised");
    Ok(())
}
