use proptest::prelude::*;

use super::*;
use crate::inventory::{InventoryItem, StockLine, reserve_all};
use crate::order::{Order, OrderLine, OrderStatus};
use crate::{Currency, CustomerId, Money, Quantity, Sku};

use SagaCommand as C;
use SagaEvent as E;

fn t0() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + Duration::days(20_000)
}

fn started() -> OrderSaga {
    OrderSaga::start(OrderId::new(), SagaDeadlines::default(), t0()).0
}

/// Feeds events in order, returning the final saga and every command issued.
fn run(events: &[SagaEvent]) -> (OrderSaga, Vec<SagaCommand>) {
    let (mut saga, mut commands) = OrderSaga::start(OrderId::new(), SagaDeadlines::default(), t0());
    for &event in events {
        let (next, issued) = saga
            .handle(event, t0())
            .unwrap_or_else(|e| panic!("{event:?}: {e}"));
        saga = next;
        commands.extend(issued);
    }
    (saga, commands)
}

#[test]
fn happy_path_reserves_authorizes_confirms_ships_and_completes() {
    let (saga, commands) = run(&[
        E::StockReserved,
        E::PaymentAuthorized,
        E::Shipped,
        E::Delivered,
    ]);
    assert_eq!(saga.step(), SagaStep::Completed);
    assert_eq!(
        commands,
        [
            C::ReserveStock,
            C::MarkOrderReserved,
            C::AuthorizePayment,
            C::ConfirmOrder,
            C::ShipStock
        ]
    );
    assert_eq!(saga.stock(), StockState::Shipped);
    assert_eq!(saga.payment(), PaymentState::Authorized);
    assert!(saga.is_finished());
    let steps: Vec<SagaStep> = saga.history().iter().map(|t| t.to).collect();
    assert_eq!(
        steps,
        [
            SagaStep::AuthorizingPayment,
            SagaStep::AwaitingShipment,
            SagaStep::Shipped,
            SagaStep::Completed
        ]
    );
}

#[test]
fn out_of_stock_fails_without_compensation() {
    let (saga, commands) = run(&[E::StockUnavailable]);
    assert_eq!(saga.step(), SagaStep::Failed);
    assert_eq!(saga.failure_reason(), Some(FailureReason::OutOfStock));
    assert_eq!(
        commands,
        [C::ReserveStock, C::FailOrder(FailureReason::OutOfStock)]
    );
    assert_eq!(saga.deadline(), None);
}

#[test]
fn declined_payment_releases_the_reservation() {
    let (saga, commands) = run(&[E::StockReserved, E::PaymentDeclined]);
    assert_eq!(saga.failure_reason(), Some(FailureReason::PaymentDeclined));
    assert_eq!(
        &commands[3..],
        [
            C::ReleaseStock,
            C::FailOrder(FailureReason::PaymentDeclined)
        ]
    );
    assert_eq!(saga.stock(), StockState::Released);
}

#[test]
fn cancellation_compensates_what_each_step_holds() {
    let (saga, commands) = run(&[E::CancelRequested]);
    assert_eq!(saga.step(), SagaStep::Cancelled);
    assert_eq!(commands, [C::ReserveStock], "nothing held yet");
    assert!(!saga.is_finished(), "the reservation request is still out");

    // The payment call is out: whatever the provider may hold for the order is voided too.
    let (_, commands) = run(&[E::StockReserved, E::CancelRequested]);
    assert_eq!(&commands[3..], [C::VoidPayment, C::ReleaseStock]);

    let (saga, commands) = run(&[E::StockReserved, E::PaymentAuthorized, E::CancelRequested]);
    assert_eq!(&commands[4..], [C::VoidPayment, C::ReleaseStock]);
    assert_eq!(
        (saga.stock(), saga.payment()),
        (StockState::Released, PaymentState::Voided)
    );
    assert!(saga.is_finished());
}

#[test]
fn late_replies_after_the_end_are_undone() {
    let (saga, commands) = run(&[E::CancelRequested, E::StockReserved]);
    assert_eq!(commands.last(), Some(&C::ReleaseStock));
    assert!(saga.is_finished());

    let (saga, commands) = run(&[E::StockReserved, E::CancelRequested, E::PaymentAuthorized]);
    assert_eq!(commands.last(), Some(&C::VoidPayment));
    assert_eq!(saga.payment(), PaymentState::Voided);
    assert!(saga.is_finished());
}

