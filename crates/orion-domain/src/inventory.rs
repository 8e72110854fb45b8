//! The `InventoryItem` aggregate: stock of one SKU, held for orders, shipped or restocked.
//!
//! Invariant, checked after every change and by the database: `received = available + reserved +
//! shipped`, where `received` is the initial stock plus everything restocked since.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::{Error, Money, Quantity, Result, Sku};

/// A number of units of one SKU, as an order line asks for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLine {
    pub sku: Sku,
    pub quantity: Quantity,
}

/// A line that could not be reserved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shortage {
    pub sku: Sku,
    pub requested: u32,
    pub available: u32,
}

/// Stock of one SKU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryItem {
    sku: Sku,
    name: String,
    price: Money,
    available: u32,
    reserved: u32,
    shipped: u32,
    received: u32,
    low_stock_threshold: u32,
}

/// The stored counters of an item, for rebuilding it from persistence.
#[derive(Debug, Clone)]
pub struct InventoryParts {
    pub sku: Sku,
    pub name: String,
    pub price: Money,
    pub available: u32,
    pub reserved: u32,
    pub shipped: u32,
    pub received: u32,
    pub low_stock_threshold: u32,
}

impl InventoryItem {
    pub fn new(
        sku: Sku,
        name: String,
        price: Money,
        initial_stock: u32,
        low_stock_threshold: u32,
    ) -> Self {
        Self {
            sku,
            name,
            price,
            available: initial_stock,
            reserved: 0,
            shipped: 0,
            received: initial_stock,
            low_stock_threshold,
        }
    }

    /// Rebuilds an item; `None` if the stored counters break conservation.
    pub fn from_parts(parts: InventoryParts) -> Option<Self> {
        let item = Self {
            sku: parts.sku,
            name: parts.name,
            price: parts.price,
            available: parts.available,
            reserved: parts.reserved,
            shipped: parts.shipped,
            received: parts.received,
            low_stock_threshold: parts.low_stock_threshold,
        };
        item.is_conserved().then_some(item)
    }

