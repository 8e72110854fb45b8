//! `OrderSaga`: the order process as a pure state machine.
//!
//! `handle(event, now)` returns the next saga and the commands the caller must carry out; the
//! caller (the worker) loads, calls, persists and executes in one transaction. Steps, their
//! deadlines and their compensations are data ([`STEPS`]), so any order's progress can be shown.
//!
//! Replies that arrive after the saga has ended (a reservation or an authorization that raced a
//! cancellation or a timeout) are compensated at once, so no stock or payment is ever left held.
//!
//! A step's deadline is when the shell next looks at it, not when the order fails: an overdue
//! step is resumed (its action issued again, which the shell makes idempotent), so time the
//! system spent down delays an order and never fails it. Only a payment provider that leaves
//! `payment_attempts` calls in a row unanswered fails the order with `timeout`.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::{Error, FailureReason, OrderId, OrderStatus, Result};

/// Where the saga of one order is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SagaStep {
    /// Waiting for every line to be reserved.
    ReservingStock,
    /// Stock is held; waiting for the payment provider.
    AuthorizingPayment,
    /// Confirmed; waiting for an admin to ship.
    AwaitingShipment,
    /// Shipped; waiting for delivery.
    Shipped,
    /// Delivered. Terminal.
    Completed,
    /// Failed; compensated. Terminal.
    Failed,
    /// Cancelled; compensated. Terminal.
    Cancelled,
}

impl SagaStep {
    pub const ALL: [SagaStep; 7] = [
        Self::ReservingStock,
        Self::AuthorizingPayment,
        Self::AwaitingShipment,
        Self::Shipped,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReservingStock => "reserving_stock",
            Self::AuthorizingPayment => "authorizing_payment",
            Self::AwaitingShipment => "awaiting_shipment",
            Self::Shipped => "shipped",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// The definition of an active step, if this step is one.
    pub fn definition(self) -> Option<&'static StepDefinition> {
        STEPS.iter().find(|d| d.step == self)
    }
}

impl fmt::Display for SagaStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the saga asks its shell to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "command", content = "reason")]
pub enum SagaCommand {
    /// Reserve every line of the order, all or nothing; answer `StockReserved` or `StockUnavailable`.
    ReserveStock,
    /// Ask the payment provider; answer `PaymentAuthorized` or `PaymentDeclined`.
    AuthorizePayment,
    /// Move the order to `reserved`.
    MarkOrderReserved,
    /// Move the order to `confirmed`.
    ConfirmOrder,
    /// Move the order to `failed` with this reason.
    FailOrder(FailureReason),
    /// Give the order's held stock back (compensates `ReserveStock`).
    ReleaseStock,
    /// Void the authorization (compensates `AuthorizePayment`).
    VoidPayment,
    /// Held stock leaves the warehouse.
    ShipStock,
}

impl SagaCommand {
    /// A stable name for logs and traces.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::ReserveStock => "reserve stock",
            Self::AuthorizePayment => "authorize payment",
            Self::MarkOrderReserved => "mark order reserved",
            Self::ConfirmOrder => "confirm order",
            Self::FailOrder(_) => "fail order",
            Self::ReleaseStock => "release stock",
            Self::VoidPayment => "void payment",
            Self::ShipStock => "ship stock",
        }
    }
}

/// An active step: what it does, what undoes it, and how long it may take.
#[derive(Debug)]
pub struct StepDefinition {
    pub step: SagaStep,
    pub action: SagaCommand,
    pub compensation: SagaCommand,
    deadline: fn(&SagaDeadlines) -> Duration,
}

impl StepDefinition {
    pub fn deadline(&self, deadlines: &SagaDeadlines) -> Duration {
        (self.deadline)(deadlines)
    }
}

/// The saga's steps in order.
pub static STEPS: [StepDefinition; 2] = [
    StepDefinition {
        step: SagaStep::ReservingStock,
        action: SagaCommand::ReserveStock,
        compensation: SagaCommand::ReleaseStock,
        deadline: |d| d.reserve_stock,
    },
    StepDefinition {
        step: SagaStep::AuthorizingPayment,
        action: SagaCommand::AuthorizePayment,
        compensation: SagaCommand::VoidPayment,
        deadline: |d| d.authorize_payment,
    },
];

/// How long each step may go without progress before the shell resumes it, and how many
/// unanswered payment calls fail the order with `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaDeadlines {
    pub reserve_stock: Duration,
    pub authorize_payment: Duration,
    #[serde(default = "default_payment_attempts")]
    pub payment_attempts: u32,
}