#[test]
fn a_step_times_out_only_after_its_deadline() {
    let saga = started();
    let deadline = saga.deadline().expect("reserving has a deadline");
    assert_eq!(deadline, t0() + SagaDeadlines::default().reserve_stock);
    let early = saga.handle(E::DeadlineChecked, deadline - Duration::milliseconds(1));
    assert_eq!(
        early,
        Err(Error::DeadlineNotReached {
            step: SagaStep::ReservingStock
        })
    );

    let (reserved, _) = saga
        .handle(E::StockReserved, t0() + Duration::seconds(1))
        .unwrap();
    let payment_deadline = reserved.deadline().unwrap();
    assert_eq!(
        payment_deadline,
        t0() + Duration::seconds(1) + SagaDeadlines::default().authorize_payment
    );
    // Overdue means "no progress yet" (the system may have been down): the step is resumed,
    // never failed, and looked at again one deadline later.
    let (resumed, commands) = reserved
        .handle(E::DeadlineChecked, payment_deadline)
        .unwrap();
    assert_eq!(resumed.step(), SagaStep::AuthorizingPayment);
    assert_eq!(commands, [C::AuthorizePayment]);
    assert_eq!(
        resumed.deadline(),
        Some(payment_deadline + SagaDeadlines::default().authorize_payment)
    );
    let (resumed, commands) = saga.handle(E::DeadlineChecked, deadline).unwrap();
    assert_eq!(resumed.step(), SagaStep::ReservingStock);
    assert_eq!(commands, [C::ReserveStock]);
}

#[test]
fn only_a_provider_that_keeps_not_answering_fails_the_order_with_timeout() {
    let (mut saga, _) = run(&[E::StockReserved]);
    let attempts = SagaDeadlines::default().payment_attempts;
    for _ in 1..attempts {
        let (next, commands) = saga.handle(E::PaymentUnanswered, t0()).unwrap();
        assert_eq!(next.step(), SagaStep::AuthorizingPayment);
        assert!(commands.is_empty());
        assert!(next.awaits_payment());
        saga = next;
    }
    let (failed, commands) = saga.handle(E::PaymentUnanswered, t0()).unwrap();
    assert_eq!(failed.failure_reason(), Some(FailureReason::Timeout));
    // The provider may hold an authorization it never reported: void by the order's key.
    assert_eq!(
        commands,
        [
            C::VoidPayment,
            C::ReleaseStock,
            C::FailOrder(FailureReason::Timeout)
        ]
    );
    // A late authorization is voided again; a late decline changes nothing.
    let (late, commands) = failed.handle(E::PaymentAuthorized, t0()).unwrap();
    assert_eq!(commands, [C::VoidPayment]);
    assert!(late.is_finished());
    assert!(
        failed
            .handle(E::PaymentDeclined, t0())
            .unwrap()
            .1
            .is_empty()
    );
}

#[test]
fn a_saga_written_at_placement_begins_on_its_first_message_or_at_its_deadline() {
    let placed = OrderSaga::placed(OrderId::new(), SagaDeadlines::default(), t0());
    assert!(placed.awaits_start());
    let (begun, commands) = placed.handle(E::Started, t0()).unwrap();
    assert_eq!(commands, [C::ReserveStock]);
    assert_eq!(begun.stock(), StockState::Requested);
    assert!(begun.handle(E::Started, t0()).is_err(), "begun once");
    // No message ever came (parked, lost, purged): the sweeper begins it at its deadline.
    let due = placed.deadline().expect("due by the reservation deadline");
    assert!(
        placed
            .handle(E::DeadlineChecked, due - Duration::seconds(1))
            .is_err()
    );
    let (begun, commands) = placed.handle(E::DeadlineChecked, due).unwrap();
    assert_eq!(commands, [C::ReserveStock]);
    assert_eq!(begun.stock(), StockState::Requested);
    // Cancelled before it began: nothing was taken, nothing is owed.
    let (cancelled, commands) = placed.handle(E::CancelRequested, t0()).unwrap();
    assert!(commands.is_empty());
    assert!(cancelled.is_finished());
}

