//! The imperative shell around the pure `OrderSaga`: for each trigger it locks the saga and the
//! order, feeds the saga what happened, carries out the commands it returns, and saves everything
//! (saga, order, stock, payment, events, read models, inbox) in one transaction.
//!
//! Triggers are the API's order events (placed, cancelled, shipped, delivered), the payment
//! provider's answers, and the deadline sweeper. Whatever the trigger, the shell first tells the
//! saga about decisions it missed (the order was cancelled or shipped meanwhile), so a message
//! arriving late or twice is harmless.
//!
//! The payment step is its own step, run after a commit whenever the saga's state says a payment
//! is owed (not when one transaction happened to ask for it): the provider is called outside any
//! transaction, since holding item locks while a provider thinks would serialize every order for
//! the same SKU. Every call carries the order's idempotency key and first asks the provider what
//! it already decided for that key, so a worker that died, timed out or lost the database between
//! the provider's answer and its record simply asks again and records the same answer. An
//! overdue step is resumed by the sweeper, never failed: only a provider that leaves
//! `payment_attempts` calls unanswered fails the order with `timeout`.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use orion_domain::events::{
    AdjustmentReason, InventoryAdjusted, LowStock, PaymentChanged, PaymentDeclined,
    ReservationFailed, StockMovement,
};
use orion_domain::{
    DomainEvent, Order, OrderId, OrderSaga, OrderStatus, PaymentDecision, PaymentProvider,
    PaymentRequest, SagaCommand, SagaDeadlines, SagaEvent, SagaStep, StockLine, idempotency_key,
};
use orion_messaging::{Envelope, Handler, HandlerError};
use orion_persistence::events::{self, EventMetadata};
use orion_persistence::inventory::{self, StockLevel};
use orion_persistence::payments::{self, Payment, PaymentStatus};
use orion_persistence::{PgConnection, Pool, inbox, orders, outbox, sagas};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Error, Result, now};
use tracing::Instrument;

/// The inbox name of the saga consumer.
pub const CONSUMER: &str = "saga";

/// Times one trigger is re-run when it lost a race (a version conflict or a deadlock).
const ATTEMPTS: u32 = 5;

/// How long an overdue saga that could not be resumed waits before the sweeper tries again.
const SWEEP_RETRY: time::Duration = time::Duration::seconds(30);

/// Overdue sagas resumed per sweep round at most.
const SWEEP_BATCH: usize = 100;

/// Calls to the provider within one payment attempt before it counts as unanswered.
const PROVIDER_TRIES: u32 = 3;

/// Tunables of the saga.
#[derive(Debug, Clone, Copy)]
pub struct SagaSettings {
    pub deadlines: SagaDeadlines,
    /// Longest one provider call may take before it counts as unanswered.
    pub payment_call_timeout: Duration,
    /// How often the sweeper looks for overdue steps.
    pub sweep_interval: Duration,
}

impl SagaSettings {
    /// Settings from the worker's configuration. The payment step is looked at again only after
    /// a whole attempt (every call timing out, with the pauses between) could have ended, so the
    /// sweeper never asks the provider while the previous attempt is still waiting for it.
    pub fn new(
        reserve_step: Duration,
        payment_call_timeout: Duration,
        payment_attempts: u32,
        sweep_interval: Duration,
    ) -> Self {
        let attempt = payment_call_timeout * PROVIDER_TRIES + provider_pauses() + SWEEP_MARGIN;
        let duration = |d: Duration| time::Duration::try_from(d).unwrap_or(time::Duration::MAX);
        Self {
            deadlines: SagaDeadlines {
                reserve_stock: duration(reserve_step),
                authorize_payment: duration(attempt),
                payment_attempts,
            },
            payment_call_timeout,
            sweep_interval,
        }
    }
}

/// Slack between the longest possible payment attempt and the sweeper's next look.
const SWEEP_MARGIN: Duration = Duration::from_secs(1);

/// The pause after the provider's `attempt`-th unanswered call.
fn provider_pause(attempt: u32) -> Duration {
    Duration::from_millis(200 * u64::from(attempt))
}

/// Every pause of one payment attempt, added up.
fn provider_pauses() -> Duration {
    (1..=PROVIDER_TRIES).map(provider_pause).sum()
}

/// What wakes the saga of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// An order event from the API: only missed decisions (or the start) to apply.
    OrderEvent,
    /// The payment provider answered (or did not).
    Payment(SagaEvent),
    /// The sweeper found the current step overdue.
    Deadline,
}

