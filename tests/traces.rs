//! OpenTelemetry: the three binaries, as real processes, export their spans over OTLP to a
//! receiver inside the test, and one order placed through the gateway is one trace from the
//! gateway's request to the worker's email, across the outbox and the broker.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::support::{
    CUSTOMER, Launch, OrionProcess, OtlpReceiver, ReceivedSpan, api_args, database_url,
    gateway_args, sign_in, worker_args,
};

const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const PRODUCER: i32 = 4;
const CONSUMER: i32 = 5;

#[sqlx::test(migrations = false)]
async fn one_order_is_one_trace_from_the_gateway_to_its_email(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let receiver = OtlpReceiver::start().await;
    let logs = tempfile_path("api-log");
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        // Batches leave every 100 ms instead of every 5 s.
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("RUST_LOG", "info"),
    ];
    let db = database_url(&options);
    let prefix = format!("test-{}.", uuid::Uuid::new_v4().simple());
    let api = OrionProcess::spawn_with(
        "orion-api",
        &api_args(&db, &prefix, &["--log-format", "json"]),
        None,
        &Launch {
            env: &env,
            stdout: Some(&logs),
        },
    )
    .await;
    let worker = OrionProcess::spawn_with(
        "orion-worker",
        &worker_args(&db, &prefix, &[]),
        None,
        &Launch {
            env: &env,
            stdout: None,
        },
    )
    .await;
    let gateway = OrionProcess::spawn_with(
        "orion-gateway",
        &gateway_args(&api.address().to_string(), &[]),
        None,
        &Launch {
            env: &env,
            stdout: None,
        },
    )
    .await;

    let http = reqwest::Client::new();
    let base = format!("http://{}", gateway.address());
    let token = sign_in(&http, &base, CUSTOMER).await;
    let placed = http
        .post(format!("{base}/api/orders"))
        .bearer_auth(&token)
        .json(&json!({"items": [{"sku": "SKU-2", "quantity": 1}]}))
        .send()
        .await
        .expect("place");
    assert_eq!(placed.status(), 202);
    let order: Value = placed.json().await.expect("order json");
    let order_id = order["id"].as_str().expect("order id").to_owned();

    // The gateway's span of the placement is the root of the trace; wait until the trace holds
    // the email sent for the confirmation.
    let mut trace = Trace::default();
    for _ in 0..300 {
        trace = Trace::of_placement(&receiver.spans());
        if trace.confirmation_emailed(&format!("process {prefix}orion.email")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The trace as a tree, for whoever reads the test output.
    eprintln!("{}", trace.render());

    let gateway_span = trace.expect("orion-gateway", "POST /api/orders", SERVER);
    assert!(
        gateway_span.parent_span_id.is_empty(),
        "the gateway starts the trace"
    );
    assert_eq!(gateway_span.attributes["http.route"], "/api/orders");
    assert_eq!(gateway_span.attributes["http.response.status_code"], "202");
    let api_span = trace.expect("orion-api", "POST /api/orders", SERVER);
    assert_eq!(api_span.parent_span_id, gateway_span.span_id);
    let placement = trace.expect("orion-api", "place order", 1);
    assert_eq!(placement.parent_span_id, api_span.span_id);
    assert_eq!(placement.attributes["order.id"], order_id);

    // The outbox row kept the placement's context: the relay's publish is its descendant.
    let events = format!("{prefix}orion.events");
    let publish_placed = trace.message_span(&format!("publish {events}"), PRODUCER, "order.placed");
    assert_eq!(publish_placed.attributes["messaging.system"], "rabbitmq");
    assert_eq!(
        publish_placed.attributes["messaging.destination.name"],
        events
    );
    assert_eq!(
        publish_placed.attributes["messaging.operation.type"],
        "send"
    );
    assert!(
        trace.descends_from(publish_placed, placement),
        "the publication descends from the placement transaction"
    );

    // The worker's consume is the publish's child; each saga step the consume's child.
    let saga = format!("{prefix}orion.saga");
    let process_placed = trace.message_span(&format!("process {saga}"), CONSUMER, "order.placed");
    assert_eq!(process_placed.service, "orion-worker");
    assert_eq!(process_placed.parent_span_id, publish_placed.span_id);
    assert_eq!(
        process_placed.attributes["messaging.destination.name"],
        saga
    );
    assert_eq!(
        process_placed.attributes["messaging.operation.type"],
        "process"
    );
    for step in [
        "saga reserve stock",
        "saga authorize payment",
        "saga confirm order",
    ] {
        let span = trace.expect("orion-worker", step, 1);
        assert_eq!(span.parent_span_id, process_placed.span_id, "{step}");
    }

    // The payment's own event, written by the batch path where no one message's span is
    // current, stays in the order's trace too.
    let publish_payment =
        trace.message_span(&format!("publish {events}"), PRODUCER, "payment.authorized");
    assert!(trace.descends_from(publish_payment, process_placed));

    // The confirmation, written by the confirm step, is published, consumed by the email
    // queue, and sent: still the same trace.
    let confirm = trace.expect("orion-worker", "saga confirm order", 1);
    let publish_confirmed =
        trace.message_span(&format!("publish {events}"), PRODUCER, "order.confirmed");
    assert!(trace.descends_from(publish_confirmed, confirm));
    let email_queue = format!("{prefix}orion.email");
    let process_confirmed = trace.message_span(
        &format!("process {email_queue}"),
        CONSUMER,
        "order.confirmed",
    );
    assert_eq!(process_confirmed.parent_span_id, publish_confirmed.span_id);
    let send = trace
        .spans
        .iter()
        .find(|s| s.name == "send email" && trace.descends_from(s, process_confirmed))
        .unwrap_or_else(|| panic!("no email sent for the confirmation:\n{}", trace.render()));
    assert_eq!(send.kind, CLIENT);
    assert_eq!(send.service, "orion-worker");

    // Logs carry the trace: the API's line about the order names the trace and its span.
    let log = std::fs::read_to_string(&logs).expect("the API's log");
    let placed_line = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["message"] == "order placed")
        .unwrap_or_else(|| panic!("no 'order placed' line in the API's log:\n{log}"));
    assert_eq!(
        placed_line["openTelemetry"]["traceId"],
        gateway_span.trace_id
    );
    assert_eq!(placed_line["openTelemetry"]["spanId"], placement.span_id);

    gateway.terminate_within(Duration::from_secs(30)).await;
    worker.terminate_within(Duration::from_secs(30)).await;
    api.terminate_within(Duration::from_secs(30)).await;
    let _ = std::fs::remove_file(&logs);
}

