//! End-to-end tests of Orion's processes. This file only lists the modules.

// In a test, a failed unwrap is a failed test with its location; helpers outside `#[test]`
// functions are test code too.
#![allow(clippy::unwrap_used)]

mod api_admin;
mod api_auth;
mod api_authz;
mod api_inventory;
mod api_ops;
mod api_orders;
mod attack;
mod browser;
mod chaos;
mod clients;
mod config;
mod deployment;
mod gateway;
mod hub;
mod key_rotation;
mod lifecycle;
mod resilience;
mod saga;
mod support;
mod traces;
mod webhooks;
