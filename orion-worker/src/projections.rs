//! The read models' upkeep: the `orion.projections` consumer, and a periodic, set-based safety net.
//!
//! Every command writes `order_views` and its change to the sales figures in the same transaction
//! as the order, so a reader sees its write at once and a view cannot fall behind through Orion's
//! own writes. What can put one behind is outside that path: a view restored from an older backup,
//! edited by hand, written by an older version. Checking the view after every event cost a
//! transaction per event for a fault that almost never happens; instead the worker walks the
//! orders a page at a time (by id, wrapping around) and re-projects the views it finds missing or
//! behind. It is idempotent by construction: a view only ever moves to a newer version.
//!
//! The same timer folds the committed changes of the sales figures into their totals.
//!
//! The `orion.projections` queue stays bound to every event, which keeps every event routable for
//! the `mandatory` publishes; its consumer checks each message is well-formed and acknowledges it.

use std::future::Future;
use std::time::Duration;

use orion_domain::OrderId;
use orion_messaging::{Envelope, Handler, HandlerError};
use orion_persistence::{Pool, orders, read_models};
use uuid::Uuid;

use crate::{Error, Result};

/// How often the sales figures are folded and a page of views is checked.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Orders whose views one round checks: a full pass over a million orders takes about a quarter
/// of an hour, at the cost of one indexed range read a second.
const CHECK_PAGE: i64 = 1_000;

/// Handles the `orion.projections` queue.
#[derive(Debug, Clone)]
pub struct ProjectionsHandler;

impl ProjectionsHandler {
    pub fn handle_one(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        order_of(envelope).map(drop)
    }
}

impl Handler for ProjectionsHandler {
    const BATCHES: bool = true;

    fn handle(&self, envelope: Envelope) -> impl Future<Output = Result<(), HandlerError>> + Send {
        std::future::ready(self.handle_one(&envelope))
    }

    fn handle_batch(
        &self,
        envelopes: Vec<Envelope>,
    ) -> impl Future<Output = Option<Vec<Result<(), HandlerError>>>> + Send {
        std::future::ready(Some(envelopes.iter().map(|e| self.handle_one(e)).collect()))
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

/// Keeps the read models up on a timer until `shutdown` completes: folds the sales figures'
/// changes into their totals, and checks the next page of views.
pub async fn keep_read_models(pool: Pool, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut ticker = tokio::time::interval(UPKEEP_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cursor = Uuid::nil();
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
            tracing::warn!(%error, "sales figures not folded; trying again shortly");
        }
        match check_page(&pool, cursor).await {
            Ok(next) => cursor = next.unwrap_or_else(Uuid::nil),
            Err(error) => tracing::warn!(%error, "read models not checked; trying again shortly"),
        }
    }
}

/// Checks one page of views after `after`, re-projects those behind, and returns where the next
/// page starts (`None`: start over).
async fn check_page(pool: &Pool, after: Uuid) -> Result<Option<Uuid>> {
    let (behind, next) = {
        let mut conn = pool.acquire().await?;
        read_models::views_behind_after(&mut conn, after, CHECK_PAGE).await?
    };
    for order_id in behind {
        catch_up(pool, OrderId::from_uuid(order_id)).await?;
    }
    Ok(next)
}

/// Re-projects an order's view if it is (still) missing or behind, in one transaction.
async fn catch_up(pool: &Pool, order_id: OrderId) -> Result<()> {
    let mut tx = pool.begin().await?;
    let Some(order) = orders::lock_order(&mut tx, order_id).await? else {
        return Err(Error::UnknownOrder(order_id));
    };
    let view = read_models::order_view_version(&mut tx, order_id.as_uuid()).await?;
    if view.as_ref().is_some_and(|v| v.version >= order.version()) {
        return Ok(());
    }
    // The view is missing or behind: rebuild it, moving the order's count in the stats from the
    // status the view showed (if any) to the current one.
    let previous = view.and_then(|v| {
        orion_domain::OrderStatus::from_parts(&v.status, v.failure_reason.as_deref())
    });
    read_models::project_order(&mut tx, &order, previous, order.version()).await?;
    tx.commit().await?;
    metrics::counter!("projection_repairs_total").increment(1);
    tracing::warn!(order.id = %order_id, "order view was behind its order; re-projected");
    Ok(())
}