fn default_payment_attempts() -> u32 {
    SagaDeadlines::default().payment_attempts
}

impl Default for SagaDeadlines {
    fn default() -> Self {
        Self {
            reserve_stock: Duration::seconds(30),
            authorize_payment: Duration::seconds(60),
            payment_attempts: 3,
        }
    }
}

/// What the saga hears: replies to its commands and decisions made elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SagaEvent {
    StockReserved,
    StockUnavailable,
    PaymentAuthorized,
    PaymentDeclined,
    /// The order was cancelled by its customer or an admin.
    CancelRequested,
    /// An admin shipped the order.
    Shipped,
    /// An admin marked the order delivered.
    Delivered,
    /// The sweeper asks whether the current step is overdue.
    DeadlineChecked,
    /// The provider did not answer one authorization call (unreachable or too slow).
    PaymentUnanswered,
    /// The shell found the saga that placement wrote and begins it.
    Started,
}

impl SagaEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StockReserved => "stock_reserved",
            Self::StockUnavailable => "stock_unavailable",
            Self::PaymentAuthorized => "payment_authorized",
            Self::PaymentDeclined => "payment_declined",
            Self::CancelRequested => "cancel_requested",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::DeadlineChecked => "deadline_checked",
            Self::PaymentUnanswered => "payment_unanswered",
            Self::Started => "started",
        }
    }
}

/// The order's stock, as far as the saga knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StockState {
    NotRequested,
    Requested,
    Held,
    Released,
    Shipped,
    Unavailable,
}

/// The order's payment, as far as the saga knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentState {
    NotRequested,
    Requested,
    Authorized,
    Declined,
    Voided,
}

/// One handled event, kept so the order's timeline can show every step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaTransition {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub event: SagaEvent,
    pub from: SagaStep,
    pub to: SagaStep,
    pub commands: Vec<SagaCommand>,
}

/// The saga of one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSaga {
    order_id: OrderId,
    step: SagaStep,
    failure_reason: Option<FailureReason>,
    stock: StockState,
    payment: PaymentState,
    #[serde(with = "time::serde::rfc3339::option")]
    deadline: Option<OffsetDateTime>,
    deadlines: SagaDeadlines,
    /// Payment calls in a row the provider left unanswered.
    #[serde(default)]
    payment_unanswered: u32,
    history: Vec<SagaTransition>,
}

impl OrderSaga {
    /// Starts the saga of a freshly placed order: reserve its stock.
    pub fn start(
        order_id: OrderId,
        deadlines: SagaDeadlines,
        now: OffsetDateTime,
    ) -> (OrderSaga, Vec<SagaCommand>) {
        let saga = OrderSaga {
            order_id,
            step: SagaStep::ReservingStock,
            failure_reason: None,
            stock: StockState::Requested,
            payment: PaymentState::NotRequested,
            deadline: Some(now + deadlines.reserve_stock),
            deadlines,
            payment_unanswered: 0,
            history: Vec::new(),
        };
        (saga, vec![SagaCommand::ReserveStock])
    }

    /// The saga as placement writes it, in the order's own transaction: nothing requested yet,
    /// but due by the reservation deadline, so the sweeper begins it even if the `order.placed`
    /// message is never handled (parked, lost, or its queue purged).
    pub fn placed(order_id: OrderId, deadlines: SagaDeadlines, now: OffsetDateTime) -> OrderSaga {
        OrderSaga {
            order_id,
            step: SagaStep::ReservingStock,
            failure_reason: None,
            stock: StockState::NotRequested,
            payment: PaymentState::NotRequested,
            deadline: Some(now + deadlines.reserve_stock),
            deadlines,
            payment_unanswered: 0,
            history: Vec::new(),
        }
    }

    /// The same saga under the shell's deadlines, which are its to set (placement only guessed):
    /// the current step's deadline stands, the next ones follow the new durations.
    pub fn with_deadlines(mut self, deadlines: SagaDeadlines) -> OrderSaga {
        self.deadlines = deadlines;
        self
    }

    /// Whether the saga was written at placement and nothing has begun it yet.
    pub fn awaits_start(&self) -> bool {
        self.step == SagaStep::ReservingStock && self.stock == StockState::NotRequested
    }

    /// The saga of an order that was cancelled before its saga began: it ends at once, having
    /// taken nothing.
    pub fn cancelled_before_start(
        order_id: OrderId,
        deadlines: SagaDeadlines,
        now: OffsetDateTime,
    ) -> OrderSaga {
        OrderSaga {
            order_id,
            step: SagaStep::Cancelled,
            failure_reason: None,
            stock: StockState::NotRequested,
            payment: PaymentState::NotRequested,
            deadline: None,
            deadlines,
            payment_unanswered: 0,
            history: vec![SagaTransition {
                at: now,
                event: SagaEvent::CancelRequested,
                from: SagaStep::ReservingStock,
                to: SagaStep::Cancelled,
                commands: Vec::new(),
            }],
        }
    }