/// Drives the sagas of all orders.
#[derive(Debug)]
pub struct SagaShell<P> {
    pool: Pool,
    provider: Arc<P>,
    settings: SagaSettings,
}

// Not derived: a derive would ask the provider to be `Clone`, and it is shared, not copied.
impl<P> Clone for SagaShell<P> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            provider: self.provider.clone(),
            settings: self.settings,
        }
    }
}

impl<P: PaymentProvider + 'static> SagaShell<P> {
    pub fn new(pool: Pool, provider: Arc<P>, settings: SagaSettings) -> Self {
        Self {
            pool,
            provider,
            settings,
        }
    }

    /// Handles one message of the `orion.saga` queue.
    pub async fn handle_one(&self, envelope: Envelope) -> Result<(), HandlerError> {
        let Some(message) = SagaMessage::read(&envelope)? else {
            return Ok(());
        };
        let payment_due = self
            .handle_message(message.order_id, message.id, &message.metadata)
            .await
            .map_err(Error::into_handler_error)?;
        if let Some(request) = payment_due {
            self.pay(request, &message.metadata)
                .await
                .map_err(Error::into_handler_error)?;
        }
        Ok(())
    }

    /// Handles messages of the `orion.saga` queue together, in two transactions whatever their
    /// number: one advances every saga (reservations included) up to its payment step, then the
    /// provider is asked for every payment owed, at once, and one more records every answer
    /// (confirmations included). `None` when either transaction fails: the consumer then hands
    /// each message to [`Self::handle_one`], which finds in the inbox what the first one did.
    pub async fn handle_many(
        &self,
        envelopes: Vec<Envelope>,
    ) -> Option<Vec<Result<(), HandlerError>>> {
        let mut outcomes = Vec::with_capacity(envelopes.len());
        let mut messages = Vec::new();
        for envelope in &envelopes {
            match SagaMessage::read(envelope) {
                Ok(Some(message)) => {
                    messages.push(message);
                    outcomes.push(Ok(()));
                }
                Ok(None) => outcomes.push(Ok(())),
                Err(error) => outcomes.push(Err(error)),
            }
        }
        if messages.is_empty() {
            return Some(outcomes);
        }
        // A message delivered twice into one batch is handled once.
        messages.sort_by_key(|m| (m.order_id.as_uuid(), m.id));
        messages.dedup_by_key(|m| m.id);
        let messages = Arc::new(messages);
        let advanced = self.with_retries("a batch of saga messages", |shell, tx| {
            let messages = messages.clone();
            Box::pin(async move {
                // The inbox rows first, then the row locks: the order the single path takes them.
                let ids: Vec<Uuid> = messages.iter().map(|m| m.id).collect();
                let fresh = inbox::record_messages(tx, CONSUMER, &ids).await?;
                let order_ids: Vec<OrderId> = messages.iter().map(|m| m.order_id).collect();
                lock_batch(tx, &order_ids, |_, _| true).await?;
                let mut owed = Vec::new();
                for message in messages.iter() {
                    let saga = if fresh.contains(&message.id) {
                        Some(
                            shell
                                .advance(
                                    tx,
                                    message.order_id,
                                    Trigger::OrderEvent,
                                    &message.metadata,
                                    now(),
                                )
                                .await?,
                        )
                    } else {
                        sagas::find_saga(tx, message.order_id).await?
                    };
                    if let Some(saga) = saga
                        && let Some(request) = payment_due(tx, &saga).await?
                        && !owed
                            .iter()
                            .any(|(r, _): &(PaymentRequest, _)| r.order_id == request.order_id)
                    {
                        owed.push((request, message.metadata.clone()));
                    }
                }
                Ok(owed)
            })
        });
        let owed = match advanced.await {
            Ok(owed) => owed,
            Err(error) => {
                tracing::debug!(%error, "saga batch failed; one by one");
                return None;
            }
        };
        if let Err(error) = self.pay_all(owed).await {
            tracing::debug!(%error, "payment answers of a batch not recorded; one by one");
            return None;
        }
        Some(outcomes)
    }

    /// Asks the provider for every payment owed, side by side, then records every answer and
    /// carries each saga on, in one transaction.
    async fn pay_all(&self, owed: Vec<(PaymentRequest, EventMetadata)>) -> Result<()> {
        if owed.is_empty() {
            return Ok(());
        }
        let answers = futures_util::future::join_all(
            owed.iter()
                .map(|(request, metadata)| self.answer(request, metadata)),
        )
        .await;
        let owed = Arc::new(owed);
        let answers = Arc::new(answers);
        let recorded = self.with_retries("a batch of payment answers", |shell, tx| {
            let owed = owed.clone();
            let answers = answers.clone();
            Box::pin(async move {
                // An answer other than an authorization, or any answer for an order
                // cancelled meanwhile, gives stock back: only those orders' items are locked,
                // so that confirmations do not wait for reservations.
                let order_ids: Vec<OrderId> = owed.iter().map(|(r, _)| r.order_id).collect();
                let unauthorized: Vec<OrderId> = owed
                    .iter()
                    .zip(answers.iter())
                    .filter(|(_, (reply, _))| *reply != SagaEvent::PaymentAuthorized)
                    .map(|((request, _), _)| request.order_id)
                    .collect();
                lock_batch(tx, &order_ids, |order_id, cancelled| {
                    cancelled || unauthorized.contains(&order_id)
                })
                .await?;
                for ((request, metadata), (reply, payment)) in owed.iter().zip(answers.iter()) {
                    shell
                        .record_answer(tx, request.order_id, *reply, payment.as_ref(), metadata)
                        .await?;
                }
                Ok(())
            })
        });
        recorded.await
    }

    /// The payment step: asks the provider for the order's authorization and feeds its answer to
    /// the saga, or tells the saga the provider did not answer.
    async fn pay(&self, request: PaymentRequest, metadata: &EventMetadata) -> Result<()> {
        let (reply, payment) = self.answer(&request, metadata).await;
        self.with_retries("a payment answer", |shell, tx| {
            let payment = payment.clone();
            let metadata = metadata.clone();
            Box::pin(async move {
                shell
                    .record_answer(tx, request.order_id, reply, payment.as_ref(), &metadata)
                    .await
            })
        })
        .await
    }

    /// Records the provider's answer (if it gave one) and feeds it to the saga, in the caller's
    /// transaction.
    async fn record_answer(
        &self,
        tx: &mut PgConnection,
        order_id: OrderId,
        reply: SagaEvent,
        payment: Option<&Payment>,
        metadata: &EventMetadata,
    ) -> Result<()> {
        let now = now();
        // The saga's lock first, as on every path: the payment row's foreign key locks the
        // order, and the sweeper holds a saga while it waits for its order.
        sagas::lock_saga(tx, order_id).await?;
        if let Some(payment) = payment {
            // A second copy of the answer (another delivery asked too) records nothing new; the
            // saga still hears it and ignores it, or voids a late authorization.
            if payments::record_payment(tx, payment).await? {
                events::record_event(tx, &payment_event(payment), metadata, now).await?;
            }
        }
        self.advance(tx, order_id, Trigger::Payment(reply), metadata, now)
            .await
            .map(|_| ())
    }

    /// The provider's answer to a request as the saga hears it, and the payment to record.
    async fn answer(
        &self,
        request: &PaymentRequest,
        metadata: &EventMetadata,
    ) -> (SagaEvent, Option<Payment>) {
        let span = step_span(
            SagaCommand::AuthorizePayment.as_str(),
            request.order_id,
            metadata,
        );
        let decision = self.ask_provider(request).instrument(span).await;
        let reply = match &decision {
            Some(PaymentDecision::Authorized { .. }) => SagaEvent::PaymentAuthorized,
            Some(PaymentDecision::Declined { .. }) => SagaEvent::PaymentDeclined,
            None => SagaEvent::PaymentUnanswered,
        };
        let payment = decision.map(|decision| Payment {
            id: Uuid::now_v7(),
            order_id: request.order_id,
            provider: self.provider.name().to_owned(),
            status: match &decision {
                PaymentDecision::Authorized { .. } => PaymentStatus::Authorized,
                PaymentDecision::Declined { .. } => PaymentStatus::Declined,
            },
            amount: request.amount,
            authorization_id: match &decision {
                PaymentDecision::Authorized { authorization_id } => Some(authorization_id.clone()),
                PaymentDecision::Declined { .. } => None,
            },
            decline_reason: match decision {
                PaymentDecision::Declined { reason } => Some(reason),
                PaymentDecision::Authorized { .. } => None,
            },
        });
        (reply, payment)
    }

    /// The provider's answer for the request's key: what it already decided if it ever got the
    /// request, else a fresh authorization. `None` when it does not answer in time.
    async fn ask_provider(&self, request: &PaymentRequest) -> Option<PaymentDecision> {
        let limit = self.settings.payment_call_timeout;
        for attempt in 1..=PROVIDER_TRIES {
            let answer = tokio::time::timeout(limit, async {
                match self.provider.lookup(&request.idempotency_key).await? {
                    Some(decision) => Ok(decision),
                    None => self.provider.authorize(request).await,
                }
            })
            .await;
            match answer {
                Ok(Ok(decision)) => return Some(decision),
                Ok(Err(error)) => {
                    tracing::warn!(order.id = %request.order_id, attempt, %error, "payment provider unavailable");
                }
                Err(_) => {
                    tracing::warn!(order.id = %request.order_id, attempt, timeout_ms = limit.as_millis(), "payment provider did not answer in time");
                }
            }
            tokio::time::sleep(provider_pause(attempt)).await;
        }
        None
    }

    /// Resumes every overdue step once; returns how many sagas it looked at. Up to
    /// `SWEEP_BATCH` at a time as one batch, like messages (under a backlog, orders waiting in the
    /// queue pass their first deadline by the thousand); one by one if the batch fails, so that a
    /// saga with trouble of its own is postponed without holding up the others.
    pub async fn sweep_once(&self) -> Result<usize> {
        let batch = self.with_retries("a batch of overdue sagas", |shell, tx| {
            Box::pin(async move {
                let limit = i64::try_from(SWEEP_BATCH).unwrap_or(i64::MAX);
                let overdue = sagas::lock_overdue(tx, now(), limit).await?;
                lock_batch(tx, &overdue, |_, _| true).await?;
                let mut owed = Vec::new();
                for order_id in &overdue {
                    let metadata = sweep_metadata(*order_id);
                    let saga = shell
                        .advance(tx, *order_id, Trigger::Deadline, &metadata, now())
                        .await?;
                    if let Some(request) = payment_due(tx, &saga).await? {
                        owed.push((request, metadata));
                    }
                }
                Ok((overdue.len(), owed))
            })
        });
        match batch.await {
            Ok((swept, owed)) => {
                // An answer not recorded now is owed still: the saga's deadline brings it back.
                if let Err(error) = self.pay_all(owed).await {
                    if error.is_unavailable() {
                        return Err(error);
                    }
                    tracing::warn!(%error, "payments of overdue sagas not recorded; next sweep");
                }
                Ok(swept)
            }
            Err(error) if error.is_unavailable() => Err(error),
            Err(error) => {
                tracing::debug!(%error, "overdue sagas not resumed as a batch; one by one");
                self.sweep_one_by_one().await
            }
        }
    }

    /// Resumes overdue steps one saga at a time, postponing those that fail for a reason of their
    /// own.
    async fn sweep_one_by_one(&self) -> Result<usize> {
        let mut swept = 0;
        while swept < SWEEP_BATCH {
            let mut tx = self.pool.begin().await?;
            let overdue = sagas::lock_overdue(&mut tx, now(), 1).await?;
            let Some(order_id) = overdue.first().copied() else {
                break;
            };
            let metadata = sweep_metadata(order_id);
            let advanced = async {
                let saga = self
                    .advance(&mut tx, order_id, Trigger::Deadline, &metadata, now())
                    .await?;
                payment_due(&mut tx, &saga).await
            }
            .await;
            // Committed or rolled back here, so the saga's lock is gone before any postponing.
            let resumed = match advanced {
                Ok(payment_due) => outbox::commit(tx)
                    .await
                    .map(|()| payment_due)
                    .map_err(Error::from),
                Err(error) => {
                    let _ = tx.rollback().await;
                    Err(error)
                }
            };
            swept += 1;
            let outcome = match resumed {
                Ok(Some(request)) => self.pay(request, &metadata).await,
                Ok(None) => Ok(()),
                Err(error) => Err(error),
            };
            if let Err(error) = outcome {
                if error.is_unavailable() {
                    return Err(error);
                }
                // This saga's trouble is its own: look at it again later, and get on with the
                // others, which it must not hold up (it would be first in line every round).
                tracing::warn!(order.id = %order_id, %error, "could not resume an overdue saga; postponed");
                let mut conn = self.pool.acquire().await?;
                sagas::postpone(&mut conn, order_id, SWEEP_RETRY).await?;
            }
        }
        Ok(swept)
    }

    /// Sweeps on a timer until `shutdown` completes.
    pub async fn run_sweeper(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut ticker = tokio::time::interval(self.settings.sweep_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = ticker.tick() => {}
            }
            match self.sweep_once().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(sagas = n, "overdue saga steps resumed"),
                Err(error) => tracing::warn!(%error, "saga sweep failed; trying again later"),
            }
        }
    }

    /// Advances the order's saga for one message, recording the message in the inbox in the same
    /// transaction; a message seen before changes nothing. Either way, returns the payment the
    /// saga is owed, if any: a copy of a message whose first handling died after its commit
    /// carries the payment step on.
    async fn handle_message(
        &self,
        order_id: OrderId,
        message_id: Uuid,
        metadata: &EventMetadata,
    ) -> Result<Option<PaymentRequest>> {
        self.with_retries("a saga message", |shell, tx| {
            let metadata = metadata.clone();
            Box::pin(async move {
                let saga = if inbox::record_message(tx, CONSUMER, message_id).await? {
                    Some(
                        shell
                            .advance(tx, order_id, Trigger::OrderEvent, &metadata, now())
                            .await?,
                    )
                } else {
                    tracing::debug!(message.id = %message_id, "message seen before; checking for a payment owed");
                    sagas::find_saga(tx, order_id).await?
                };
                match saga {
                    Some(saga) => payment_due(tx, &saga).await,
                    None => Ok(None),
                }
            })
        })
        .await
    }

    /// Runs `work` (described by `what`) in a transaction, again when it lost a race with another
    /// transaction.
    async fn with_retries<T, F>(&self, what: &str, work: F) -> Result<T>
    where
        F: for<'a> Fn(
            &'a Self,
            &'a mut PgConnection,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<T>> + Send + 'a>,
        >,
    {
        let mut attempt = 1;
        loop {
            let mut tx = self.pool.begin().await?;
            match work(self, &mut tx).await {
                Ok(value) => {
                    outbox::commit(tx).await?;
                    return Ok(value);
                }
                Err(error) if error.is_race() && attempt < ATTEMPTS => {
                    tracing::debug!(what, attempt, %error, "saga transaction lost a race; again");
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Brings one order's saga up to date with `trigger`, inside the caller's transaction, and
    /// returns it as saved.
    async fn advance(
        &self,
        tx: &mut PgConnection,
        order_id: OrderId,
        trigger: Trigger,
        metadata: &EventMetadata,
        now: OffsetDateTime,
    ) -> Result<OrderSaga> {
        // Saga row first, then the order row: the sweeper locks in the same order.
        let mut stored = sagas::lock_saga(tx, order_id).await?;
        let mut order = orders::lock_order(tx, order_id)
            .await?
            .ok_or(Error::UnknownOrder(order_id))?;
        if stored.is_none() {
            // A concurrent copy of `order.placed` may have created it while we waited.
            stored = sagas::lock_saga(tx, order_id).await?;
        }
        let mut run = Run {
            shell: self,
            tx,
            order: &mut order,
            metadata,
            now,
        };
        let (mut saga, version, mut commands) = match stored {
            // The deadlines are the worker's to set, whoever wrote the saga.
            Some(stored) => (
                stored.value.with_deadlines(self.settings.deadlines),
                Some(stored.version),
                VecDeque::new(),
            ),
            None => match run.order.status() {
                OrderStatus::Pending => {
                    let (saga, commands) = OrderSaga::start(order_id, self.settings.deadlines, now);
                    (saga, None, VecDeque::from(commands))
                }
                OrderStatus::Cancelled => (
                    OrderSaga::cancelled_before_start(order_id, self.settings.deadlines, now),
                    None,
                    VecDeque::new(),
                ),
                status => return Err(Error::NoSaga { order_id, status }),
            },
        };
        let step_before = saga.step();
        run.execute(&mut saga, &mut commands).await?;
        let mut inputs: Vec<SagaEvent> = saga.missed_decisions(run.order.status());
        match trigger {
            // The saga placement wrote begins with the first message about its order (unless
            // a missed decision, a cancellation, ended it first).
            Trigger::OrderEvent if saga.awaits_start() => inputs.push(SagaEvent::Started),
            Trigger::OrderEvent => {}
            Trigger::Payment(reply) => inputs.push(reply),
            Trigger::Deadline => inputs.push(SagaEvent::DeadlineChecked),
        }
        for input in inputs {
            match saga.handle(input, now) {
                Ok((next, more)) => {
                    observe_step(&saga, &next, run.order);
                    saga = next;
                    commands.extend(more);
                    run.execute(&mut saga, &mut commands).await?;
                }
                Err(
                    error @ (orion_domain::Error::UnexpectedSagaEvent { .. }
                    | orion_domain::Error::DeadlineNotReached { .. }),
                ) => {
                    // A duplicate or stale trigger: the saga has moved past it.
                    tracing::debug!(order.id = %order_id, %error, "saga trigger ignored");
                }
                Err(error) => return Err(error.into()),
            }
        }
        match version {
            None => sagas::insert_saga(tx, &saga).await?,
            Some(version) => sagas::save_saga(tx, &saga, version).await?,
        }
        if saga.step() != step_before && saga.step().is_terminal() {
            let reason = saga.failure_reason().map_or("none", |r| r.as_str());
            metrics::counter!("saga_outcomes_total", "outcome" => saga.step().as_str(), "reason" => reason)
                .increment(1);
        }
        if saga.step() == SagaStep::AwaitingShipment && step_before != SagaStep::AwaitingShipment {
            metrics::counter!("saga_outcomes_total", "outcome" => "confirmed", "reason" => "none")
                .increment(1);
        }
        Ok(saga)
    }
}

impl<P: PaymentProvider + 'static> Handler for SagaShell<P> {
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

/// A message of the saga queue, read.
struct SagaMessage {
    id: Uuid,
    order_id: OrderId,
    metadata: EventMetadata,
}

impl SagaMessage {
    /// `None` for an event that is not the saga's business (the queue may carry bindings from an
    /// older version).
    fn read(envelope: &Envelope) -> Result<Option<Self>, HandlerError> {
        if !matches!(
            envelope.kind.as_str(),
            "order.placed" | "order.cancelled" | "order.shipped" | "order.delivered"
        ) {
            return Ok(None);
        }
        let order_id = envelope
            .subject
            .parse::<Uuid>()
            .map(OrderId::from_uuid)
            .map_err(|_| {
                HandlerError::Permanent(format!(
                    "{} event without an order id subject: {:?}",
                    envelope.kind, envelope.subject
                ))
            })?;
        Ok(Some(Self {
            id: envelope.id,
            order_id,
            metadata: EventMetadata {
                correlation_id: envelope.correlation_id.or(Some(order_id.as_uuid())),
                causation_id: Some(envelope.id),
                traceparent: envelope.traceparent.clone(),
            },
        }))
    }
}

/// Takes a batch's row locks up front, in the order every path takes them: sagas, then orders
/// (both by order id), then the items of the orders whose stock moves (by SKU), as
/// `moves_stock(order, cancelled)` tells. Two batches, or a
/// batch and a single message or the sweeper, then wait for each other instead of deadlocking.
async fn lock_batch(
    tx: &mut PgConnection,
    order_ids: &[OrderId],
    moves_stock: impl Fn(OrderId, bool) -> bool,
) -> Result<()> {
    let mut order_ids = order_ids.to_vec();
    order_ids.sort_by_key(|id| id.as_uuid());
    sagas::lock_sagas(tx, &order_ids).await?;
    let cancelled = orders::lock_orders(tx, &order_ids).await?;
    let moving: Vec<OrderId> = order_ids
        .iter()
        .copied()
        .filter(|id| moves_stock(*id, cancelled.contains(id)))
        .collect();
    if !moving.is_empty() {
        inventory::lock_items_of_orders(tx, &moving).await?;
    }
    Ok(())
}

/// What the events of a saga the sweeper resumed are traced to: the order.
fn sweep_metadata(order_id: OrderId) -> EventMetadata {
    EventMetadata {
        correlation_id: Some(order_id.as_uuid()),
        ..EventMetadata::default()
    }
}

/// The payment request the saga is owed, if its state says the provider must be asked.
async fn payment_due(tx: &mut PgConnection, saga: &OrderSaga) -> Result<Option<PaymentRequest>> {
    if !saga.awaits_payment() {
        return Ok(None);
    }
    let order_id = saga.order_id();
    let order = orders::find_order(tx, order_id)
        .await?
        .ok_or(Error::UnknownOrder(order_id))?;
    let token = orders::payment_token(tx, order_id).await?;
    Ok(Some(PaymentRequest::new(order_id, order.total(), token)))
}

/// The event recording a provider's answer.
fn payment_event(payment: &Payment) -> DomainEvent {
    match payment.status {
        PaymentStatus::Declined => DomainEvent::PaymentDeclined(PaymentDeclined {
            order_id: payment.order_id,
            reason: payment.decline_reason.clone().unwrap_or_default(),
        }),
        PaymentStatus::Authorized | PaymentStatus::Voided => {
            DomainEvent::PaymentAuthorized(PaymentChanged {
                order_id: payment.order_id,
                payment_id: payment.id,
                amount: payment.amount,
            })
        }
    }
}

/// One transaction's work on one order.
struct Run<'a, P> {
    shell: &'a SagaShell<P>,
    tx: &'a mut PgConnection,
    order: &'a mut Order,
    metadata: &'a EventMetadata,
    now: OffsetDateTime,
}

impl<P: PaymentProvider + 'static> Run<'_, P> {
    /// Carries out commands until none are left; replies that come back at once (a reservation)
    /// go straight into the saga.
    async fn execute(
        &mut self,
        saga: &mut OrderSaga,
        commands: &mut VecDeque<SagaCommand>,
    ) -> Result<()> {
        while let Some(command) = commands.pop_front() {
            let reply = self.command(command).await?;
            if let Some(reply) = reply {
                let (next, more) = saga.handle(reply, self.now)?;
                observe_step(saga, &next, self.order);
                *saga = next;
                commands.extend(more);
            }
        }
        Ok(())
    }

    /// Carries out one command in a span of its own, a child of the message (or sweep) that
    /// moved the saga: what the command writes, its events' publication included, follows it.
    async fn command(&mut self, command: SagaCommand) -> Result<Option<SagaEvent>> {
        if command == SagaCommand::AuthorizePayment {
            // Only a marker here: the payment step has its own span where it really runs.
            return self.command_now(command).await;
        }
        let span = step_span(command.as_str(), self.order.id(), self.metadata);
        self.command_now(command).instrument(span).await
    }

    async fn command_now(&mut self, command: SagaCommand) -> Result<Option<SagaEvent>> {
        let order_id = self.order.id();
        match command {
            SagaCommand::ReserveStock => self.reserve().await.map(Some),
            // The payment step runs after the commit, from the saga's state (`payment_due`).
            SagaCommand::AuthorizePayment => Ok(None),
            SagaCommand::MarkOrderReserved => {
                self.transition(Order::mark_reserved).await?;
                Ok(None)
            }
            SagaCommand::ConfirmOrder => {
                self.transition(Order::confirm).await?;
                Ok(None)
            }
            SagaCommand::FailOrder(reason) => {
                self.transition(|order, now| order.fail(reason, now))
                    .await?;
                Ok(None)
            }
            SagaCommand::ReleaseStock => {
                let levels = inventory::release_stock(self.tx, order_id).await?;
                if !levels.is_empty() {
                    self.record(DomainEvent::InventoryReleased(StockMovement {
                        order_id,
                        lines: stock_lines(self.order),
                    }))
                    .await?;
                    self.stock_moved(&levels, AdjustmentReason::Released)
                        .await?;
                }
                Ok(None)
            }
            SagaCommand::ShipStock => {
                let levels = inventory::ship_stock(self.tx, order_id).await?;
                self.stock_moved(&levels, AdjustmentReason::Shipped).await?;
                Ok(None)
            }
            SagaCommand::VoidPayment => {
                self.void_payment().await?;
                Ok(None)
            }
        }
    }

    /// Voids whatever the provider holds under the order's key, recorded here or not. Voided at
    /// the provider before the commit: if the commit fails, the retry voids again, which the
    /// provider accepts.
    async fn void_payment(&mut self) -> Result<()> {
        let order_id = self.order.id();
        let voided_now = self
            .shell
            .provider
            .void(&idempotency_key(order_id))
            .await
            .map_err(|e| Error::Provider(e.to_string()))?;
        let payment = match payments::mark_voided(self.tx, order_id).await? {
            Some(payment) => Some(payment),
            // An authorization whose answer never reached us: record it, as voided.
            None => match voided_now {
                Some(authorization_id) => {
                    let payment = Payment {
                        id: Uuid::now_v7(),
                        order_id,
                        provider: self.shell.provider.name().to_owned(),
                        status: PaymentStatus::Voided,
                        amount: self.order.total(),
                        authorization_id: Some(authorization_id),
                        decline_reason: None,
                    };
                    payments::record_payment(self.tx, &payment)
                        .await?
                        .then_some(payment)
                }
                None => None,
            },
        };
        if let Some(payment) = payment {
            self.record(DomainEvent::PaymentVoided(PaymentChanged {
                order_id,
                payment_id: payment.id,
                amount: payment.amount,
            }))
            .await?;
        }
        Ok(())
    }

    async fn reserve(&mut self) -> Result<SagaEvent> {
        let order_id = self.order.id();
        let lines = stock_lines(self.order);
        match inventory::reserve_stock(self.tx, order_id, &lines).await {
            Ok(levels) => {
                self.record(DomainEvent::InventoryReserved(StockMovement {
                    order_id,
                    lines,
                }))
                .await?;
                self.stock_moved(&levels, AdjustmentReason::Reserved)
                    .await?;
                Ok(SagaEvent::StockReserved)
            }
            // Held by an earlier run of this very saga step.
            Err(orion_persistence::Error::AlreadyReserved(_)) => Ok(SagaEvent::StockReserved),
            Err(orion_persistence::Error::InsufficientStock(shortages)) => {
                self.record(DomainEvent::InventoryReservationFailed(ReservationFailed {
                    order_id,
                    shortages,
                }))
                .await?;
                Ok(SagaEvent::StockUnavailable)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Every moved item's new levels, and a low-stock alert where one crossed its threshold.
    async fn stock_moved(&mut self, levels: &[StockLevel], reason: AdjustmentReason) -> Result<()> {
        for level in levels {
            self.record(DomainEvent::InventoryAdjusted(InventoryAdjusted {
                sku: level.sku.clone(),
                reason,
                available: level.available,
                reserved: level.reserved,
                price: level.price,
                low_stock_threshold: level.low_stock_threshold,
            }))
            .await?;
            if level.crossed_below_threshold() {
                self.record(DomainEvent::InventoryLowStock(LowStock {
                    sku: level.sku.clone(),
                    available: level.available,
                    low_stock_threshold: level.low_stock_threshold,
                }))
                .await?;
            }
        }
        Ok(())
    }

    async fn transition(
        &mut self,
        change: impl FnOnce(&mut Order, OffsetDateTime) -> orion_domain::Result<DomainEvent>,
    ) -> Result<()> {
        let previous = self.order.status();
        let event = change(self.order, self.now)?;
        orders::save_transition(
            self.tx,
            self.order,
            previous,
            &event,
            self.metadata,
            self.now,
        )
        .await?;
        Ok(())
    }

    async fn record(&mut self, event: DomainEvent) -> Result<()> {
        events::record_event(self.tx, &event, self.metadata, self.now).await?;
        Ok(())
    }
}

fn stock_lines(order: &Order) -> Vec<StockLine> {
    order
        .lines()
        .iter()
        .map(|line| StockLine {
            sku: line.sku.clone(),
            quantity: line.quantity,
        })
        .collect()
}

/// The span of one saga step for an order, a child of the span `metadata` names (the message's
/// `process orion.saga` span, or none for the sweeper's own work).
fn step_span(step: &'static str, order_id: OrderId, metadata: &EventMetadata) -> tracing::Span {
    let span = tracing::info_span!(
        "saga step",
        otel.name = %format_args!("saga {step}"),
        saga.step = step,
        order.id = %order_id,
    );
    orion_telemetry::propagation::set_parent(&span, metadata.traceparent.as_deref());
    span
}

/// Records how long the step the saga just left took.
fn observe_step(before: &OrderSaga, after: &OrderSaga, order: &Order) {
    let left = before.step();
    if left == after.step() || left.is_terminal() {
        return;
    }
    let entered = before
        .history()
        .iter()
        .rev()
        .find(|t| t.to == left)
        .map_or(order.created_at(), |t| t.at);
    let now = after.history().last().map_or(entered, |t| t.at);
    let seconds = (now - entered).as_seconds_f64().max(0.0);
    metrics::histogram!("saga_step_duration_seconds", "step" => left.as_str()).record(seconds);
}