#[test]
fn confirmed_orders_have_no_deadline() {
    let (saga, _) = run(&[E::StockReserved, E::PaymentAuthorized]);
    assert_eq!(saga.deadline(), None);
    assert!(matches!(
        saga.handle(E::DeadlineChecked, t0() + Duration::days(365)),
        Err(Error::UnexpectedSagaEvent { .. })
    ));
}

#[test]
fn unexpected_events_are_refused_and_change_nothing() {
    let saga = started();
    for event in [
        E::PaymentAuthorized,
        E::PaymentDeclined,
        E::Shipped,
        E::Delivered,
    ] {
        assert!(
            matches!(
                saga.handle(event, t0()),
                Err(Error::UnexpectedSagaEvent { .. })
            ),
            "{event:?}"
        );
    }
    let (done, _) = run(&[E::StockReserved, E::PaymentAuthorized, E::Shipped]);
    for event in [
        E::CancelRequested,
        E::StockReserved,
        E::Shipped,
        E::DeadlineChecked,
    ] {
        assert!(
            done.handle(event, t0()).is_err(),
            "{event:?} accepted after shipping"
        );
    }
    let (cancelled, _) = run(&[E::CancelRequested, E::StockUnavailable]);
    assert!(
        cancelled.handle(E::StockReserved, t0()).is_err(),
        "a second reply"
    );
}

#[test]
fn step_definitions_pair_actions_with_compensations() {
    let reserve = SagaStep::ReservingStock.definition().unwrap();
    assert_eq!(
        (reserve.action, reserve.compensation),
        (C::ReserveStock, C::ReleaseStock)
    );
    let pay = SagaStep::AuthorizingPayment.definition().unwrap();
    assert_eq!(
        (pay.action, pay.compensation),
        (C::AuthorizePayment, C::VoidPayment)
    );
    assert!(SagaStep::AwaitingShipment.definition().is_none());
    for step in SagaStep::ALL {
        assert_eq!(SagaStep::parse(step.as_str()), Some(step));
    }
}

#[test]
fn a_saga_cancelled_before_it_began_holds_nothing_and_is_finished() {
    let saga = OrderSaga::cancelled_before_start(OrderId::new(), SagaDeadlines::default(), t0());
    assert_eq!(saga.step(), SagaStep::Cancelled);
    assert!(saga.is_finished());
    assert_eq!(saga.deadline(), None);
    assert_eq!(saga.history().len(), 1);
    // A stray reply changes nothing and is refused.
    assert!(saga.handle(E::StockReserved, t0()).is_err());
}

#[test]
fn missed_decisions_follow_the_order_status() {
    let (reserving, _) = run(&[]);
    assert_eq!(
        reserving.missed_decisions(OrderStatus::Cancelled),
        vec![E::CancelRequested]
    );
    assert!(reserving.missed_decisions(OrderStatus::Pending).is_empty());
    let (authorizing, _) = run(&[E::StockReserved]);
    assert_eq!(
        authorizing.missed_decisions(OrderStatus::Cancelled),
        vec![E::CancelRequested]
    );
    assert!(
        authorizing
            .missed_decisions(OrderStatus::Reserved)
            .is_empty()
    );
    let (confirmed, _) = run(&[E::StockReserved, E::PaymentAuthorized]);
    assert_eq!(
        confirmed.missed_decisions(OrderStatus::Shipped),
        vec![E::Shipped]
    );
    assert_eq!(
        confirmed.missed_decisions(OrderStatus::Delivered),
        vec![E::Shipped, E::Delivered]
    );
    assert!(
        confirmed
            .missed_decisions(OrderStatus::Confirmed)
            .is_empty()
    );
    let (shipped, _) = run(&[E::StockReserved, E::PaymentAuthorized, E::Shipped]);
    assert_eq!(
        shipped.missed_decisions(OrderStatus::Delivered),
        vec![E::Delivered]
    );
    // Every missed decision is one the saga accepts, in the order given.
    let mut saga = confirmed.clone();
    for event in confirmed.missed_decisions(OrderStatus::Delivered) {
        saga = saga.handle(event, t0()).unwrap().0;
    }
    assert_eq!(saga.step(), SagaStep::Completed);
    let (failed, _) = run(&[E::StockUnavailable]);
    assert!(failed.missed_decisions(OrderStatus::Cancelled).is_empty());
}

