//! `cargo xtask bench-api`: `POST /api/orders` throughput and latency on one API replica, next to
//! pgbench running the same SQL transaction against the same database, in one run.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::services::{self, step};
use crate::supervisor::Supervisor;
use crate::workspace;

pub(crate) fn bench_api(
    database_url: &str,
    amqp_url: &str,
    concurrency: u16,
    seconds: u64,
) -> Result<()> {
    services::ensure_postgres(database_url)?;
    services::ensure_rabbitmq(amqp_url)?;
    let pgbench = Command::new("pgbench")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !pgbench {
        bail!(
            "pgbench is missing; it comes with PostgreSQL's client package (postgresql-client or postgresql-contrib)"
        );
    }
    let bin = workspace::build_release()?;

    let database = fresh_database(database_url, "orion_bench")?;
    let address = free_address()?;
    let mut supervisor = Supervisor::default();
    let mut api = Command::new(bin.join("orion-api"));
    api.env("ORION_LISTEN", &address)
        .env("ORION_DATABASE_URL", database.as_str())
        .env("ORION_AMQP_URL", amqp_url)
        .env("ORION_OUTBOX_RELAY", "false")
        .env("RUST_LOG", "warn");
    supervisor.spawn("api", api)?;
    supervisor.wait_healthy("api", &address, "/health/live", Duration::from_secs(60))?;

    step(&format!(
        "orion-load: POST /api/orders, {concurrency} connections, {seconds} s"
    ));
    let api_line = run_load(
        &bin,
        &address,
        "place-order",
        concurrency,
        seconds,
        None,
        None,
    )?;
    supervisor.stop_all();

    step(&format!(
        "pgbench: the same transaction, {concurrency} clients, {seconds} s"
    ));
    let customer = psql_value(
        database.as_str(),
        "select id from users where email = 'customer@orion.local'",
    )?;
    let script = workspace::root().join("crates/orion-load/pgbench/place_order.sql");
    let logs = workspace::target_dir()?.join("pgbench-logs");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs)?;
    let tps = pgbench_tps(|command| {
        command
            .args(["-l", "--log-prefix"])
            .arg(logs.join("tx"))
            .args(["-c", &concurrency.to_string(), "-T", &seconds.to_string()])
            .arg("-D")
            .arg(format!("customer={customer}"))
            .arg("-f")
            .arg(&script)
            .arg(database.as_str())
            .current_dir(&logs)
    })?;
    let (p50, p99) = pgbench_percentiles(&logs)?;
    let api_rps: f64 = field(&api_line, "rps").unwrap_or(0.0);

    println!("\n{api_line}");
    println!("pgbench same-transaction tps={tps:.1} p50_ms={p50:.2} p99_ms={p99:.2}");
    println!("ratio api/pgbench throughput={:.2}", api_rps / tps);
    let _ = fresh_database(database_url, "orion_bench");
    Ok(())
}

fn field(line: &str, name: &str) -> Option<f64> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}

/// Latency percentiles from pgbench's per-transaction logs (third column, microseconds).
fn pgbench_percentiles(dir: &Path) -> Result<(f64, f64)> {
    let mut latencies: Vec<u64> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let text = std::fs::read_to_string(entry?.path())?;
        latencies.extend(
            text.lines()
                .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok()),
        );
    }
    if latencies.is_empty() {
        bail!("pgbench wrote no transaction log");
    }
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    Ok((at(0.50), at(0.99)))
}

/// Runs pgbench (prepared statements, two threads, no vacuum, then the arguments `configure`
/// adds) and returns its transactions per second.
pub(crate) fn pgbench_tps(configure: impl FnOnce(&mut Command) -> &mut Command) -> Result<f64> {
    let mut command = Command::new("pgbench");
    command.args(["-n", "-M", "prepared", "-j", "2"]);
    let output = configure(&mut command)
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run pgbench (it comes with PostgreSQL's client package)")?;
    let report = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("pgbench failed:\n{report}");
    }
    report
        .lines()
        .find(|l| l.starts_with("tps"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|t| t.parse::<f64>().ok())
        .context("no tps in the pgbench report")
}

pub(crate) fn psql(url: &str, sql: &str) -> Result<()> {
    workspace::run(
        Command::new("psql")
            .arg(url)
            .args(["-qc", sql])
            .stdout(Stdio::null()),
        "psql",
    )
}

pub(crate) fn psql_value(url: &str, sql: &str) -> Result<String> {
    let output = Command::new("psql")
        .arg(url)
        .args(["-tAc", sql])
        .output()
        .context("cannot run psql")?;
    let value = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if value.is_empty() {
        bail!("no answer to: {sql}");
    }
    Ok(value)
}

/// A free local port, as `127.0.0.1:<port>`.
pub(crate) fn free_address() -> Result<String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    Ok(format!("127.0.0.1:{port}"))
}

/// The URL of database `name` on the server of `database_url`, dropped first so a benchmark
/// starts from nothing (the processes create it again).
pub(crate) fn fresh_database(database_url: &str, name: &str) -> Result<url::Url> {
    let mut database = url::Url::parse(database_url).context("invalid ORION_DATABASE_URL")?;
    database.set_path(&format!("/{name}"));
    let mut maintenance = database.clone();
    maintenance.set_path("/postgres");
    psql(
        maintenance.as_str(),
        &format!("drop database if exists {name}"),
    )?;
    Ok(database)
}

/// Runs `orion-load` against `address` and returns its one-line report.
pub(crate) fn run_load(
    bin: &Path,
    address: &str,
    scenario: &str,
    concurrency: u16,
    seconds: u64,
    warmup: Option<u64>,
    rate: Option<f64>,
) -> Result<String> {
    let mut command = Command::new(bin.join("orion-load"));
    command
        .args([
            "--url",
            &format!("http://{address}"),
            "--scenario",
            scenario,
        ])
        .args(["--concurrency", &concurrency.to_string()])
        .args(["--duration", &seconds.to_string()]);
    if let Some(warmup) = warmup {
        command.args(["--warmup", &warmup.to_string()]);
    }
    if let Some(rate) = rate {
        command.args(["--rate", &format!("{rate:.1}")]);
    }
    let output = command.output().context("cannot run orion-load")?;
    let line = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() {
        bail!(
            "orion-load failed: {line} {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(line)
}
