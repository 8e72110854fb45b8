//! An OTLP trace receiver inside the test, over HTTP/protobuf or gRPC: the binaries export to it
//! as to a collector (`OTEL_EXPORTER_OTLP_ENDPOINT`), and it keeps every span it is sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;

/// One span as received, with its service.
#[derive(Debug, Clone)]
pub(crate) struct ReceivedSpan {
    pub(crate) service: String,
    pub(crate) name: String,
    pub(crate) trace_id: String,
    pub(crate) span_id: String,
    /// Empty for a root span.
    pub(crate) parent_span_id: String,
    /// OTLP's span kind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer.
    pub(crate) kind: i32,
    pub(crate) start_unix_nano: u64,
    pub(crate) attributes: HashMap<String, String>,
}

type Spans = Arc<Mutex<Vec<ReceivedSpan>>>;

/// The receiver; stops with the test's runtime.
pub(crate) struct OtlpReceiver {
    endpoint: String,
    spans: Spans,
}

impl OtlpReceiver {
    pub(crate) async fn start() -> OtlpReceiver {
        let spans = Spans::default();
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(receive))
            .with_state(spans.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port for the OTLP receiver");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        OtlpReceiver { endpoint, spans }
    }

    /// A receiver of OTLP over gRPC (`OTEL_EXPORTER_OTLP_PROTOCOL=grpc`): HTTP/2 with the
    /// gRPC framing of the collector's `TraceService/Export`, answered by hand.
    pub(crate) async fn start_grpc() -> OtlpReceiver {
        let spans = Spans::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port for the OTLP receiver");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let kept = spans.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let spans = kept.clone();
                tokio::spawn(async move {
                    let Ok(mut connection) = h2::server::handshake(socket).await else {
                        return;
                    };
                    while let Some(Ok((request, respond))) = connection.accept().await {
                        tokio::spawn(export_call(spans.clone(), request, respond));
                    }
                });
            }
        });
        OtlpReceiver { endpoint, spans }
    }

    /// The value of `OTEL_EXPORTER_OTLP_ENDPOINT` (the exporter appends `/v1/traces`).
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Every span received so far.
    pub(crate) fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().expect("spans").clone()
    }
}

/// One gRPC call: `/opentelemetry.proto.collector.trace.v1.TraceService/Export` with one
/// length-prefixed message, answered with an empty response and `grpc-status: 0`.
async fn export_call(
    spans: Spans,
    request: axum::http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
) {
    let path = request.uri().path().to_owned();
    let mut body = request.into_body();
    let mut data = Vec::new();
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let message = data
        .get(5..)
        .filter(|_| path == "/opentelemetry.proto.collector.trace.v1.TraceService/Export");
    let status = match message.map(ExportTraceServiceRequest::decode) {
        Some(Ok(export)) => {
            keep(&spans, export);
            "0"
        }
        // INVALID_ARGUMENT, UNIMPLEMENTED
        Some(Err(_)) => "3",
        None => "12",
    };
    let head = axum::http::Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/grpc")
        .body(())
        .expect("a response head");
    let Ok(mut stream) = respond.send_response(head, false) else {
        return;
    };
    let reply = ExportTraceServiceResponse::default().encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(reply.len()).unwrap_or(0).to_be_bytes());
    framed.extend_from_slice(&reply);
    let _ = stream.send_data(Bytes::from(framed), false);
    let mut trailers = axum::http::HeaderMap::new();
    trailers.insert("grpc-status", axum::http::HeaderValue::from_static(status));
    let _ = stream.send_trailers(trailers);
}

async fn receive(State(spans): State<Spans>, body: Bytes) -> impl IntoResponse {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new()).into_response();
    };
    keep(&spans, request);
    (
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
        .into_response()
}

/// Keeps every span of an export, with its service's name.
fn keep(spans: &Spans, request: ExportTraceServiceRequest) {
    let mut received = Vec::new();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .map(|r| attributes(&r.attributes))
            .and_then(|a| a.get("service.name").cloned())
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                received.push(ReceivedSpan {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    kind: span.kind,
                    start_unix_nano: span.start_time_unix_nano,
                    attributes: attributes(&span.attributes),
                });
            }
        }
    }
    spans.lock().expect("spans").extend(received);
}

fn attributes(pairs: &[KeyValue]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|pair| {
            let value = match pair.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(AnyValue::StringValue(s)) => s.clone(),
                Some(AnyValue::BoolValue(b)) => b.to_string(),
                Some(AnyValue::IntValue(i)) => i.to_string(),
                Some(AnyValue::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (pair.key.clone(), value)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