#[test]
fn saga_state_round_trips_through_json() {
    let (saga, _) = run(&[E::StockReserved]);
    let json = serde_json::to_value(&saga).unwrap();
    assert_eq!(serde_json::from_value::<OrderSaga>(json).unwrap(), saga);
}

/// What the outside world does next, in the simulation below.
#[derive(Debug, Clone)]
enum World {
    /// The shell answers the oldest outstanding request; `bool` decides the payment.
    Reply(bool),
    Cancel,
    Ship,
    Deliver,
    /// Time passes and the sweeper looks.
    Tick(i64),
    /// The provider does not answer the call that is out.
    Unanswered,
}

fn world() -> impl Strategy<Value = World> {
    prop_oneof![
        4 => any::<bool>().prop_map(World::Reply),
        1 => Just(World::Cancel),
        1 => Just(World::Ship),
        1 => Just(World::Deliver),
        2 => (0i64..120).prop_map(World::Tick),
        1 => Just(World::Unanswered),
    ]
}

#[derive(Debug, PartialEq)]
enum Request {
    Reserve,
    Authorize,
}

/// A faithful little shell: an order, stock for its SKUs, a payment flag and the requests that
/// are still out. Every command the saga issues must be executable against it.
struct Shell {
    saga: OrderSaga,
    order: Order,
    items: Vec<InventoryItem>,
    lines: Vec<StockLine>,
    authorized: bool,
    outstanding: Vec<Request>,
    now: OffsetDateTime,
}

impl Shell {
    fn new(stocks: &[u32], wanted: &[u32]) -> Shell {
        let skus: Vec<Sku> = (0..stocks.len())
            .map(|i| Sku::parse(&format!("SKU-{i}")).unwrap())
            .collect();
        let price = Money::new(250, Currency::USD).unwrap();
        let items = skus
            .iter()
            .zip(stocks)
            .map(|(s, &n)| InventoryItem::new(s.clone(), s.to_string(), price, n, 2))
            .collect();
        let lines: Vec<StockLine> = skus
            .iter()
            .zip(wanted)
            .map(|(s, &n)| StockLine {
                sku: s.clone(),
                quantity: Quantity::parse(i64::from(n)).unwrap(),
            })
            .collect();
        let order_lines = lines
            .iter()
            .map(|l| OrderLine {
                sku: l.sku.clone(),
                name: l.sku.to_string(),
                quantity: l.quantity,
                unit_price: price,
            })
            .collect();
        let (order, _) =
            Order::place(OrderId::new(), CustomerId::new(), order_lines, t0()).unwrap();
        let (saga, commands) = OrderSaga::start(order.id(), SagaDeadlines::default(), t0());
        let mut shell = Shell {
            saga,
            order,
            items,
            lines,
            authorized: false,
            outstanding: Vec::new(),
            now: t0(),
        };
        shell.execute(commands);
        shell
    }

    fn feed(&mut self, event: SagaEvent) -> Result<()> {
        let (next, commands) = self.saga.handle(event, self.now)?;
        self.saga = next;
        self.execute(commands);
        Ok(())
    }

    fn execute(&mut self, commands: Vec<SagaCommand>) {
        let now = self.now;
        for command in commands {
            match command {
                // The real shell makes a repeated request idempotent (the reservation by order,
                // the authorization by its key): one of each is out at most.
                C::ReserveStock => self.request(Request::Reserve),
                C::AuthorizePayment => self.request(Request::Authorize),
                C::MarkOrderReserved => {
                    self.order
                        .mark_reserved(now)
                        .expect("order follows the saga to reserved");
                }
                C::ConfirmOrder => {
                    self.order
                        .confirm(now)
                        .expect("order follows the saga to confirmed");
                }
                C::FailOrder(reason) => {
                    self.order
                        .fail(reason, now)
                        .expect("order can fail where the saga fails");
                }
                C::ReleaseStock => {
                    for line in &self.lines {
                        let item = self
                            .items
                            .iter_mut()
                            .find(|i| i.sku() == &line.sku)
                            .unwrap();
                        item.release(line.quantity)
                            .expect("released stock was held");
                    }
                }
                C::ShipStock => {
                    for line in &self.lines {
                        let item = self
                            .items
                            .iter_mut()
                            .find(|i| i.sku() == &line.sku)
                            .unwrap();
                        item.ship(line.quantity).expect("shipped stock was held");
                    }
                }
                // Voids by the order's key: whatever the provider holds, possibly nothing.
                C::VoidPayment => self.authorized = false,
            }
        }
    }

