//! Logs and traces for every Orion process.
//!
//! Every process carries W3C trace context through its spans, so one trace follows an order from
//! the gateway through the API, the outbox and the broker to the worker's email; the spans are
//! exported over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (`otlp`), and every JSON log line
//! names its trace and span.

pub mod metrics;
mod otlp;
pub mod propagation;

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use orion_config::LogFormat;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
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

/// What becomes a span of a trace, whatever `RUST_LOG` says of the logs: Orion's spans (all at
/// info) and none of the transports', the exporter's own included (its requests must not
/// become spans to export).
const TRACES_FILTER: &str = "info,sqlx=warn,lapin=warn,hyper=warn,hyper_util=warn,h2=warn,tonic=warn,tower=warn,reqwest=warn,opentelemetry=off,opentelemetry_sdk=off,opentelemetry_otlp=off";

/// Keeps the trace pipeline alive; dropping it (at the end of `main`) exports the spans still
/// buffered, so the last requests of a stopping process are not lost from its traces.
#[derive(Debug)]
#[must_use = "dropping the guard stops trace export"]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Exports what is still buffered and stops the pipeline, off the async threads: the gRPC
    /// exporter needs the runtime's threads free while it sends the last batch.
    pub async fn shut_down(self) {
        let _ = tokio::task::spawn_blocking(move || drop(self)).await;
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Err(error) = self.provider.shutdown() {
            // The subscriber may be gone by now; standard error is all that is left.
            eprintln!("trace export did not finish: {error}");
        }
    }
}

/// Installs the global subscriber: `RUST_LOG` filtering; spans as OpenTelemetry spans (exported
/// over OTLP when configured, otherwise only giving trace ids to logs and to propagation); and
/// JSON (one object per line, with the current span's fields and its trace and span ids) or
/// human-readable output. `service` is the OpenTelemetry service name unless `OTEL_SERVICE_NAME`
/// says otherwise.
pub fn init(service: &'static str, format: LogFormat) -> Result<Telemetry> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(directives)?,
        _ => EnvFilter::try_new(DEFAULT_FILTER)?,
    };
    let configured = otlp::exporting();
    let (provider, exporter_failure) = otlp::provider(service, configured);
    let exporting = configured && exporter_failure.is_none();
    // Each layer filters for itself: quieter logs (`RUST_LOG=warn`) must not empty the traces.
    let traces = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(service))
        // Thread names and ids on every span: noise in a trace of async tasks.
        .with_threads(false)
        .with_filter(EnvFilter::try_new(TRACES_FILTER)?);
    let registry = tracing_subscriber::registry().with(traces);
    match format {
        LogFormat::Json => registry
            .with(
                json_subscriber::fmt::layer()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_opentelemetry_ids(true)
                    .with_filter(filter),
            )
            .try_init()?,
        LogFormat::Pretty => {
            // Colours only for a person at a terminal; log files and pipes get plain text.
            let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .compact()
                        .with_ansi(ansi)
                        .with_filter(filter),
                )
                .try_init()?
        }
    }
    if let Some(error) = exporter_failure {
        tracing::warn!(%error, "traces are not exported: the OTLP exporter cannot be set up from the OTEL_* settings");
    }
    tracing::debug!(service, exporting, "telemetry initialised");
    Ok(Telemetry { provider })
}