    /// The decisions made elsewhere that the saga has not heard of yet, given the order's current
    /// status: a cancellation, a shipment or a delivery that an admin or the customer made. The
    /// shell feeds them before anything else, so a reply that raced such a decision is handled as
    /// a late reply and compensated rather than applied to an order that moved on.
    pub fn missed_decisions(&self, order_status: OrderStatus) -> Vec<SagaEvent> {
        use SagaStep as S;
        match (order_status, self.step) {
            (
                OrderStatus::Cancelled,
                S::ReservingStock | S::AuthorizingPayment | S::AwaitingShipment,
            ) => {
                vec![SagaEvent::CancelRequested]
            }
            (OrderStatus::Shipped, S::AwaitingShipment) => vec![SagaEvent::Shipped],
            (OrderStatus::Delivered, S::AwaitingShipment) => {
                vec![SagaEvent::Shipped, SagaEvent::Delivered]
            }
            (OrderStatus::Delivered, S::Shipped) => vec![SagaEvent::Delivered],
            _ => Vec::new(),
        }
    }

    pub fn order_id(&self) -> OrderId {
        self.order_id
    }
    pub fn step(&self) -> SagaStep {
        self.step
    }
    pub fn failure_reason(&self) -> Option<FailureReason> {
        self.failure_reason
    }
    pub fn stock(&self) -> StockState {
        self.stock
    }
    pub fn payment(&self) -> PaymentState {
        self.payment
    }
    /// When the current step becomes overdue; `None` when no step is running.
    pub fn deadline(&self) -> Option<OffsetDateTime> {
        self.deadline
    }
    pub fn history(&self) -> &[SagaTransition] {
        &self.history
    }
    /// Whether the shell owes the provider a call: the payment step runs and has no answer.
    pub fn awaits_payment(&self) -> bool {
        self.step == SagaStep::AuthorizingPayment && self.payment == PaymentState::Requested
    }

    /// The action of the current step that has not finished, to issue again: a saga resumes
    /// where it was after a crash, an outage or a lost message.
    pub fn pending_action(&self) -> Option<SagaCommand> {
        match self.step {
            SagaStep::ReservingStock
                if matches!(self.stock, StockState::Requested | StockState::NotRequested) =>
            {
                Some(SagaCommand::ReserveStock)
            }
            SagaStep::AuthorizingPayment if self.payment == PaymentState::Requested => {
                Some(SagaCommand::AuthorizePayment)
            }
            _ => None,
        }
    }

    pub fn is_finished(&self) -> bool {
        self.step.is_terminal()
            && self.stock != StockState::Requested
            && self.payment != PaymentState::Requested
    }

    /// Handles one event. A refused event leaves the saga as it was (it is consumed by value
    /// only on success).
    pub fn handle(
        &self,
        event: SagaEvent,
        now: OffsetDateTime,
    ) -> Result<(OrderSaga, Vec<SagaCommand>)> {
        let mut next = self.clone();
        let commands = next.apply(event, now)?;
        next.history.push(SagaTransition {
            at: now,
            event,
            from: self.step,
            to: next.step,
            commands: commands.clone(),
        });
        Ok((next, commands))
    }

