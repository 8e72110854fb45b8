//! The `orion.projections` consumer: the safety net of the read models.
//!
//! Every command writes `order_views` and `sales_stats` in its own transaction, so a reader sees
//! its write at once. This consumer hears every order event afterwards and checks that the order's
//! view has caught up with the write model; a view found behind (restored from a backup, edited
//! by hand, written by an older version) is re-projected. It is idempotent by construction: the
//! view only ever moves to a newer version.

use orion_domain::OrderId;
use orion_messaging::{Envelope, HandlerError};
use orion_persistence::{Pool, orders, read_models};
use uuid::Uuid;

use crate::{Error, Result};

/// Handles the `orion.projections` queue.
#[derive(Debug, Clone)]
pub struct ProjectionsHandler {
    pool: Pool,
}

impl ProjectionsHandler {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    pub async fn handle(&self, envelope: Envelope) -> Result<(), HandlerError> {
        if !envelope.kind.starts_with("order.") {
            return Ok(());
        }
        let Ok(id) = envelope.subject.parse::<Uuid>() else {
            return Err(HandlerError::Permanent(format!(
                "{} event without an order id subject: {:?}",
                envelope.kind, envelope.subject
            )));
        };
        self.catch_up(OrderId::from_uuid(id))
            .await
            .map_err(Error::into_handler_error)
    }

    async fn catch_up(&self, order_id: OrderId) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let Some(order) = orders::find_order(&mut tx, order_id).await? else {
            return Err(Error::UnknownOrder(order_id));
        };
        let view = read_models::order_view_version(&mut tx, order_id.as_uuid()).await?;
        if view.as_ref().is_some_and(|v| v.version >= order.version()) {
            return Ok(());
        }
        // The view is missing or behind: rebuild it, moving the order's count in the stats
        // from the status the view showed (if any) to the current one.
        let previous = view.and_then(|v| {
            orion_domain::OrderStatus::from_parts(&v.status, v.failure_reason.as_deref())
        });
        read_models::project_order(&mut tx, &order, previous, order.version()).await?;
        tx.commit().await?;
        metrics::counter!("projection_repairs_total").increment(1);
        tracing::warn!(order.id = %order_id, "order view was behind its order; re-projected");
        Ok(())
    }
}
