//! The hub's backplane: this replica's own exclusive, auto-delete queue `orion.notify.<instance>`
//! on the events exchange, so that its clients hear every event whichever process produced it.
//!
//! The queue lives as long as the replica's broker connection. When that connection is lost the
//! queue and whatever it held are gone; once a new one is subscribed the hub closes its
//! connections with an invitation to reconnect, so clients re-read what they may have missed.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use orion_domain::DomainEvent;
use orion_messaging::{Broker, Envelope, Topology};
use tokio::sync::watch;

use super::Hub;
use super::notifications::{self, BINDINGS};

/// Unacknowledged deliveries the broker may push ahead of the hub.
const PREFETCH: u16 = 500;

/// The backplane consumer, running until stopped.
#[derive(Debug)]
pub(crate) struct Backplane {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Backplane {
    pub(crate) fn spawn(hub: Hub, broker: Arc<Broker>, topology: Topology, instance: &str) -> Self {
        let (stop, stopped) = watch::channel(false);
        let queue = topology.notify_queue(instance);
        let task = tokio::spawn(run(hub, broker, topology, queue, stopped));
        Self { stop, task }
    }

    /// Stops consuming; a broker that does not answer is given 5 s.
    pub(crate) async fn stop(mut self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .is_err()
        {
            tracing::warn!("hub backplane did not stop within 5 s; abandoning it");
            self.task.abort();
        }
    }
}

async fn run(
    hub: Hub,
    broker: Arc<Broker>,
    topology: Topology,
    queue: String,
    mut stopped: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(250);
    // Until the first subscription succeeds, clients may connect and miss events too.
    let mut tried_before = false;
    loop {
        let subscribed = tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => return,
            subscribed = subscribe(&broker, &topology, &queue) => subscribed,
        };
        match subscribed {
            Ok((channel, deliveries)) => {
                if tried_before {
                    tracing::info!(%queue, "hub backplane back; asking clients to re-read");
                    hub.resync();
                }
                tried_before = true;
                backoff = Duration::from_millis(250);
                hub.set_listening(true);
                tracing::info!(%queue, "hub backplane subscribed");
                let stop = consume(&hub, deliveries, &mut stopped).await;
                hub.set_listening(false);
                if stop {
                    let _ = channel.close(200, "replica stopping".into()).await;
                    return;
                }
                tracing::warn!(%queue, "hub backplane lost; resubscribing");
            }
            Err(error) => {
                tried_before = true;
                tracing::warn!(%queue, %error, "hub backplane cannot subscribe; retrying");
            }
        }
        tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn subscribe(
    broker: &Broker,
    topology: &Topology,
    queue: &str,
) -> orion_messaging::Result<(lapin::Channel, lapin::Consumer)> {
    let channel = broker.channel().await?;
    topology.declare(&channel).await?;
    topology.declare_listener(&channel, queue, BINDINGS).await?;
    channel
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await?;
    let deliveries = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((channel, deliveries))
}

/// Feeds deliveries to the hub until the stream ends (false) or the replica stops (true).
async fn consume(
    hub: &Hub,
    mut deliveries: lapin::Consumer,
    stopped: &mut watch::Receiver<bool>,
) -> bool {
    loop {
        let next = tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => return true,
            next = deliveries.next() => next,
        };
        let delivery = match next {
            Some(Ok(delivery)) => delivery,
            Some(Err(error)) => {
                tracing::warn!(%error, "hub backplane delivery failed");
                return false;
            }
            None => return false,
        };
        match Envelope::from_bytes(&delivery.data)
            .map_err(|e| e.to_string())
            .and_then(|envelope| {
                DomainEvent::from_parts(&envelope.kind, envelope.data).map_err(|e| e.to_string())
            }) {
            Ok(event) => {
                metrics::counter!("hub_backplane_events_total").increment(1);
                for notification in notifications::for_event(&event) {
                    hub.dispatch(notification);
                }
            }
            // Nothing a client could be told; the worker's queues park such messages.
            Err(error) => tracing::warn!(%error, "hub backplane skipped an undecodable event"),
        }
        // Telling clients is best effort: the message is settled once dispatched.
        if delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .is_err()
        {
            return false;
        }
        // The broker hands over deliveries in bursts of up to the prefetch, and neither the
        // stream nor the ack gives way to the scheduler: without this, a burst could fill the
        // queues of clients that read perfectly well before their writers ever ran.
        tokio::task::yield_now().await;
    }
}