    fn request(&mut self, request: Request) {
        if !self.outstanding.contains(&request) {
            self.outstanding.push(request);
        }
    }

    fn unanswered(&mut self) {
        if let Some(at) = self
            .outstanding
            .iter()
            .position(|r| *r == Request::Authorize)
        {
            self.outstanding.remove(at);
            self.feed(E::PaymentUnanswered)
                .expect("the saga accepts a provider that did not answer its call");
        }
    }

    fn reply(&mut self, approve: bool) {
        if self.outstanding.is_empty() {
            return;
        }
        let event = match self.outstanding.remove(0) {
            Request::Reserve => match reserve_all(&mut self.items, &self.lines) {
                Ok(()) => E::StockReserved,
                Err(_) => E::StockUnavailable,
            },
            Request::Authorize if approve => {
                self.authorized = true;
                E::PaymentAuthorized
            }
            Request::Authorize => E::PaymentDeclined,
        };
        self.feed(event)
            .expect("the saga accepts a reply to its own request");
    }

    fn act(&mut self, action: &World) {
        match *action {
            World::Reply(approve) => self.reply(approve),
            World::Cancel => {
                // The API cancels the order first; the saga then compensates.
                if self.order.cancel(self.now).is_ok() {
                    self.feed(E::CancelRequested)
                        .expect("the saga follows a cancellation");
                }
            }
            World::Ship => {
                if self.order.ship(self.now).is_ok() {
                    self.feed(E::Shipped).expect("the saga follows a shipment");
                }
            }
            World::Deliver => {
                if self.order.deliver(self.now).is_ok() {
                    self.feed(E::Delivered)
                        .expect("the saga follows a delivery");
                }
            }
            World::Tick(seconds) => {
                self.now += Duration::seconds(seconds);
                let _ = self.feed(E::DeadlineChecked);
            }
            World::Unanswered => self.unanswered(),
        }
    }

    /// Answers every request and settles the order one way or another.
    fn close(&mut self) {
        while !self.outstanding.is_empty() {
            self.reply(true);
        }
        self.act(&World::Tick(3600));
        for action in [World::Cancel, World::Deliver] {
            self.act(&action);
        }
        while !self.outstanding.is_empty() {
            self.reply(true);
        }
    }
}

proptest! {
    #[test]
    fn every_saga_ends_with_nothing_held(
        stocks in prop::collection::vec(0u32..6, 1..4),
        wanted in prop::collection::vec(1u32..4, 3),
        actions in prop::collection::vec(world(), 0..25),
    ) {
        let wanted = &wanted[..stocks.len()];
        let mut shell = Shell::new(&stocks, wanted);
        for action in &actions {
            shell.act(action);
            prop_assert!(shell.items.iter().all(InventoryItem::is_conserved));
            let held: u32 = shell.items.iter().map(InventoryItem::reserved).sum();
            let wanted_total: u32 = wanted.iter().sum();
            prop_assert!(held == 0 || held == wanted_total, "partial reservation: {held}");
        }
        shell.close();
        let saga = &shell.saga;
        prop_assert!(saga.is_finished(), "saga stuck at {:?}", saga.step());
        prop_assert!(shell.order.status().is_terminal() || shell.order.status() == OrderStatus::Shipped);
        prop_assert!(shell.items.iter().all(|i| i.reserved() == 0), "stock left reserved");
        prop_assert!(shell.items.iter().all(InventoryItem::is_conserved));
        match saga.step() {
            SagaStep::Completed => {
                prop_assert_eq!(shell.order.status(), OrderStatus::Delivered);
                prop_assert!(shell.authorized);
            }
            SagaStep::Failed => {
                prop_assert!(!shell.authorized, "a failed order kept its payment");
                prop_assert_eq!(shell.order.status().failure_reason(), saga.failure_reason());
            }
            SagaStep::Cancelled => {
                prop_assert!(!shell.authorized, "a cancelled order kept its payment");
                prop_assert_eq!(shell.order.status(), OrderStatus::Cancelled);
            }
            step => prop_assert!(false, "not terminal: {:?}", step),
        }
    }
}
