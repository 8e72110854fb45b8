//! `orion-load`: a closed-loop load generator. N workers each send one request, wait for the
//! answer, and send the next, for a fixed time; it reports requests per second and latency
//! percentiles. Bounded in time and in connections, and it only talks to the address it is given.

// A command-line tool reports on standard output.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use serde_json::json;

#[derive(Debug, Parser)]
#[command(
    name = "orion-load",
    about = "Drive an Orion endpoint and report throughput and latency"
)]
struct Args {
    /// Base URL of the API or gateway.
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    url: String,
    /// What each request does.
    #[arg(long, value_enum, default_value = "place-order")]
    scenario: Scenario,
    /// Concurrent workers (and connections).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=512))]
    concurrency: u16,
    /// How long to measure, in seconds, after the warm-up.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=600))]
    duration: u64,
    /// Warm-up, in seconds, not measured.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=60))]
    warmup: u64,
    /// Account to log in with.
    #[arg(long, default_value = "customer@orion.local")]
    email: String,
    #[arg(long, default_value = "orion-customer-dev")]
    password: String,
    /// Requests per second for all workers together, started on a schedule whatever the answers
    /// take (an open loop, as real clients arrive); unset, each worker sends its next request as
    /// soon as the last one is answered.
    #[arg(long)]
    rate: Option<f64>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Scenario {
    /// `POST /api/orders` with one random line of the demo catalog.
    PlaceOrder,
    /// `GET /api/orders` (the caller's first page).
    ListOrders,
    /// `GET /api/inventory/SKU-1`, unauthenticated: a light read through the whole stack.
    InventoryItem,
    /// `GET /health/live`, unauthenticated.
    Live,
}

struct Outcome {
    latencies: Histogram<u64>,
    ok: u64,
    failed: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::from(args.concurrency))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(10))
        .build()?;
    let token = login(&client, &args).await?;

    let warmup_end = Instant::now() + Duration::from_secs(args.warmup);
    let end = warmup_end + Duration::from_secs(args.duration);
    let workers: Vec<_> = (0..args.concurrency)
        .map(|worker| {
            let client = client.clone();
            let url = args.url.clone();
            let token = token.clone();
            let scenario = args.scenario;
            let pace = pace(args.rate, worker, args.concurrency);
            tokio::spawn(async move {
                work(
                    worker, &client, &url, &token, scenario, pace, warmup_end, end,
                )
                .await
            })
        })
        .collect();
    let mut total = Outcome {
        latencies: Histogram::new(3)?,
        ok: 0,
        failed: 0,
    };
    for worker in workers {
        let outcome = worker.await??;
        total.latencies.add(&outcome.latencies)?;
        total.ok += outcome.ok;
        total.failed += outcome.failed;
    }
    report(&args, &total);
    if total.ok == 0 {
        bail!("no request succeeded");
    }
    Ok(())
}

async fn login(client: &reqwest::Client, args: &Args) -> Result<String> {
    let response = client
        .post(format!("{}/api/auth/login", args.url))
        .json(&json!({"email": args.email, "password": args.password}))
        .send()
        .await
        .context("cannot reach the API")?;
    if !response.status().is_success() {
        bail!("login failed: {}", response.status());
    }
    let body: serde_json::Value = response.json().await?;
    body["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("no access token in the login answer")
}

/// Each worker's schedule for a total `rate`, if one is set: the workers' first requests spread
/// over one period, so that they do not arrive in bursts.
fn pace(rate: Option<f64>, worker: u16, concurrency: u16) -> Option<tokio::time::Interval> {
    let rate = rate.filter(|r| r.is_finite() && *r > 0.0)?;
    let period = Duration::from_secs_f64(f64::from(concurrency) / rate);
    let offset = period.mul_f64(f64::from(worker) / f64::from(concurrency));
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
    // A request that took longer than its period delays the schedule; no burst to catch up.
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    Some(interval)
}

#[allow(clippy::too_many_arguments)]
async fn work(
    worker: u16,
    client: &reqwest::Client,
    url: &str,
    token: &str,
    scenario: Scenario,
    mut pace: Option<tokio::time::Interval>,
    warmup_end: Instant,
    end: Instant,
) -> Result<Outcome> {
    let mut outcome = Outcome {
        latencies: Histogram::new(3)?,
        ok: 0,
        failed: 0,
    };
    let mut n: u64 = u64::from(worker);
    while Instant::now() < end {
        if let Some(pace) = pace.as_mut() {
            pace.tick().await;
        }
        n = n
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let request = match scenario {
            Scenario::PlaceOrder => {
                let sku = format!("SKU-{}", 1 + (n >> 33) % 11);
                client
                    .post(format!("{url}/api/orders"))
                    .bearer_auth(token)
                    .json(&json!({"items": [{"sku": sku, "quantity": 1}], "payment_token": "tok_visa"}))
            }
            Scenario::ListOrders => client
                .get(format!("{url}/api/orders?limit=20"))
                .bearer_auth(token),
            Scenario::InventoryItem => client.get(format!("{url}/api/inventory/SKU-1")),
            Scenario::Live => client.get(format!("{url}/health/live")),
        };
        let started = Instant::now();
        let result = request.send().await;
        let ok = match result {
            Ok(response) => {
                let success = response.status().is_success();
                // Read the body: the request is not done until it has arrived.
                let _ = response.bytes().await;
                success
            }
            Err(_) => false,
        };
        if started < warmup_end {
            continue;
        }
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        outcome.latencies.record(micros.max(1))?;
        if ok {
            outcome.ok += 1;
        } else {
            outcome.failed += 1;
        }
    }
    Ok(outcome)
}

fn report(args: &Args, total: &Outcome) {
    let seconds = args.duration as f64;
    let ms = |q: f64| total.latencies.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "scenario={:?} concurrency={} duration={}s ok={} failed={} rps={:.1} p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        args.scenario,
        args.concurrency,
        args.duration,
        total.ok,
        total.failed,
        total.ok as f64 / seconds,
        ms(0.50),
        ms(0.90),
        ms(0.99),
        total.latencies.max() as f64 / 1000.0,
    );
}
