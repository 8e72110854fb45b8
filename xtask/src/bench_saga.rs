//! `cargo xtask bench-saga`: how fast the worker carries orders through the saga, with one and
//! with two workers, and how long an order takes from its `POST` to `confirmed`.
//!
//! Throughput: a backlog of orders is placed with no worker running, then the workers start and
//! the time until every order is final is measured (the API is idle meanwhile, so the figure is
//! the workers'). Latency: with the workers running, orders are placed at a steady pace and each
//! order's confirmation time minus its placement time is read from the database.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::bench::{free_address, fresh_database, psql, psql_value, run_load};
use crate::services::{self, step};
use crate::supervisor::Supervisor;
use crate::workspace;

pub(crate) struct SagaBench<'a> {
    pub(crate) database_url: &'a str,
    pub(crate) amqp_url: &'a str,
    pub(crate) smtp_url: &'a str,
    /// Seconds of order placing that make the backlog.
    pub(crate) backlog_seconds: u64,
    /// Seconds of paced placing for the latency figure.
    pub(crate) latency_seconds: u64,
}

pub(crate) fn bench_saga(bench: &SagaBench<'_>) -> Result<()> {
    services::ensure_postgres(bench.database_url)?;
    services::ensure_rabbitmq(bench.amqp_url)?;
    let mut supervisor = Supervisor::default();
    services::ensure_mail_catcher(bench.smtp_url, crate::suite::MAIL_UI_PORT, &mut supervisor)?;
    let bin = workspace::build_release()?;
    let database = fresh_database(bench.database_url, "orion_bench_saga")?;
    let prefix = format!("bench-{}.", std::process::id());
    let env = |command: &mut Command| {
        command
            .env("ORION_DATABASE_URL", database.as_str())
            .env("ORION_AMQP_URL", bench.amqp_url)
            .env("ORION_AMQP_PREFIX", &prefix)
            .env("ORION_SMTP_URL", bench.smtp_url)
            .env("RUST_LOG", "warn");
    };

    let api_address = free_address()?;
    let mut api = Command::new(bin.join("orion-api"));
    env(&mut api);
    api.env("ORION_LISTEN", &api_address);
    supervisor.spawn("api", api)?;
    supervisor.wait_healthy(
        "api",
        &api_address,
        "/health/ready",
        Duration::from_secs(60),
    )?;
    // Enough stock that every order is confirmed: the figure is of the whole saga.
    psql(
        database.as_str(),
        "update inventory_items set available = available + 1000000, received = received + 1000000",
    )?;

    let mut lines = Vec::new();
    for workers in [1u32, 2] {
        step(&format!(
            "backlog: placing orders for {} s with no worker",
            bench.backlog_seconds
        ));
        let since = psql_value(database.as_str(), "select now()")?;
        load(&bin, &api_address, 8, bench.backlog_seconds)?;
        let backlog: u64 = psql_value(
            database.as_str(),
            &format!("select count(*) from orders where created_at >= '{since}'"),
        )?
        .parse()?;
        step(&format!("{workers} worker(s) drain {backlog} orders"));
        let started = Instant::now();
        let mut worker_addresses = Vec::new();
        for n in 0..workers {
            let address = free_address()?;
            let mut worker = Command::new(bin.join("orion-worker"));
            env(&mut worker);
            worker.env("ORION_LISTEN", &address);
            supervisor.spawn(&format!("worker-{n}"), worker)?;
            worker_addresses.push(address);
        }
        wait_until_final(database.as_str(), &since)?;
        let drained = started.elapsed().as_secs_f64();
        let failed = psql_value(
            database.as_str(),
            &format!(
                "select count(*) from orders where created_at >= '{since}' and status <> 'confirmed'"
            ),
        )?;

        step(&format!(
            "latency: steady orders for {} s with {workers} worker(s)",
            bench.latency_seconds
        ));
        let since = psql_value(database.as_str(), "select now()")?;
        load(&bin, &api_address, 2, bench.latency_seconds)?;
        wait_until_final(database.as_str(), &since)?;
        let percentiles = psql_value(
            database.as_str(),
            &format!(
                "select count(*) || ' ' || \
                 round((percentile_cont(0.5) within group (order by extract(epoch from updated_at - created_at)) * 1000)::numeric, 1) || ' ' || \
                 round((percentile_cont(0.99) within group (order by extract(epoch from updated_at - created_at)) * 1000)::numeric, 1) \
                 from orders where created_at >= '{since}' and status = 'confirmed'"
            ),
        )?;
        let mut parts = percentiles.split_whitespace();
        let (count, p50, p99) = (
            parts.next().unwrap_or("0").to_owned(),
            parts.next().unwrap_or("?").to_owned(),
            parts.next().unwrap_or("?").to_owned(),
        );
        for n in 0..workers {
            supervisor.stop(&format!("worker-{n}"));
        }
        lines.push(format!(
            "workers={workers} backlog={backlog} drained_s={drained:.1} sagas_per_s={:.1} not_confirmed={failed} | steady: confirmed={count} post_to_confirmed_p50_ms={p50} p99_ms={p99}",
            backlog as f64 / drained
        ));
    }
    supervisor.stop_all();
    println!();
    for line in &lines {
        println!("{line}");
    }
    Ok(())
}

/// Waits until every order placed since `since` is final.
fn wait_until_final(database: &str, since: &str) -> Result<()> {
    let pending_sql = format!(
        "select count(*) from orders where created_at >= '{since}' and status not in ('confirmed', 'failed', 'cancelled')"
    );
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let pending: u64 = psql_value(database, &pending_sql)?.parse()?;
        if pending == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{pending} orders still not final after 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn load(bin: &std::path::Path, address: &str, concurrency: u16, seconds: u64) -> Result<()> {
    let line = run_load(bin, address, "place-order", concurrency, seconds, Some(0))?;
    println!("    {line}");
    Ok(())
}
