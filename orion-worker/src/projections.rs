//! The `orion.projections` consumer: the safety net of the read models; and the fold of the sales
//! figures' changes into their totals.
//!
//! Every command writes `order_views` and its change to the sales figures in its own transaction,
//! so a reader sees its write at once. This consumer hears every order event afterwards and checks that the order's
//! view has caught up with the write model; a view found behind (restored from a backup, edited
//! by hand, written by an older version) is re-projected. It is idempotent by construction: the
//! view only ever moves to a newer version.

use std::future::Future;

use orion_domain::OrderId;
use orion_messaging::{Envelope, Handler, HandlerError};
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

    pub async fn handle_one(&self, envelope: Envelope) -> Result<(), HandlerError> {
        let Some(id) = order_of(&envelope)? else {
            return Ok(());
        };
        self.catch_up(OrderId::from_uuid(id))
            .await
            .map_err(Error::into_handler_error)
    }

    /// A batch: one statement finds the views that have not caught up (almost always none);
    /// only those are looked at one by one.
    pub async fn handle_many(
        &self,
        envelopes: Vec<Envelope>,
    ) -> Option<Vec<Result<(), HandlerError>>> {
        let mut outcomes = Vec::with_capacity(envelopes.len());
        let mut orders = Vec::new();
        for envelope in &envelopes {
            match order_of(envelope) {
                Ok(Some(id)) => {
                    orders.push(id);
                    outcomes.push(Ok(()));
                }
                Ok(None) => outcomes.push(Ok(())),
                Err(error) => outcomes.push(Err(error)),
            }
        }
        if orders.is_empty() {
            return Some(outcomes);
        }
        let behind = async {
            let mut conn = self.pool.acquire().await?;
            read_models::views_not_caught_up(&mut conn, &orders).await
        }
        .await
        .ok()?;
        for order_id in behind {
            let caught_up = self
                .catch_up(OrderId::from_uuid(order_id))
                .await
                .map_err(Error::into_handler_error);
            if let Err(error) = caught_up {
                // Every message about this order fails alike.
                let text = error.to_string();
                for (envelope, outcome) in envelopes.iter().zip(outcomes.iter_mut()) {
                    if order_of(envelope).ok().flatten() == Some(order_id) {
                        *outcome = Err(HandlerError::Retryable(text.clone()));
                    }
                }
            }
        }
        Some(outcomes)
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

/// How often the committed changes to the sales figures are folded into their totals.
const FOLD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Folds the sales figures' changes into their totals on a timer until `shutdown` completes:
/// readers add the changes not folded yet, so this only keeps that table short.
pub async fn fold_sales_stats(pool: Pool, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut ticker = tokio::time::interval(FOLD_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = ticker.tick() => {}
        }
        let folded = async {
            let mut conn = pool.acquire().await?;
            read_models::fold_sales_stats(&mut conn).await
        }
        .await;
        if let Err(error) = folded {
            tracing::debug!(%error, "sales figures not folded; next time");
        }
    }
}

impl Handler for ProjectionsHandler {
    const BATCHES: bool = true;

    fn handle(&self, envelope: Envelope) -> impl Future<Output = Result<(), HandlerError>> + Send {
        self.handle_one(envelope)
    }

    fn handle_batch(
        &self,
        envelopes: Vec<Envelope>,
    ) -> impl Future<Output = Option<Vec<Result<(), HandlerError>>>> + Send {
        self.handle_many(envelopes)
    }
}

/// The order an event is about, `None` for an event that is not an order's.
fn order_of(envelope: &Envelope) -> Result<Option<Uuid>, HandlerError> {
    if !envelope.kind.starts_with("order.") {
        return Ok(None);
    }
    envelope.subject.parse::<Uuid>().map(Some).map_err(|_| {
        HandlerError::Permanent(format!(
            "{} event without an order id subject: {:?}",
            envelope.kind, envelope.subject
        ))
    })
}
