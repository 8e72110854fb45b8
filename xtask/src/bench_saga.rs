//! `cargo xtask bench-saga`: how fast the worker carries orders through the saga, next to the
//! machine's own ceiling, with one and with two workers, and how long an order takes from its
//! `POST` to `confirmed` at half of that speed. Every figure comes from one run, because this
//! machine's speed moves from hour to hour: only ratios within a run compare.
//!
//! - Ceiling: pgbench, 8 clients, one durable one-row insert per transaction: the rate at which
//!   this PostgreSQL commits.
//! - Throughput: a backlog of orders is placed with no worker running, then the workers start and
//!   the time until every order is final is measured (the API is idle meanwhile, so the figure is
//!   the workers').
//! - Cost: committed transactions per order (`pg_stat_database`, placement included, until every
//!   email is out and the outbox is drained) and CPU time per saga of each process (/proc).
//! - Latency: orders placed on a schedule at half the measured throughput; each order's
//!   confirmation time minus its placement time, read from the database.
//! - Memory: each worker's resident set at full throughput, and optionally over a soak.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench::{free_address, fresh_database, pgbench_tps, psql, psql_value, run_load};
use crate::proc_stats::{cpu_of_command, memory_kib, process_tree_cpu};
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
    /// Seconds of paced placing at half load with one worker, its memory sampled (0: none).
    pub(crate) soak_seconds: u64,
    /// Binaries built elsewhere (an earlier version), for a before/after in one sitting.
    pub(crate) binaries: Option<&'a Path>,
}

/// Clients of the ceiling's pgbench run, as the goal names it.
const CEILING_CLIENTS: u16 = 8;
/// Seconds of the ceiling's pgbench run.
const CEILING_SECONDS: u64 = 10;

pub(crate) fn bench_saga(bench: &SagaBench<'_>) -> Result<()> {
    services::ensure_postgres(bench.database_url)?;
    services::ensure_rabbitmq(bench.amqp_url)?;
    let mut supervisor = Supervisor::default();
    services::ensure_mail_catcher(bench.smtp_url, crate::suite::MAIL_UI_PORT, &mut supervisor)?;
    let bin = match bench.binaries {
        Some(dir) => dir.to_path_buf(),
        None => workspace::build_release()?,
    };
    let database = fresh_database(bench.database_url, "orion_bench_saga")?;
    let run = Run {
        bin,
        database: database.to_string(),
        amqp_url: bench.amqp_url.to_owned(),
        smtp_url: bench.smtp_url.to_owned(),
        prefix: format!("bench-{}.", std::process::id()),
    };

    let api_address = free_address()?;
    let mut api = run.command("orion-api");
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
        &run.database,
        "update inventory_items set available = available + 1000000, received = received + 1000000",
    )?;

    let ceiling = commit_ceiling(&run.database)?;
    let mut results = Vec::new();
    for workers in [1u32, 2] {
        results.push(run.drain_and_pace(&mut supervisor, &api_address, workers, bench)?);
    }
    // The figures before the soak, which may take a while.
    println!();
    println!(
        "ceiling: pgbench {CEILING_CLIENTS} clients, one-row insert per transaction: {ceiling:.1} commits/s"
    );
    for result in &results {
        println!("{}", result.line(ceiling));
    }
    if let [one, two] = results.as_slice() {
        println!(
            "two workers / one worker = {:.2}",
            two.sagas_per_second / one.sagas_per_second
        );
    }
    if bench.soak_seconds > 0 {
        let rate = results[0].sagas_per_second / 2.0;
        let soak = run.soak(&mut supervisor, &api_address, rate, bench.soak_seconds)?;
        println!("{soak}");
    }
    supervisor.stop_all();
    Ok(())
}

/// One run's processes and their shared settings.
struct Run {
    bin: PathBuf,
    database: String,
    amqp_url: String,
    smtp_url: String,
    prefix: String,
}