fn tempfile_path(what: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "orion-{what}-{}.jsonl",
        uuid::Uuid::new_v4().simple()
    ))
}

/// The spans of the trace the gateway started for `POST /api/orders`.
#[derive(Debug, Default)]
struct Trace {
    spans: Vec<ReceivedSpan>,
}

impl Trace {
    fn of_placement(all: &[ReceivedSpan]) -> Trace {
        let Some(root) = all.iter().find(|s| {
            s.service == "orion-gateway" && s.name == "POST /api/orders" && s.kind == SERVER
        }) else {
            return Trace::default();
        };
        Trace {
            spans: all
                .iter()
                .filter(|s| s.trace_id == root.trace_id)
                .cloned()
                .collect(),
        }
    }

    /// Whether the trace holds an email sent for the order's confirmation.
    fn confirmation_emailed(&self, email_process: &str) -> bool {
        self.spans.iter().any(|send| {
            send.name == "send email"
                && self.spans.iter().any(|process| {
                    process.name == email_process
                        && process
                            .attributes
                            .get("messaging.rabbitmq.destination.routing_key")
                            == Some(&"order.confirmed".to_owned())
                        && self.descends_from(send, process)
                })
        })
    }

    fn find(&self, service: &str, name: &str) -> Option<&ReceivedSpan> {
        self.spans
            .iter()
            .find(|s| s.service == service && s.name == name)
    }

