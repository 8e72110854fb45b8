//! Spans of messages crossing the broker, named and attributed by the OpenTelemetry messaging
//! conventions: `publish <exchange>` (a producer span, the parent the message carries) and
//! `process <queue>` (a consumer span, the child of the message's producer).

use tracing::Span;

use crate::Envelope;

/// The span of publishing `envelope` to `exchange`, a child of the context the outbox row kept.
/// The envelope should carry this span's own context (`orion_telemetry::propagation`).
pub(crate) fn publish(exchange: &str, envelope: &Envelope, stored: Option<&str>) -> Span {
    let span = tracing::info_span!(
        "publish",
        otel.name = %format_args!("publish {exchange}"),
        otel.kind = "producer",
        messaging.system = "rabbitmq",
        messaging.operation.type = "send",
        messaging.operation.name = "publish",
        messaging.destination.name = exchange,
        messaging.rabbitmq.destination.routing_key = envelope.kind.as_str(),
        messaging.message.id = %envelope.id,
        error.type = tracing::field::Empty,
    );
    orion_telemetry::propagation::set_parent(&span, stored);
    span
}

/// The span of handling one message from `queue`, a child of the span that published it.
pub(crate) fn process(queue: &str, envelope: &Envelope, redelivered: bool) -> Span {
    let span = tracing::info_span!(
        "process",
        otel.name = %format_args!("process {queue}"),
        otel.kind = "consumer",
        messaging.system = "rabbitmq",
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.destination.name = queue,
        messaging.rabbitmq.destination.routing_key = envelope.kind.as_str(),
        messaging.message.id = %envelope.id,
        messaging.rabbitmq.message.redelivered = redelivered,
        error.type = tracing::field::Empty,
    );
    orion_telemetry::propagation::set_parent(&span, envelope.traceparent.as_deref());
    span
}
