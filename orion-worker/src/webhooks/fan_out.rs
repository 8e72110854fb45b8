//! The `orion.webhooks` consumer: for each event an endpoint may subscribe to, one delivery per
//! enabled endpoint that wants it, with the body written once (the signature covers it, and
//! every attempt sends the same bytes). The inbox and the one-delivery-per-endpoint-and-event
//! key make a redelivered message harmless.

use std::future::Future;
use std::sync::Arc;

use orion_domain::DomainEvent;
use orion_domain::public::{LowStockAlert, OrderResponse};
use orion_messaging::{Envelope, Handler, HandlerError};
use orion_persistence::webhooks::{self, NewDeliveries};
use orion_persistence::{Pool, inbox, inventory, orders};
use serde_json::Value;
use sqlx::PgConnection;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::{Error, Result};

/// The inbox's name for this consumer.
const CONSUMER: &str = "webhooks";

/// Handles the `orion.webhooks` queue.
#[derive(Debug, Clone)]
pub struct WebhookFanOut {
    pool: Pool,
    /// Wakes the delivery loop when new deliveries are due.
    queued: Arc<Notify>,
}

impl WebhookFanOut {
    pub fn new(pool: Pool, queued: Arc<Notify>) -> Self {
        Self { pool, queued }
    }

    async fn fan_out(&self, envelope: &Envelope) -> Result<()> {
        if !orion_webhooks::EVENT_TYPES.contains(&envelope.kind.as_str()) {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        if inbox::contains(&mut tx, CONSUMER, envelope.id).await? {
            return Ok(());
        }
        let endpoints = webhooks::subscribers(&mut tx, &envelope.kind).await?;
        let mut queued = 0;
        if !endpoints.is_empty() {
            let event = DomainEvent::from_parts(&envelope.kind, envelope.data.clone())
                .map_err(|e| Error::Undecodable(e.to_string()))?;
            if let Some(data) = public_data(&mut tx, &event).await? {
                let payload = orion_webhooks::body(&envelope.kind, envelope.time, &data);
                let targets: Vec<(Uuid, Uuid)> = endpoints
                    .into_iter()
                    .map(|endpoint| (Uuid::now_v7(), endpoint))
                    .collect();
                queued = webhooks::insert_deliveries(
                    &mut tx,
                    &NewDeliveries {
                        targets: &targets,
                        event_id: envelope.id,
                        event_type: &envelope.kind,
                        payload: &payload,
                    },
                    crate::now(),
                )
                .await?;
            }
        }
        inbox::record_message(&mut tx, CONSUMER, envelope.id).await?;
        tx.commit().await?;
        if queued > 0 {
            self.queued.notify_one();
        }
        Ok(())
    }
}

/// What a webhook of `event` carries as `data`: the order as `GET /api/orders/{id}` shows it, as
/// of the event, or the low-stock alert. `None` for an order that no longer exists.
async fn public_data(conn: &mut PgConnection, event: &DomainEvent) -> Result<Option<Value>> {
    let (order_id, status, reason, at) = match event {
        DomainEvent::InventoryLowStock(low) => {
            let name = inventory::find_item(&mut *conn, &low.sku)
                .await?
                .map_or_else(|| low.sku.to_string(), |item| item.value.name().to_owned());
            return to_value(&LowStockAlert {
                sku: low.sku.to_string(),
                name,
                available: low.available,
                low_stock_threshold: low.low_stock_threshold,
            });
        }
        DomainEvent::OrderPlaced(placed) => (placed.order_id, "pending", None, placed.placed_at),
        DomainEvent::OrderConfirmed(change)
        | DomainEvent::OrderFailed(change)
        | DomainEvent::OrderCancelled(change)
        | DomainEvent::OrderShipped(change)
        | DomainEvent::OrderDelivered(change) => (
            change.order_id,
            change.status.as_str(),
            change.failure_reason,
            change.at,
        ),
        _ => return Ok(None),
    };
    let Some(order) = orders::find_order(&mut *conn, order_id).await? else {
        tracing::warn!(order.id = %order_id, "an order event's order is gone; no webhook");
        return Ok(None);
    };
    to_value(&OrderResponse::from(&order).as_of(status, reason, at))
}

fn to_value(data: &impl serde::Serialize) -> Result<Option<Value>> {
    serde_json::to_value(data)
        .map(Some)
        .map_err(|e| Error::Undecodable(e.to_string()))
}

impl Handler for WebhookFanOut {
    fn handle(&self, envelope: Envelope) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let this = self.clone();
        async move {
            this.fan_out(&envelope)
                .await
                .map_err(Error::into_handler_error)
        }
    }
}

#[cfg(test)]
mod tests {
    use orion_messaging::WorkQueue;

    /// The queue is bound to exactly the events an endpoint may subscribe to: one missing would
    /// never reach its subscribers, one extra would be fanned out to nobody.
    #[test]
    fn the_queue_is_bound_to_the_subscribable_events() {
        assert_eq!(
            WorkQueue::Webhooks.bindings(),
            orion_webhooks::EVENT_TYPES.as_slice()
        );
    }
}