    fn apply(&mut self, event: SagaEvent, now: OffsetDateTime) -> Result<Vec<SagaCommand>> {
        use SagaEvent as E;
        use SagaStep as S;
        let commands = match (self.step, event) {
            (S::ReservingStock, E::StockReserved) if self.stock == StockState::Requested => {
                self.stock = StockState::Held;
                self.payment = PaymentState::Requested;
                self.enter(S::AuthorizingPayment, now);
                vec![
                    SagaCommand::MarkOrderReserved,
                    SagaCommand::AuthorizePayment,
                ]
            }
            (S::ReservingStock, E::StockUnavailable) if self.stock == StockState::Requested => {
                self.stock = StockState::Unavailable;
                self.fail(FailureReason::OutOfStock)
            }
            (S::AuthorizingPayment, E::PaymentAuthorized)
                if self.payment == PaymentState::Requested =>
            {
                self.payment = PaymentState::Authorized;
                self.enter(S::AwaitingShipment, now);
                vec![SagaCommand::ConfirmOrder]
            }
            (S::AuthorizingPayment, E::PaymentDeclined)
                if self.payment == PaymentState::Requested =>
            {
                self.payment = PaymentState::Declined;
                self.fail(FailureReason::PaymentDeclined)
            }
            (
                S::ReservingStock | S::AuthorizingPayment | S::AwaitingShipment,
                E::CancelRequested,
            ) => {
                self.enter(S::Cancelled, now);
                self.compensate()
            }
            (S::ReservingStock, E::Started) if self.stock == StockState::NotRequested => {
                self.stock = StockState::Requested;
                self.enter(S::ReservingStock, now);
                vec![SagaCommand::ReserveStock]
            }
            (S::ReservingStock | S::AuthorizingPayment, E::DeadlineChecked) => {
                match (self.deadline, self.pending_action()) {
                    (Some(deadline), Some(action)) if now >= deadline => {
                        if self.stock == StockState::NotRequested {
                            self.stock = StockState::Requested;
                        }
                        // No progress for a whole deadline: resume the step, and look again
                        // after another one.
                        self.enter(self.step, now);
                        vec![action]
                    }
                    _ => return Err(Error::DeadlineNotReached { step: self.step }),
                }
            }
            (S::AuthorizingPayment, E::PaymentUnanswered)
                if self.payment == PaymentState::Requested =>
            {
                self.payment_unanswered = self.payment_unanswered.saturating_add(1);
                if self.payment_unanswered >= self.deadlines.payment_attempts {
                    self.fail(FailureReason::Timeout)
                } else {
                    self.enter(self.step, now);
                    Vec::new()
                }
            }
            (S::AwaitingShipment, E::Shipped) if self.stock == StockState::Held => {
                self.stock = StockState::Shipped;
                self.enter(S::Shipped, now);
                vec![SagaCommand::ShipStock]
            }
            (S::Shipped, E::Delivered) => {
                self.enter(S::Completed, now);
                Vec::new()
            }
            // Late replies to a saga that has already ended: undo what they did.
            (S::Failed | S::Cancelled, E::StockReserved) if self.stock == StockState::Requested => {
                self.stock = StockState::Released;
                vec![SagaCommand::ReleaseStock]
            }
            (S::Failed | S::Cancelled, E::StockUnavailable)
                if self.stock == StockState::Requested =>
            {
                self.stock = StockState::Unavailable;
                Vec::new()
            }
            (S::Failed | S::Cancelled, E::PaymentAuthorized)
                if matches!(self.payment, PaymentState::Requested | PaymentState::Voided) =>
            {
                // Authorized after (or while) the saga ended: void again; voids are idempotent.
                self.payment = PaymentState::Voided;
                vec![SagaCommand::VoidPayment]
            }
            (S::Failed | S::Cancelled, E::PaymentDeclined)
                if self.payment == PaymentState::Requested =>
            {
                self.payment = PaymentState::Declined;
                Vec::new()
            }
            // Declined after the saga voided it: nothing is held, nothing to do.
            (S::Failed | S::Cancelled, E::PaymentDeclined | E::PaymentUnanswered)
                if self.payment == PaymentState::Voided =>
            {
                Vec::new()
            }
            (step, event) => {
                return Err(Error::UnexpectedSagaEvent {
                    order_id: self.order_id.to_string(),
                    step,
                    event: event.as_str(),
                });
            }
        };
        Ok(commands)
    }

    /// Moves to `step`, starting its deadline if it has one.
    fn enter(&mut self, step: SagaStep, now: OffsetDateTime) {
        self.step = step;
        self.deadline = step.definition().map(|d| now + d.deadline(&self.deadlines));
    }

    fn fail(&mut self, reason: FailureReason) -> Vec<SagaCommand> {
        self.step = SagaStep::Failed;
        self.deadline = None;
        self.failure_reason = Some(reason);
        let mut commands = self.compensate();
        commands.push(SagaCommand::FailOrder(reason));
        commands
    }

    /// Undoes every completed step, latest first.
    fn compensate(&mut self) -> Vec<SagaCommand> {
        self.deadline = None;
        let mut commands = Vec::new();
        // A payment still waiting for its answer may be held at the provider all the same (the
        // answer was lost, or is on its way): void whatever the provider holds for the order.
        if matches!(
            self.payment,
            PaymentState::Authorized | PaymentState::Requested
        ) {
            self.payment = PaymentState::Voided;
            commands.push(SagaCommand::VoidPayment);
        }
        if self.stock == StockState::Held {
            self.stock = StockState::Released;
            commands.push(SagaCommand::ReleaseStock);
        }
        commands
    }
}

#[cfg(test)]
mod tests;
