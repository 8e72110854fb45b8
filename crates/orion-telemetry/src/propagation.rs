//! W3C trace context (`traceparent`) in and out of spans: HTTP requests, outbox rows and AMQP
//! headers all carry it as one string.
//!
//! Without the OpenTelemetry layer installed (the tests run the binaries' libraries in one
//! process), spans have no context: `traceparent` gives `None` and callers pass along what they
//! received.

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const TRACEPARENT: &str = "traceparent";

/// The `traceparent` naming `span` as the parent, or `None` when spans carry no trace context.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    // Version 00 of the W3C format, written directly: this runs for every proxied request.
    span_context.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            span_context.trace_id(),
            span_context.span_id(),
            span_context.trace_flags().to_u8()
        )
    })
}

/// The `traceparent` of the current span (see [`traceparent`]).
pub fn current_traceparent() -> Option<String> {
    traceparent(&tracing::Span::current())
}

/// Makes `span` a child of the remote span `traceparent` names; a missing or malformed value
/// leaves `span` where it is (a new trace, or under its local parent).
pub fn set_parent(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent else {
        return;
    };
    let context = TraceContextPropagator::new().extract(&Single(traceparent));
    if context.span().span_context().is_valid() {
        // Only fails for a span already started, which a caller setting the parent of a span
        // it just made never has.
        let _ = span.set_parent(context);
    }
}

/// The server span of one HTTP request, named `{method} {route}` by the HTTP conventions, a
/// child of the caller's span when it sent a `traceparent`. `client.address`, `request_id`
/// and `http.response.status_code` are the caller's to record.
pub fn http_server_span(
    method: &str,
    route: &str,
    path: &str,
    traceparent: Option<&str>,
) -> tracing::Span {
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
        url.path = path,
        client.address = tracing::field::Empty,
        request_id = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    set_parent(&span, traceparent);
    span
}

/// A carrier holding just a `traceparent`.
struct Single<'a>(&'a str);

impl Extractor for Single<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == TRACEPARENT).then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    const REMOTE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_span_continues_a_remote_trace_and_names_itself_as_the_next_parent() {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("process orion.saga");
            set_parent(&span, Some(REMOTE));
            let own = traceparent(&span).expect("a span under the layer has context");
            assert!(
                own.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
                "{own}"
            );
            assert!(
                !own.contains("00f067aa0ba902b7"),
                "the span's own id, not its parent's"
            );

            let fresh = tracing::info_span!("unrelated");
            set_parent(&fresh, Some("garbage"));
            let started = traceparent(&fresh).expect("a new trace");
            assert!(!started.contains("4bf92f3577b34da6a3ce929d0e0e4736"));
        });
    }

    #[test]
    fn without_the_layer_there_is_nothing_to_propagate() {
        let span = tracing::info_span!("request");
        set_parent(&span, Some(REMOTE));
        assert_eq!(traceparent(&span), None);
    }
}
