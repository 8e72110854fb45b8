//! The project's two commands.
//!
//! - `cargo xtask up`: makes sure PostgreSQL, RabbitMQ and a mail catcher run (starting or
//!   installing them), builds and starts the gateway, two API replicas and the worker, prints the
//!   URLs and dev accounts, and stops everything on Ctrl-C.
//! - `cargo xtask test`: provisions the same services, then runs every test of the workspace.
//! - `cargo xtask chaos`: the fault suite.

// A command-line tool talks to its user on standard output.
#![allow(clippy::print_stdout)]

mod bench;
mod bench_gateway;
mod bench_saga;
mod deploy_tools;
mod fuzz;
mod http;
mod leftovers;
mod proc_stats;
mod services;
mod suite;
mod supervisor;
mod workspace;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    about = "Run Orion locally, or run all of its tests"
)]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Run the whole suite: gateway, two API replicas, worker, mail catcher, demo data.
    Up {
        /// Build optimised binaries.
        #[arg(long)]
        release: bool,
    },
    /// Provision the services and run every test in the workspace.
    Test {
        /// Extra arguments for `cargo test`, after `--` (a test name filter, say).
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
    /// Run the fault suite: the real processes under a stream of orders through each fault in
    /// turn (PostgreSQL stopped and restarted, RabbitMQ restarted, processes killed, a lost
    /// payment answer, a partition). It stops the shared services, so it runs alone.
    Chaos,
    /// Measure `POST /api/orders` on one replica next to pgbench running the same transaction.
    BenchApi {
        #[arg(long, default_value_t = 16)]
        concurrency: u16,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// Compare orion-gateway with nginx as a reverse proxy over the same two API replicas.
    BenchGateway {
        #[arg(long, default_value_t = 32)]
        concurrency: u16,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Seconds of the one-connection pass that measures the latency a proxy adds.
        #[arg(long, default_value_t = 5)]
        latency_seconds: u64,
    },
    /// Measure the saga: orders per second with one and two workers, and POST-to-confirmed latency.
    BenchSaga {
        /// Seconds of order placing that build the backlog the workers drain.
        #[arg(long, default_value_t = 10)]
        backlog_seconds: u64,
        /// Seconds of steady placing for the latency figures.
        #[arg(long, default_value_t = 10)]
        latency_seconds: u64,
        /// Seconds of steady half load with one worker whose memory is sampled (0: no soak).
        #[arg(long, default_value_t = 0)]
        soak_seconds: u64,
        /// Measure the binaries in this directory instead of building the workspace's (an
        /// earlier version's, for a before/after in one sitting).
        #[arg(long)]
        binaries: Option<std::path::PathBuf>,
    },
    /// Regenerate the offline query data in `.sqlx/` after changing SQL (or `--check` it).
    SqlxPrepare {
        #[arg(long)]
        check: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Task::Up { release } => suite::up(release),
        Task::Test { cargo_args } => suite::test(&cargo_args),
        Task::Chaos => suite::chaos(),
        Task::SqlxPrepare { check } => suite::sqlx_prepare(check),
        Task::BenchApi {
            concurrency,
            seconds,
        } => {
            let urls = suite::Urls::from_env();
            bench::bench_api(&urls.database, &urls.amqp, concurrency, seconds)
        }
        Task::BenchGateway {
            concurrency,
            seconds,
            latency_seconds,
        } => {
            let urls = suite::Urls::from_env();
            bench_gateway::bench_gateway(
                &urls.database,
                &urls.amqp,
                concurrency,
                seconds,
                latency_seconds,
            )
        }
        Task::BenchSaga {
            backlog_seconds,
            latency_seconds,
            soak_seconds,
            binaries,
        } => {
            let urls = suite::Urls::from_env();
            bench_saga::bench_saga(&bench_saga::SagaBench {
                database_url: &urls.database,
                amqp_url: &urls.amqp,
                smtp_url: &urls.smtp,
                backlog_seconds,
                latency_seconds,
                soak_seconds,
                binaries: binaries.as_deref(),
            })
        }
    };
    if let Err(error) = result {
        eprintln!("\nerror: {error:#}");
        std::process::exit(1);
    }
}