    fn expect(&self, service: &str, name: &str, kind: i32) -> &ReceivedSpan {
        let span = self.find(service, name).unwrap_or_else(|| {
            panic!(
                "no span {name:?} of {service} in the trace:\n{}",
                self.render()
            )
        });
        assert_eq!(span.kind, kind, "kind of {name:?}");
        span
    }

    /// The span named `name` of the message with routing key `routing_key`.
    fn message_span(&self, name: &str, kind: i32, routing_key: &str) -> &ReceivedSpan {
        let span = self
            .spans
            .iter()
            .find(|s| {
                s.name == name
                    && s.attributes
                        .get("messaging.rabbitmq.destination.routing_key")
                        == Some(&routing_key.to_owned())
            })
            .unwrap_or_else(|| {
                panic!(
                    "no span {name:?} for {routing_key} in the trace:\n{}",
                    self.render()
                )
            });
        assert_eq!(span.kind, kind, "kind of {name:?}");
        span
    }

    fn parent(&self, span: &ReceivedSpan) -> Option<&ReceivedSpan> {
        self.spans.iter().find(|s| s.span_id == span.parent_span_id)
    }

    fn descends_from(&self, span: &ReceivedSpan, ancestor: &ReceivedSpan) -> bool {
        let mut current = self.parent(span);
        while let Some(parent) = current {
            if parent.span_id == ancestor.span_id {
                return true;
            }
            current = self.parent(parent);
        }
        false
    }

    /// The trace as an indented tree: service, span name, kind.
    fn render(&self) -> String {
        let mut out = String::new();
        let roots = self.spans.iter().filter(|s| self.parent(s).is_none());
        for root in roots {
            self.render_under(root, 0, &mut out);
        }
        out
    }

    fn render_under(&self, span: &ReceivedSpan, depth: usize, out: &mut String) {
        let kind = match span.kind {
            SERVER => "server",
            CLIENT => "client",
            PRODUCER => "producer",
            CONSUMER => "consumer",
            _ => "internal",
        };
        out.push_str(&format!(
            "{:indent$}{} [{}] ({kind})\n",
            "",
            span.name,
            span.service,
            indent = depth * 2
        ));
        let mut children: Vec<&ReceivedSpan> = self
            .spans
            .iter()
            .filter(|s| s.parent_span_id == span.span_id)
            .collect();
        children.sort_by_key(|s| s.start_unix_nano);
        for child in children {
            self.render_under(child, depth + 1, out);
        }
    }
}

/// The gRPC transport (`OTEL_EXPORTER_OTLP_PROTOCOL=grpc`), from the gateway, whose main
/// runtime has a single thread: its request's span reaches a gRPC receiver.
#[tokio::test]
async fn spans_reach_a_collector_over_grpc_too() {
    let receiver = OtlpReceiver::start_grpc().await;
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    // No replica behind it: the request is answered by the gateway alone, and traced.
    let gateway = OrionProcess::launch_with(
        "orion-gateway",
        &gateway_args("127.0.0.1:9", &[]),
        None,
        &Launch {
            env: &env,
            stdout: None,
        },
    );
    let http = reqwest::Client::new();
    let url = format!("http://{}/api/inventory", gateway.address());
    let mut answered = None;
    for _ in 0..200 {
        if let Ok(response) = http.get(&url).send().await {
            answered = Some(response.status().as_u16());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = answered.expect("the gateway answers");
    let mut span = None;
    for _ in 0..100 {
        span = receiver
            .spans()
            .into_iter()
            .find(|s| s.name == "GET /api/inventory");
        if span.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let span = span.expect("the gateway's span, exported over gRPC");
    assert_eq!(span.service, "orion-gateway");
    assert_eq!(span.kind, SERVER);
    assert_eq!(
        span.attributes["http.response.status_code"],
        status.to_string()
    );
    gateway.terminate_within(Duration::from_secs(30)).await;
}
