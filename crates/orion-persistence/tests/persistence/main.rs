//! Persistence against a real PostgreSQL: one fresh, migrated database per test.

mod emails;
mod events;
mod inventory;
mod orders;
mod support;
mod users;
