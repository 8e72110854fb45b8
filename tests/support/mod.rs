//! The shared harness: Orion's processes started in-process on port 0, each against its own
//! fresh database, and stopped through the same graceful path as SIGTERM.

mod app;

pub(crate) use app::{Running, database_url, signal};
