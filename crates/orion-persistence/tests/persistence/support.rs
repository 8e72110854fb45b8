//! Seed helpers shared by the persistence tests.

use orion_domain::{
    Currency, CustomerId, Email, InventoryItem, Money, Order, OrderId, OrderLine, Quantity, Sku,
};
use orion_persistence::{PgConnection, inventory, orders, users};
use time::OffsetDateTime;
use uuid::Uuid;

pub(crate) fn sku(raw: &str) -> Sku {
    Sku::parse(raw).expect("valid sku")
}

pub(crate) fn qty(n: u32) -> Quantity {
    Quantity::parse(i64::from(n)).expect("valid quantity")
}

pub(crate) fn usd(cents: i64) -> Money {
    Money::new(cents, Currency::USD).expect("valid money")
}

pub(crate) async fn customer(conn: &mut PgConnection) -> CustomerId {
    let id = Uuid::now_v7();
    let email = Email::parse(&format!("c-{id}@example.com")).expect("valid email");
    users::insert_user(
        conn,
        &users::NewUser {
            id,
            email: &email,
            name: "Test Customer",
            password_hash: "x",
            role: "customer",
        },
    )
    .await
    .expect("insert customer");
    CustomerId::from_uuid(id)
}

pub(crate) async fn item(conn: &mut PgConnection, code: &str, stock: u32) -> InventoryItem {
    let item = InventoryItem::new(sku(code), format!("Item {code}"), usd(250), stock, 2);
    inventory::insert_item(conn, &item)
        .await
        .expect("insert item");
    item
}

/// Places and stores an order for `lines` of (sku, quantity).
pub(crate) async fn order(
    conn: &mut PgConnection,
    customer: CustomerId,
    lines: &[(&str, u32)],
) -> Order {
    let lines = lines
        .iter()
        .map(|&(code, n)| OrderLine {
            sku: sku(code),
            name: format!("Item {code}"),
            quantity: qty(n),
            unit_price: usd(250),
        })
        .collect();
    let (order, _) = Order::place(OrderId::new(), customer, lines, OffsetDateTime::now_utc())
        .expect("valid order");
    orders::insert_order(conn, &order, None)
        .await
        .expect("insert order");
    order
}
