//! Demo data for dev mode: a small catalog with stock. Accounts are seeded by the API, which owns
//! password hashing.

use orion_domain::{Currency, InventoryItem, Money, Sku};
use sqlx::PgConnection;

use crate::Result;

/// The demo catalog: SKU, name, price in cents, initial stock, low-stock threshold.
pub const DEMO_CATALOG: [(&str, &str, i64, u32, u32); 12] = [
    ("SKU-1", "Orion T-shirt", 1999, 100, 10),
    ("SKU-2", "Orion hoodie", 4999, 50, 5),
    ("SKU-3", "Coffee mug", 1299, 200, 20),
    ("SKU-4", "Sticker pack", 499, 500, 50),
    ("SKU-5", "Notebook", 899, 120, 12),
    ("SKU-6", "Water bottle", 2499, 80, 8),
    ("SKU-7", "Canvas tote bag", 1599, 60, 6),
    ("SKU-8", "Baseball cap", 2199, 40, 5),
    ("SKU-9", "Desk mat", 2999, 30, 5),
    ("SKU-10", "Enamel pin", 699, 300, 25),
    ("SKU-11", "Wool socks", 1199, 90, 10),
    ("SKU-12", "Limited poster", 66600, 5, 2),
];

/// Adds the demo items that are missing; leaves existing ones (and their stock) alone.
/// Returns how many were added.
pub async fn seed_catalog(conn: &mut PgConnection) -> Result<u32> {
    let mut added = 0;
    for (sku, name, cents, stock, threshold) in DEMO_CATALOG {
        let item = InventoryItem::new(
            Sku::parse(sku)?,
            name.to_owned(),
            Money::new(cents, Currency::USD)?,
            stock,
            threshold,
        );
        if crate::inventory::insert_item_if_missing(conn, &item).await? {
            added += 1;
        }
    }
    Ok(added)
}