    pub fn sku(&self) -> &Sku {
        &self.sku
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn price(&self) -> Money {
        self.price
    }
    pub fn available(&self) -> u32 {
        self.available
    }
    pub fn reserved(&self) -> u32 {
        self.reserved
    }
    pub fn shipped(&self) -> u32 {
        self.shipped
    }
    pub fn received(&self) -> u32 {
        self.received
    }
    pub fn low_stock_threshold(&self) -> u32 {
        self.low_stock_threshold
    }

    /// Stock is conserved: nothing appeared or vanished.
    pub fn is_conserved(&self) -> bool {
        u64::from(self.available) + u64::from(self.reserved) + u64::from(self.shipped)
            == u64::from(self.received)
    }

    /// Available stock is below the threshold.
    pub fn is_low(&self) -> bool {
        self.available < self.low_stock_threshold
    }

    /// True when a change took available stock from at-or-above the threshold to below it, the
    /// moment a low-stock alert is due (once, not on every later sale).
    pub fn crossed_below_threshold(&self, available_before: u32) -> bool {
        available_before >= self.low_stock_threshold && self.is_low()
    }

    /// Moves units from available to reserved.
    pub fn reserve(&mut self, quantity: Quantity) -> Result<()> {
        let q = quantity.get();
        if q > self.available {
            return Err(Error::InsufficientStock {
                sku: self.sku.to_string(),
                requested: q,
                available: self.available,
            });
        }
        let reserved = self
            .reserved
            .checked_add(q)
            .ok_or_else(|| self.overflow())?;
        self.available -= q;
        self.reserved = reserved;
        Ok(())
    }

    /// Gives reserved units back to available.
    pub fn release(&mut self, quantity: Quantity) -> Result<()> {
        let q = self.take_reserved(quantity)?;
        self.available = self
            .available
            .checked_add(q)
            .ok_or_else(|| self.overflow())?;
        self.reserved -= q;
        Ok(())
    }

    /// Reserved units leave the warehouse.
    pub fn ship(&mut self, quantity: Quantity) -> Result<()> {
        let q = self.take_reserved(quantity)?;
        self.shipped = self.shipped.checked_add(q).ok_or_else(|| self.overflow())?;
        self.reserved -= q;
        Ok(())
    }

    /// New units arrive.
    pub fn restock(&mut self, quantity: Quantity) -> Result<()> {
        let q = quantity.get();
        let received = self
            .received
            .checked_add(q)
            .ok_or_else(|| self.overflow())?;
        let available = self
            .available
            .checked_add(q)
            .ok_or_else(|| self.overflow())?;
        // The database stores counters as 32-bit signed integers.
        if received > i32::MAX as u32 {
            return Err(self.overflow());
        }
        self.received = received;
        self.available = available;
        Ok(())
    }

    pub fn set_price(&mut self, price: Money) {
        self.price = price;
    }

    pub fn rename(&mut self, name: String) {
        self.name = name;
    }

    pub fn set_low_stock_threshold(&mut self, threshold: u32) {
        self.low_stock_threshold = threshold;
    }

    fn take_reserved(&self, quantity: Quantity) -> Result<u32> {
        let q = quantity.get();
        if q > self.reserved {
            return Err(Error::ReleaseExceedsReserved {
                sku: self.sku.to_string(),
                requested: q,
                reserved: self.reserved,
            });
        }
        Ok(q)
    }

    fn overflow(&self) -> Error {
        Error::StockOverflow {
            sku: self.sku.to_string(),
        }
    }
}

/// Reserves every line or none: on any shortage, returns all of them and changes nothing.
/// Lines for unknown SKUs count as a shortage with nothing available.
pub fn reserve_all(
    items: &mut [InventoryItem],
    lines: &[StockLine],
) -> std::result::Result<(), Vec<Shortage>> {
    let mut wanted: HashMap<&Sku, u64> = HashMap::new();
    for line in lines {
        *wanted.entry(&line.sku).or_default() += u64::from(line.quantity.get());
    }
    let mut shortages: Vec<Shortage> = wanted
        .iter()
        .filter_map(|(sku, &requested)| {
            let available = items
                .iter()
                .find(|i| &i.sku == *sku)
                .map_or(0, |i| i.available);
            (requested > u64::from(available)).then(|| Shortage {
                sku: (*sku).clone(),
                requested: u32::try_from(requested).unwrap_or(u32::MAX),
                available,
            })
        })
        .collect();
    if !shortages.is_empty() {
        shortages.sort_by(|a, b| a.sku.cmp(&b.sku));
        return Err(shortages);
    }
    for line in lines {
        if let Some(item) = items.iter_mut().find(|i| i.sku == line.sku) {
            // Checked above for the summed quantity, so each single reservation fits.
            item.reserve(line.quantity).map_err(|_| Vec::new())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Currency;
    use proptest::prelude::*;

    fn item(sku: &str, stock: u32) -> InventoryItem {
        InventoryItem::new(
            Sku::parse(sku).unwrap(),
            sku.to_owned(),
            Money::new(100, Currency::USD).unwrap(),
            stock,
            3,
        )
    }

    fn q(n: u32) -> Quantity {
        Quantity::parse(i64::from(n)).unwrap()
    }

    fn line(sku: &str, n: u32) -> StockLine {
        StockLine {
            sku: Sku::parse(sku).unwrap(),
            quantity: q(n),
        }
    }

    #[test]
    fn reserve_release_ship_restock_move_units_between_counters() {
        let mut it = item("A", 10);
        it.reserve(q(4)).unwrap();
        assert_eq!((it.available(), it.reserved()), (6, 4));
        it.release(q(1)).unwrap();
        assert_eq!((it.available(), it.reserved()), (7, 3));
        it.ship(q(3)).unwrap();
        assert_eq!((it.available(), it.reserved(), it.shipped()), (7, 0, 3));
        it.restock(q(5)).unwrap();
        assert_eq!((it.available(), it.received()), (12, 15));
        assert!(it.is_conserved());
    }

    #[test]
    fn cannot_reserve_more_than_available_or_release_more_than_reserved() {
        let mut it = item("A", 2);
        assert!(matches!(
            it.reserve(q(3)),
            Err(Error::InsufficientStock {
                requested: 3,
                available: 2,
                ..
            })
        ));
        assert!(matches!(
            it.release(q(1)),
            Err(Error::ReleaseExceedsReserved { .. })
        ));
        assert!(matches!(
            it.ship(q(1)),
            Err(Error::ReleaseExceedsReserved { .. })
        ));
        assert_eq!(it, item("A", 2));
    }

    #[test]
    fn restock_refuses_to_overflow_the_stored_counter() {
        let mut it = item("A", i32::MAX as u32 - 1);
        assert!(matches!(it.restock(q(2)), Err(Error::StockOverflow { .. })));
        it.restock(q(1)).unwrap();
    }

    #[test]
    fn low_stock_is_crossed_once() {
        let mut it = item("A", 5); // threshold 3
        let before = it.available();
        it.reserve(q(2)).unwrap();
        assert!(!it.crossed_below_threshold(before), "3 is not below 3");
        let before = it.available();
        it.reserve(q(1)).unwrap();
        assert!(it.crossed_below_threshold(before));
        let before = it.available();
        it.reserve(q(1)).unwrap();
        assert!(!it.crossed_below_threshold(before), "already low");
    }

    #[test]
    fn reserve_all_is_all_or_nothing() {
        let mut items = vec![item("A", 5), item("B", 1)];
        let before = items.clone();
        let shortages =
            reserve_all(&mut items, &[line("A", 2), line("B", 2), line("C", 1)]).unwrap_err();
        assert_eq!(items, before);
        let short: Vec<&str> = shortages.iter().map(|s| s.sku.as_str()).collect();
        assert_eq!(short, ["B", "C"]);
        reserve_all(&mut items, &[line("A", 2), line("B", 1)]).unwrap();
        assert_eq!((items[0].available(), items[1].available()), (3, 0));
    }

    #[test]
    fn from_parts_refuses_unconserved_counters() {
        let parts = |received| InventoryParts {
            sku: Sku::parse("A").unwrap(),
            name: "A".into(),
            price: Money::new(1, Currency::USD).unwrap(),
            available: 1,
            reserved: 2,
            shipped: 3,
            received,
            low_stock_threshold: 0,
        };
        assert!(InventoryItem::from_parts(parts(6)).is_some());
        assert!(InventoryItem::from_parts(parts(7)).is_none());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Reserve(u32),
        Release(u32),
        Ship(u32),
        Restock(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1u32..20).prop_map(Op::Reserve),
            (1u32..20).prop_map(Op::Release),
            (1u32..20).prop_map(Op::Ship),
            (1u32..20).prop_map(Op::Restock),
        ]
    }

    proptest! {
        #[test]
        fn random_operations_conserve_stock(initial in 0u32..50, ops in prop::collection::vec(op(), 0..60)) {
            let mut it = item("P", initial);
            let mut restocked = 0u32;
            for op in ops {
                let before = it.clone();
                let result = match op {
                    Op::Reserve(n) => it.reserve(q(n)),
                    Op::Release(n) => it.release(q(n)),
                    Op::Ship(n) => it.ship(q(n)),
                    Op::Restock(n) => it.restock(q(n)).inspect(|_| restocked += n),
                };
                if result.is_err() {
                    prop_assert_eq!(&it, &before, "a refused operation changed the item");
                }
                prop_assert!(it.is_conserved());
                prop_assert_eq!(it.received(), initial + restocked);
                prop_assert!(it.shipped() >= before.shipped(), "shipped units came back");
            }
        }

        #[test]
        fn reserve_all_never_oversells(
            stocks in prop::collection::vec(0u32..10, 1..5),
            wanted in prop::collection::vec((0usize..5, 1u32..8), 1..8),
        ) {
            let names = ["A", "B", "C", "D", "E"];
            let mut items: Vec<InventoryItem> = stocks.iter().enumerate().map(|(i, &s)| item(names[i], s)).collect();
            let lines: Vec<StockLine> = wanted.iter().map(|&(i, n)| line(names[i], n)).collect();
            let before = items.clone();
            match reserve_all(&mut items, &lines) {
                Ok(()) => {
                    for it in &items {
                        let asked: u32 = lines.iter().filter(|l| &l.sku == it.sku()).map(|l| l.quantity.get()).sum();
                        prop_assert_eq!(it.reserved(), asked);
                    }
                    prop_assert!(lines.iter().all(|l| items.iter().any(|i| &l.sku == i.sku())));
                }
                Err(shortages) => {
                    prop_assert!(!shortages.is_empty());
                    prop_assert_eq!(&items, &before);
                }
            }
            prop_assert!(items.iter().all(InventoryItem::is_conserved));
        }
    }
}