/// What one worker count achieved.
struct Drain {
    workers: u32,
    backlog: u64,
    drained_seconds: f64,
    sagas_per_second: f64,
    not_confirmed: String,
    commits_per_order: f64,
    cpu_ms_per_saga: Vec<(&'static str, f64)>,
    worker_rss_kib: Vec<u64>,
    paced_rate: f64,
    paced: String,
}

impl Drain {
    fn line(&self, ceiling: f64) -> String {
        let cpu = self
            .cpu_ms_per_saga
            .iter()
            .map(|(name, ms)| format!("{name}={ms:.2}"))
            .collect::<Vec<_>>()
            .join(" ");
        let rss = self
            .worker_rss_kib
            .iter()
            .map(|kib| format!("{:.1}", *kib as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(",");
        format!(
            "workers={} backlog={} drained_s={:.1} sagas_per_s={:.1} ratio_to_ceiling={:.3} not_confirmed={} commits_per_order={:.2}\n  cpu_ms_per_saga: {cpu}\n  worker_rss_mib at full throughput: {rss}\n  paced at {:.1} orders/s (half): {}",
            self.workers,
            self.backlog,
            self.drained_seconds,
            self.sagas_per_second,
            self.sagas_per_second / ceiling,
            self.not_confirmed,
            self.commits_per_order,
            self.paced_rate,
            self.paced,
        )
    }
}

impl Run {
    fn command(&self, binary: &str) -> Command {
        let mut command = Command::new(self.bin.join(binary));
        command
            .env("ORION_ENV", "dev")
            .env("ORION_DATABASE_URL", &self.database)
            .env("ORION_AMQP_URL", &self.amqp_url)
            .env("ORION_AMQP_PREFIX", &self.prefix)
            .env("ORION_SMTP_URL", &self.smtp_url)
            .env("RUST_LOG", "warn");
        command
    }

    fn start_workers(&self, supervisor: &mut Supervisor, workers: u32) -> Result<Vec<u32>> {
        let mut pids = Vec::new();
        for n in 0..workers {
            let address = free_address()?;
            let mut worker = self.command("orion-worker");
            worker.env("ORION_LISTEN", &address);
            let name = format!("worker-{n}");
            supervisor.spawn(&name, worker)?;
            supervisor.wait_healthy(&name, &address, "/health/live", Duration::from_secs(60))?;
            pids.extend(supervisor.pid(&name));
        }
        Ok(pids)
    }

    fn stop_workers(supervisor: &mut Supervisor, workers: u32) {
        for n in 0..workers {
            supervisor.stop(&format!("worker-{n}"));
        }
    }

    fn drain_and_pace(
        &self,
        supervisor: &mut Supervisor,
        api_address: &str,
        workers: u32,
        bench: &SagaBench<'_>,
    ) -> Result<Drain> {
        step(&format!(
            "backlog: placing orders for {} s with no worker",
            bench.backlog_seconds
        ));
        let commits_before = self.commits()?;
        let since = psql_value(&self.database, "select now()")?;
        load(&self.bin, api_address, 8, bench.backlog_seconds, None)?;
        let backlog: u64 = psql_value(
            &self.database,
            &format!("select count(*) from orders where created_at >= '{since}'"),
        )?
        .parse()?;
        step(&format!("{workers} worker(s) drain {backlog} orders"));
        // Every process is measured from here: what the API does meanwhile is its share of the
        // saga (answering nothing, relaying events), not of the placing.
        let api_pid = supervisor.pid("api").context("the API is not running")?;
        let mail_pid = supervisor.pid("mail");
        let cpu_before = Cpu::read(api_pid, &[], mail_pid);
        let started = Instant::now();
        let worker_pids = self.start_workers(supervisor, workers)?;
        self.wait_until_final(&since)?;
        let drained_seconds = started.elapsed().as_secs_f64();
        let cpu_after = Cpu::read(api_pid, &worker_pids, mail_pid);
        let worker_rss_kib = worker_pids
            .iter()
            .filter_map(|pid| memory_kib(&pid.to_string(), "VmRSS"))
            .collect();
        let not_confirmed = psql_value(
            &self.database,
            &format!(
                "select count(*) from orders where created_at >= '{since}' and status <> 'confirmed'"
            ),
        )?;
        self.wait_until_settled(&since)?;
        let commits_per_order = (self.commits()? - commits_before) as f64 / backlog.max(1) as f64;
        let sagas_per_second = backlog as f64 / drained_seconds;

        let paced_rate = sagas_per_second / 2.0;
        step(&format!(
            "latency: {paced_rate:.1} orders/s for {} s with {workers} worker(s)",
            bench.latency_seconds
        ));
        let since = psql_value(&self.database, "select now()")?;
        load(
            &self.bin,
            api_address,
            8,
            bench.latency_seconds,
            Some(paced_rate),
        )?;
        self.wait_until_final(&since)?;
        let paced = self.confirmation_latency(&since)?;
        Self::stop_workers(supervisor, workers);
        Ok(Drain {
            workers,
            backlog,
            drained_seconds,
            sagas_per_second,
            not_confirmed,
            commits_per_order,
            cpu_ms_per_saga: cpu_after.per_saga(&cpu_before, backlog),
            worker_rss_kib,
            paced_rate,
            paced,
        })
    }

    /// One worker under a steady half load for `seconds`, its resident memory sampled.
    fn soak(
        &self,
        supervisor: &mut Supervisor,
        api_address: &str,
        rate: f64,
        seconds: u64,
    ) -> Result<String> {
        step(&format!(
            "soak: {rate:.1} orders/s for {seconds} s with one worker"
        ));
        let pid = self.start_workers(supervisor, 1)?[0].to_string();
        let sampler = {
            let pid = pid.clone();
            std::thread::spawn(move || {
                let end = Instant::now() + Duration::from_secs(seconds);
                let mut samples = Vec::new();
                while Instant::now() < end {
                    samples.extend(memory_kib(&pid, "VmRSS"));
                    std::thread::sleep(Duration::from_secs(30));
                }
                samples
            })
        };
        let since = psql_value(&self.database, "select now()")?;
        // orion-load measures at most 600 s at a time.
        let mut left = seconds;
        while left > 0 {
            let part = left.min(600);
            load(&self.bin, api_address, 8, part, Some(rate))?;
            left -= part;
        }
        let samples = sampler.join().unwrap_or_default();
        self.wait_until_final(&since)?;
        let latency = self.confirmation_latency(&since)?;
        let hwm = memory_kib(&pid, "VmHWM").unwrap_or(0);
        Self::stop_workers(supervisor, 1);
        let mib = samples
            .iter()
            .map(|kib| format!("{:.1}", *kib as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(" ");
        Ok(format!(
            "soak {seconds} s at {rate:.1} orders/s, one worker: {latency}\n  worker_rss_mib every 30 s: {mib}\n  worker peak rss_mib={:.1}",
            hwm as f64 / 1024.0
        ))
    }

    /// Transactions committed in the benchmark's database so far. A session that has just been
    /// busy hands its counts to the view within ten seconds of going idle (PostgreSQL's idle
    /// statistics interval), hence the pause; the few background commits meanwhile count too.
    fn commits(&self) -> Result<u64> {
        std::thread::sleep(Duration::from_secs(11));
        Ok(psql_value(
            &self.database,
            "select xact_commit from pg_stat_database where datname = current_database()",
        )?
        .parse()?)
    }

    /// Waits until every order placed since `since` is final.
    fn wait_until_final(&self, since: &str) -> Result<()> {
        self.wait_for_zero(
            &format!(
                "select count(*) from orders where created_at >= '{since}' and status not in ('confirmed', 'failed', 'cancelled')"
            ),
            "orders still not final",
        )
    }

    /// Waits until everything the orders since `since` caused is done: both emails of each out,
    /// and the outbox drained.
    fn wait_until_settled(&self, since: &str) -> Result<()> {
        self.wait_for_zero(
            &format!(
                "select (select count(*) from orders o where o.created_at >= '{since}' and \
                   (select count(*) from email_deliveries d where d.order_id = o.id and d.status in ('sent', 'failed')) < 2) \
                 + (select count(*) from outbox where published_at is null)"
            ),
            "emails or events still not out",
        )
    }

    fn wait_for_zero(&self, sql: &str, what: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let pending: u64 = psql_value(&self.database, sql)?.parse()?;
            if pending == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{pending} {what} after 10 minutes");
            }
            // Polled slowly: each poll is a transaction of its own in the commit count.
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// p50 and p99 of POST → `confirmed` of the orders placed since `since`.
    fn confirmation_latency(&self, since: &str) -> Result<String> {
        let percentiles = psql_value(
            &self.database,
            &format!(
                "select count(*) || ' ' || \
                 round((percentile_cont(0.5) within group (order by extract(epoch from updated_at - created_at)) * 1000)::numeric, 1) || ' ' || \
                 round((percentile_cont(0.99) within group (order by extract(epoch from updated_at - created_at)) * 1000)::numeric, 1) \
                 from orders where created_at >= '{since}' and status = 'confirmed'"
            ),
        )?;
        let mut parts = percentiles.split_whitespace();
        Ok(format!(
            "confirmed={} post_to_confirmed_p50_ms={} p99_ms={}",
            parts.next().unwrap_or("0"),
            parts.next().unwrap_or("?"),
            parts.next().unwrap_or("?"),
        ))
    }
}

/// CPU time of every process a saga touches, at one moment.
struct Cpu {
    parts: Vec<(&'static str, Duration)>,
}

impl Cpu {
    fn read(api: u32, workers: &[u32], mail: Option<u32>) -> Cpu {
        let workers = workers
            .iter()
            .filter_map(|pid| process_tree_cpu(*pid))
            .sum();
        let mail = match mail {
            Some(pid) => process_tree_cpu(pid),
            // A mail catcher someone else started: the machine's Node.js processes.
            None => cpu_of_command("node"),
        };
        Cpu {
            parts: vec![
                ("api", process_tree_cpu(api).unwrap_or_default()),
                ("worker", workers),
                ("postgres", cpu_of_command("postgres").unwrap_or_default()),
                ("rabbitmq", cpu_of_command("beam.smp").unwrap_or_default()),
                ("mail", mail.unwrap_or_default()),
            ],
        }
    }

    /// Milliseconds of CPU per saga of each process between `before` and now, and their sum.
    fn per_saga(&self, before: &Cpu, sagas: u64) -> Vec<(&'static str, f64)> {
        let sagas = sagas.max(1) as f64;
        let mut parts: Vec<(&'static str, f64)> = self
            .parts
            .iter()
            .zip(&before.parts)
            .map(|((name, after), (_, before))| {
                (
                    *name,
                    after.saturating_sub(*before).as_secs_f64() * 1e3 / sagas,
                )
            })
            .collect();
        let total = parts.iter().map(|(_, ms)| ms).sum();
        parts.push(("total", total));
        parts
    }
}

/// The machine's durable commit rate: pgbench with 8 clients, each transaction one inserted row.
fn commit_ceiling(database: &str) -> Result<f64> {
    step(&format!(
        "ceiling: pgbench, {CEILING_CLIENTS} clients, one-row insert per transaction, {CEILING_SECONDS} s"
    ));
    psql(
        database,
        "drop table if exists bench_commit; create table bench_commit (id bigserial primary key, at timestamptz not null default now())",
    )?;
    let scratch = workspace::target_dir()?;
    std::fs::create_dir_all(&scratch)?;
    let script = scratch.join("bench-commit.sql");
    std::fs::write(&script, "insert into bench_commit default values;\n")
        .with_context(|| format!("cannot write {}", script.display()))?;
    let tps = pgbench_tps(|command| {
        command
            .args(["-c", &CEILING_CLIENTS.to_string()])
            .args(["-T", &CEILING_SECONDS.to_string()])
            .arg("-f")
            .arg(&script)
            .arg(database)
    })?;
    psql(database, "drop table bench_commit")?;
    Ok(tps)
}

fn load(
    bin: &Path,
    address: &str,
    concurrency: u16,
    seconds: u64,
    rate: Option<f64>,
) -> Result<()> {
    let line = run_load(
        bin,
        address,
        "place-order",
        concurrency,
        seconds,
        Some(0),
        rate,
    )?;
    println!("    {line}");
    Ok(())
}
