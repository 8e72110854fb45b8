//! The payment provider the worker uses: Orion's deterministic simulator (declines 666.00 and
//! `tok_decline*` tokens). The saga shell adds the configured latency.

pub use orion_domain::SimulatedPayments as SimulatedProvider;
