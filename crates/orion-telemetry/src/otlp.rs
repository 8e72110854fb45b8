//! The OTLP trace pipeline, configured by the standard `OTEL_*` variables alone.
//!
//! The exporter reads `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`), `…_PROTOCOL`
//! (`grpc` or `http/protobuf`), `…_HEADERS` and `…_TIMEOUT`; the SDK reads the sampler
//! (`OTEL_TRACES_SAMPLER`) and batching (`OTEL_BSP_*`) settings and the resource
//! (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`).

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

/// Whether spans leave the process: an OTLP endpoint is set and the exporter is not `none`.
pub(crate) fn exporting() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|value| !value.trim().is_empty());
    let disabled = std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|value| value.trim() == "none");
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// The tracer provider, exporting when [`exporting`] said so. Without an endpoint it has no
/// exporter at all: spans still get trace
/// and span ids (for the logs and for `traceparent` across HTTP and the broker), and nothing
/// is sent anywhere. An exporter that cannot be set up (a malformed endpoint) is reported in
/// the second value and the process runs without it: traces are not worth an outage.
pub(crate) fn provider(
    service: &'static str,
    exporting: bool,
) -> (SdkTracerProvider, Option<String>) {
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service);
    }
    let mut builder = SdkTracerProvider::builder().with_resource(resource.build());
    let mut failure = None;
    if exporting {
        // Picks gRPC or HTTP/protobuf from OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL.
        match opentelemetry_otlp::SpanExporter::builder().build() {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(error) => failure = Some(error.to_string()),
        }
    }
    (builder.build(), failure)
}
