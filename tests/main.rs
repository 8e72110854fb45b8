//! End-to-end tests of Orion's processes. This file only lists the modules.

mod config;
mod lifecycle;
mod support;
