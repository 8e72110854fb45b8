//! The queue consumer against a real RabbitMQ, each test under its own prefix.

// In a test, a failed unwrap is a failed test with its location.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use lapin::options::{BasicGetOptions, BasicPublishOptions};
use lapin::types::AMQPValue;
use orion_messaging::{
    ATTEMPTS_HEADER, Broker, ConsumerSettings, ERROR_HEADER, Envelope, Handler, HandlerError,
    Publisher, QueueConsumer, Topology, WorkQueue,
};
use time::OffsetDateTime;
use tokio::sync::oneshot;
use uuid::Uuid;

fn broker() -> Arc<Broker> {
    let url = std::env::var("ORION_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    Arc::new(Broker::new(url))
}

fn envelope() -> Envelope {
    Envelope {
        specversion: Envelope::SPEC_VERSION.into(),
        id: Uuid::now_v7(),
        kind: "order.placed".into(),
        source: "orion-tests".into(),
        time: OffsetDateTime::now_utc(),
        subject: "subject".into(),
        correlation_id: None,
        causation_id: None,
        traceparent: None,
        datacontenttype: "application/json".into(),
        data: serde_json::json!({}),
    }
}

struct Fixture {
    broker: Arc<Broker>,
    topology: Topology,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Fixture {
    /// Starts a consumer of the saga queue with `handler`.
    async fn start(settings: ConsumerSettings, handler: impl Handler) -> Fixture {
        Self::start_after(settings, handler, &[]).await
    }

    /// Starts a consumer of the saga queue with `handler` once `queued` wait in the queue.
    async fn start_after(
        settings: ConsumerSettings,
        handler: impl Handler,
        queued: &[Envelope],
    ) -> Fixture {
        let broker = broker();
        let topology = Topology::new(format!("test-{}.", Uuid::new_v4().simple()));
        topology
            .declare(&broker.channel().await.unwrap())
            .await
            .unwrap();
        let publisher = Publisher::new(broker.clone(), topology.clone());
        for outcome in publisher.publish_all(queued).await {
            outcome.unwrap();
        }
        let consumer =
            QueueConsumer::new(broker.clone(), topology.clone(), WorkQueue::Saga, settings);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(consumer.run(handler, async move {
            let _ = stopped.await;
        }));
        Fixture {
            broker,
            topology,
            stop: Some(stop),
            task: Some(task),
        }
    }

    async fn publish(&self, envelope: &Envelope) {
        Publisher::new(self.broker.clone(), self.topology.clone())
            .publish(envelope)
            .await
            .unwrap();
    }

    async fn publish_raw(&self, body: &[u8]) {
        let channel = self.broker.confirm_channel().await.unwrap();
        channel
            .basic_publish(
                "".into(),
                self.topology.queue(WorkQueue::Saga).as_str().into(),
                BasicPublishOptions::default(),
                body,
                Default::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    async fn dead_letter(&self) -> Option<lapin::message::BasicGetMessage> {
        let channel = self.broker.channel().await.unwrap();
        for _ in 0..100 {
            if let Some(message) = channel
                .basic_get(
                    self.topology.dead_queue().as_str().into(),
                    BasicGetOptions { no_ack: true },
                )
                .await
                .unwrap()
            {
                return Some(message);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Stops the consumer and closes its connection, which hands every delivery it had not
    /// acked back to the queue; then counts the messages in the queue. Only acked messages are
    /// gone, so zero proves the acks (a "ready" count read while the consumer runs would not).
    async fn left_after_closing(mut self) -> u32 {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task.take().unwrap())
            .await
            .expect("stops within 10 s")
            .unwrap();
        self.broker.close().await;
        let channel = broker().channel().await.unwrap();
        let queue = channel
            .queue_declare(
                self.topology.queue(WorkQueue::Saga).as_str().into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .unwrap();
        self.topology.delete(&channel).await.unwrap();
        queue.message_count()
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task.take().unwrap())
            .await
            .expect("stops within 10 s")
            .unwrap();
        let channel = self.broker.channel().await.unwrap();
        self.topology.delete(&channel).await.unwrap();
    }
}

async fn wait_until(mut condition: impl FnMut() -> bool) {
    for _ in 0..200 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not met within 10 s");
}

#[tokio::test]
async fn handled_messages_are_acked() {
    let seen = Arc::new(AtomicU32::new(0));
    let counter = seen.clone();
    let fixture = Fixture::start(ConsumerSettings::default(), move |_| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    })
    .await;
    for _ in 0..5 {
        fixture.publish(&envelope()).await;
    }
    wait_until(|| seen.load(Ordering::SeqCst) == 5).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fixture.left_after_closing().await, 0, "all five acked");
}

#[tokio::test]
async fn a_failed_message_comes_back_through_the_retry_queue() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let fixture = Fixture::start(ConsumerSettings::default(), move |_| {
        let counter = counter.clone();
        async move {
            match counter.fetch_add(1, Ordering::SeqCst) {
                0 => Err(HandlerError::Retryable("database hiccup".into())),
                _ => Ok(()),
            }
        }
    })
    .await;
    let started = std::time::Instant::now();
    fixture.publish(&envelope()).await;
    wait_until(|| calls.load(Ordering::SeqCst) == 2).await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "retried after the first delay, not at once"
    );
    fixture.stop().await;
}

#[tokio::test]
async fn a_message_that_keeps_failing_is_parked_with_its_error() {
    let settings = ConsumerSettings {
        max_attempts: 2,
        ..ConsumerSettings::default()
    };
    let fixture = Fixture::start(settings, |_| async {
        Err(HandlerError::Retryable("always broken".into()))
    })
    .await;
    let sent = envelope();
    fixture.publish(&sent).await;
    let parked = fixture.dead_letter().await.expect("parked");
    assert_eq!(
        Envelope::from_bytes(&parked.delivery.data).unwrap().id,
        sent.id
    );
    let headers = parked.delivery.properties.headers().clone().unwrap();
    assert_eq!(
        headers.inner().get(ATTEMPTS_HEADER),
        Some(&AMQPValue::LongUInt(2))
    );
    assert!(
        matches!(headers.inner().get(ERROR_HEADER), Some(AMQPValue::LongString(e)) if e.to_string().contains("always broken"))
    );
    fixture.stop().await;
}

#[tokio::test]
async fn a_handler_that_panics_is_retried_then_parked_while_others_flow() {
    let settings = ConsumerSettings {
        max_attempts: 2,
        ..ConsumerSettings::default()
    };
    let handled = Arc::new(AtomicU32::new(0));
    let counter = handled.clone();
    let poison = envelope();
    let poison_id = poison.id;
    let fixture = Fixture::start(settings, move |envelope: Envelope| {
        let counter = counter.clone();
        async move {
            assert_ne!(
                envelope.id, poison_id,
                "a handler bug this message sets off"
            );
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    })
    .await;
    fixture.publish(&poison).await;
    for _ in 0..3 {
        fixture.publish(&envelope()).await;
    }
    let parked = fixture.dead_letter().await.expect("parked");
    assert_eq!(
        Envelope::from_bytes(&parked.delivery.data).unwrap().id,
        poison_id
    );
    let headers = parked.delivery.properties.headers().clone().unwrap();
    assert_eq!(
        headers.inner().get(ATTEMPTS_HEADER),
        Some(&AMQPValue::LongUInt(2))
    );
    assert!(
        matches!(headers.inner().get(ERROR_HEADER), Some(AMQPValue::LongString(e)) if e.to_string().contains("panicked")),
        "{headers:?}"
    );
    wait_until(|| handled.load(Ordering::SeqCst) == 3).await;
    fixture.stop().await;
}

#[tokio::test]
async fn undecodable_messages_are_parked_at_once() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let fixture = Fixture::start(ConsumerSettings::default(), move |_| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    })
    .await;
    fixture.publish_raw(b"this is not an envelope").await;
    let parked = fixture.dead_letter().await.expect("parked");
    assert_eq!(parked.delivery.data, b"this is not an envelope");
    let headers = parked.delivery.properties.headers().clone().unwrap();
    assert_eq!(
        headers.inner().get(ATTEMPTS_HEADER),
        Some(&AMQPValue::LongUInt(1))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the handler never saw it");
    fixture.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_and_acks_the_message_in_flight() {
    let finished = Arc::new(AtomicU32::new(0));
    let started = Arc::new(AtomicU32::new(0));
    let (done, begun) = (finished.clone(), started.clone());
    let fixture = Fixture::start(ConsumerSettings::default(), move |_| {
        let (done, begun) = (done.clone(), begun.clone());
        async move {
            begun.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(700)).await;
            done.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    })
    .await;
    fixture.publish(&envelope()).await;
    wait_until(|| started.load(Ordering::SeqCst) == 1).await;
    let consumer_broker = fixture.broker.clone();
    let topology = fixture.topology.clone();
    fixture.stop_without_cleanup().await;
    assert_eq!(
        finished.load(Ordering::SeqCst),
        1,
        "the handler ran to the end before the consumer stopped"
    );
    // Closing the consumer's connection hands back whatever it had not acked: only an ack keeps
    // the message from coming back.
    consumer_broker.close().await;
    let channel = broker().channel().await.unwrap();
    let left = channel
        .basic_get(
            topology.queue(WorkQueue::Saga).as_str().into(),
            BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap();
    assert!(left.is_none(), "acked, so not redelivered");
    topology.delete(&channel).await.unwrap();
}

impl Fixture {
    async fn stop_without_cleanup(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task.take().unwrap())
            .await
            .expect("stops within 10 s")
            .unwrap();
    }
}

/// A handler that takes batches and records what it saw: the batches' sizes, and how often each
/// message was handled for good. `poison` fails every batch it is in, and fails alone for good;
/// `flaky` fails its first time, inside a batch, and only itself.
#[derive(Clone, Default)]
struct Batching {
    batches: Arc<std::sync::Mutex<Vec<usize>>>,
    handled: Arc<std::sync::Mutex<std::collections::HashMap<Uuid, u32>>>,
    poison: Uuid,
    flaky: Uuid,
    flaky_failed: Arc<std::sync::atomic::AtomicBool>,
}

impl Batching {
    fn handled(&self, id: Uuid) {
        *self.handled.lock().unwrap().entry(id).or_default() += 1;
    }
}

impl Handler for Batching {
    const BATCHES: bool = true;

    fn handle(
        &self,
        envelope: Envelope,
    ) -> impl std::future::Future<Output = Result<(), HandlerError>> + Send {
        let this = self.clone();
        async move {
            if envelope.id == this.poison {
                return Err(HandlerError::Permanent("poison".into()));
            }
            this.handled(envelope.id);
            Ok(())
        }
    }

    fn handle_batch(
        &self,
        envelopes: Vec<Envelope>,
    ) -> impl std::future::Future<Output = Option<Vec<Result<(), HandlerError>>>> + Send {
        let this = self.clone();
        async move {
            this.batches.lock().unwrap().push(envelopes.len());
            if envelopes.iter().any(|e| e.id == this.poison) {
                return None;
            }
            let outcomes = envelopes
                .iter()
                .map(|e| {
                    if e.id == this.flaky && !this.flaky_failed.swap(true, Ordering::SeqCst) {
                        return Err(HandlerError::Retryable("flaky".into()));
                    }
                    this.handled(e.id);
                    Ok(())
                })
                .collect();
            Some(outcomes)
        }
    }
}

#[tokio::test]
async fn a_backlog_goes_in_batches_and_one_bad_message_never_fails_its_batch_mates() {
    let queued: Vec<Envelope> = (0..40).map(|_| envelope()).collect();
    let handler = Batching {
        poison: queued[3].id,
        flaky: queued[30].id,
        ..Batching::default()
    };
    let settings = ConsumerSettings {
        concurrency: 1,
        prefetch: 50,
        batch: 16,
        ..ConsumerSettings::default()
    };
    let fixture = Fixture::start_after(settings, handler.clone(), &queued).await;
    // Every good message handled, the flaky one after its retry (1 s later).
    let expected = queued.len() - 1;
    let handled = handler.handled.clone();
    wait_until(move || handled.lock().unwrap().len() == expected).await;
    let parked = fixture.dead_letter().await.expect("the poison is parked");
    let parked = Envelope::from_bytes(&parked.data).unwrap();
    assert_eq!(parked.id, queued[3].id);

    let batches = handler.batches.lock().unwrap().clone();
    assert!(
        batches.iter().any(|&n| n > 1),
        "the backlog was taken in batches: {batches:?}"
    );
    assert!(
        batches.iter().all(|&n| n <= 16),
        "no batch above the setting: {batches:?}"
    );
    let handled = handler.handled.lock().unwrap().clone();
    for envelope in &queued[..] {
        if envelope.id == queued[3].id {
            assert!(!handled.contains_key(&envelope.id));
        } else {
            assert_eq!(
                handled.get(&envelope.id),
                Some(&1),
                "handled once: {}",
                envelope.id
            );
        }
    }
    assert!(handler.flaky_failed.load(Ordering::SeqCst));
    assert_eq!(fixture.left_after_closing().await, 0, "every message acked");
}
