//! The tasks themselves: `up`, `test` and `sqlx-prepare`.

use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::services::{self, step};
use crate::supervisor::Supervisor;
use crate::workspace;

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/orion";
const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const DEFAULT_SMTP_URL: &str = "smtp://127.0.0.1:1025";
pub(crate) const MAIL_UI_PORT: u16 = 1080;

/// The processes of the suite and their addresses (the design's local defaults).
const API_REPLICAS: [(&str, &str); 2] = [("api-1", "127.0.0.1:8081"), ("api-2", "127.0.0.1:8082")];
const WORKER: &str = "127.0.0.1:8090";
const GATEWAY: &str = "127.0.0.1:8080";
const GATEWAY_HTTPS: &str = "127.0.0.1:8443";
/// The gateway's operations listener (its default).
const GATEWAY_OPS: &str = "127.0.0.1:9080";

/// Service URLs: the `ORION_*` variables when set, else the local defaults.
pub(crate) struct Urls {
    pub(crate) database: String,
    pub(crate) amqp: String,
    pub(crate) smtp: String,
}

impl Urls {
    pub(crate) fn from_env() -> Self {
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        Self {
            database: var("ORION_DATABASE_URL", DEFAULT_DATABASE_URL),
            amqp: var("ORION_AMQP_URL", DEFAULT_AMQP_URL),
            smtp: var("ORION_SMTP_URL", DEFAULT_SMTP_URL),
        }
    }

    /// The same server's maintenance database, where per-test databases are created from.
    fn maintenance_database(&self) -> Result<String> {
        let mut url = url::Url::parse(&self.database).context("invalid ORION_DATABASE_URL")?;
        url.set_path("/postgres");
        Ok(url.to_string())
    }
}

fn provision(urls: &Urls, supervisor: &mut Supervisor) -> Result<()> {
    services::ensure_postgres(&urls.database)?;
    services::ensure_rabbitmq(&urls.amqp)?;
    services::ensure_mail_catcher(&urls.smtp, MAIL_UI_PORT, supervisor)?;
    Ok(())
}

/// Ctrl-C and SIGTERM, as a channel.
fn stop_signal() -> Result<mpsc::Receiver<()>> {
    let (tx, rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .context("cannot install the Ctrl-C handler")?;
    Ok(rx)
}

pub(crate) fn up(release: bool) -> Result<()> {
    let stop = stop_signal()?;
    let urls = Urls::from_env();
    let mut supervisor = Supervisor::default();
    provision(&urls, &mut supervisor)?;

    let bin = if release {
        workspace::build_release()?
    } else {
        // The build `cargo xtask test` makes too: after one, the other compiles nothing.
        step("building the workspace (the same build as `cargo xtask test`)");
        workspace::build_debug()?
    };

    let process = |binary: &str, listen: &str| {
        let mut command = Command::new(bin.join(binary));
        command
            .env("ORION_LISTEN", listen)
            .env("ORION_DATABASE_URL", &urls.database)
            .env("ORION_AMQP_URL", &urls.amqp)
            .env("ORION_SMTP_URL", &urls.smtp);
        command
    };
    // The first replica migrates and seeds; the rest find the work done.
    for (name, address) in API_REPLICAS {
        step(&format!("starting {name} on {address}"));
        let mut api = process("orion-api", address);
        api.env("ORION_INSTANCE_ID", name);
        supervisor.spawn(name, api)?;
        supervisor.wait_healthy(name, address, "/health/ready", Duration::from_secs(60))?;
    }
    step(&format!("starting the worker on {WORKER}"));
    supervisor.spawn("worker", process("orion-worker", WORKER))?;
    supervisor.wait_healthy("worker", WORKER, "/health/ready", Duration::from_secs(60))?;
    step(&format!("starting the gateway on {GATEWAY}"));
    let mut gateway = process("orion-gateway", GATEWAY);
    gateway
        .env("ORION_UPSTREAMS", API_REPLICAS.map(|(_, a)| a).join(","))
        .env("ORION_HTTPS_LISTEN", GATEWAY_HTTPS)
        // The development certificate is generated once and kept with the other local state.
        .env("ORION_TLS_DEV_DIR", workspace::root().join(".run/tls"));
    supervisor.spawn("gateway", gateway)?;
    supervisor.wait_healthy("gateway", GATEWAY, "/health/ready", Duration::from_secs(30))?;

    print_banner(&urls);
    supervisor.run_until(&stop)?;
    step("stopping");
    supervisor.stop_all();
    println!("==> all stopped");
    Ok(())
}

fn print_banner(urls: &Urls) {
    let mail_host = services::Endpoint::from_url(&urls.smtp)
        .map_or_else(|_| "127.0.0.1".to_owned(), |e| e.host);
    println!(
        "\n\
         Orion is running. Press Ctrl-C to stop everything.\n\
         \n\
         \x20 gateway        http://{GATEWAY}   https://{GATEWAY_HTTPS} (self-signed dev certificate)\n\
         \x20                every client goes through it: /api, /hubs, /docs, /admin\n\
         \x20 admin panel    http://{GATEWAY}/admin   (live orders, stock, dead letters)\n\
         \x20 your orders    http://{GATEWAY}/orders  (the customer page emails link to)\n\
         \x20 API docs       http://{GATEWAY}/docs\n\
         \x20 gateway ops    http://{GATEWAY_OPS}/metrics   (and /health/ready with every replica)\n\
         \x20 orion-api #1   http://{api1}   (health: /health/live, /health/ready)\n\
         \x20 orion-api #2   http://{api2}\n\
         \x20 orion-worker   http://{WORKER}/health/ready\n\
         \x20 mail catcher   http://{mail_host}:{MAIL_UI_PORT}   (SMTP {smtp})\n\
         \x20 RabbitMQ       {amqp}\n\
         \x20 PostgreSQL     {database}\n\
         \n\
         Dev accounts:\n\
         \x20 admin      admin@orion.local      / orion-admin-dev\n\
         \x20 customer   customer@orion.local   / orion-customer-dev\n",
        api1 = API_REPLICAS[0].1,
        api2 = API_REPLICAS[1].1,
        smtp = urls.smtp,
        amqp = redact(&urls.amqp),
        database = redact(&urls.database),
    );
}

/// A URL without its password, for printing.
fn redact(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => raw.to_owned(),
    }
}

/// The tools the test run installed for the tests that drive them.
#[derive(Default)]
struct TestTools<'a> {
    chromium: Option<&'a std::path::Path>,
    /// The venv of the Python test tools (`services::install_python_tools`).
    python_venv: Option<&'a std::path::Path>,
    /// `kubectl` and `promtool`, for the deployment checks.
    kubectl: Option<&'a std::path::Path>,
    promtool: Option<&'a std::path::Path>,
}

/// `cargo test` with the environment every test run gets: the services' addresses, offline
/// query data, and none of the developer's own `ORION_*` settings.
fn test_command(urls: &Urls, tools: &TestTools<'_>, args: &[&str]) -> Result<Command> {
    let mut command = workspace::cargo_test();
    command.args(args);
    // The tests build their own configuration; a developer's ORION_* settings must not leak in.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ORION_") {
            command.env_remove(name);
        }
    }
    let mail_host = services::Endpoint::from_url(&urls.smtp)
        .map_or_else(|_| "127.0.0.1".to_owned(), |e| e.host);
    command
        .env("DATABASE_URL", urls.maintenance_database()?)
        .env("ORION_TEST_AMQP_URL", &urls.amqp)
        .env("ORION_TEST_SMTP_URL", &urls.smtp)
        .env(
            "ORION_TEST_MAIL_API",
            format!("http://{mail_host}:{MAIL_UI_PORT}"),
        );
    if let Some(chromium) = tools.chromium {
        command.env("ORION_TEST_CHROMIUM", chromium);
    }
    if let Some(kubectl) = tools.kubectl {
        command.env("ORION_TEST_KUBECTL", kubectl);
    }
    if let Some(promtool) = tools.promtool {
        command.env("ORION_TEST_PROMTOOL", promtool);
    }
    if let Some(venv) = tools.python_venv {
        // The generated-client and webhook tests run their scripts with it.
        command.env("ORION_TEST_PYTHON", venv.join("bin/python"));
    }
    Ok(command)
}

/// The fault suite: Orion's processes under a stream of orders through each fault in turn
/// (`tests/chaos.rs`). It stops PostgreSQL and RabbitMQ, so it runs alone.
pub(crate) fn chaos() -> Result<()> {
    let urls = Urls::from_env();
    let mut supervisor = Supervisor::default();
    provision(&urls, &mut supervisor)?;
    step("the fault suite: every fault in turn under a stream of orders (about 8 minutes)");
    let mut chaos = test_command(
        &urls,
        &TestTools::default(),
        &[
            "--tests",
            "chaos::",
            "--",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ],
    )?;
    let result = workspace::run(&mut chaos, "the fault suite");
    supervisor.stop_all();
    result?;
    println!("==> the fault suite passed");
    Ok(())
}

pub(crate) fn test(cargo_args: &[String]) -> Result<()> {
    let urls = Urls::from_env();
    let mut supervisor = Supervisor::default();
    provision(&urls, &mut supervisor)?;
    crate::leftovers::sweep_test_topologies(&urls.amqp)?;
    services::ensure_js_clients()?;
    let chromium = services::ensure_chromium()?;
    let python_venv = services::install_python_tools()?;
    let kubectl = crate::deploy_tools::kubectl()?;
    let promtool = crate::deploy_tools::promtool()?;
    let tools = TestTools {
        chromium: Some(chromium.as_path()),
        python_venv: Some(python_venv.as_path()),
        kubectl: Some(kubectl.as_path()),
        promtool: Some(promtool.as_path()),
    };
    let test_command = |args: &[&str]| test_command(&urls, &tools, args);
    step("building the workspace and running every test in it");
    let mut all = test_command(&[])?;
    all.args(cargo_args);
    let result = workspace::run(&mut all, "cargo test").and_then(|()| {
        if !cargo_args.is_empty() {
            return Ok(());
        }
        // Tests that disturb what every other test shares (the broker) run alone, afterwards.
        step("running the disruptive tests one at a time");
        let mut alone = test_command(&[
            // The build just made; only test binaries, no doc tests to compile again.
            "--tests",
            "--",
            "--ignored",
            "--test-threads=1",
            // The fault suite has its own command.
            "--skip",
            "chaos::",
        ])?;
        workspace::run(&mut alone, "cargo test (disruptive)")?;
        schemathesis(&urls, &python_venv, &mut supervisor)?;
        crate::fuzz::run_all()
    });
    supervisor.stop_all();
    result?;
    println!("==> all tests passed");
    Ok(())
}

/// Runs schemathesis against a real API replica on a fresh database: every operation of the
/// served OpenAPI document, as an admin, must never answer 5xx nor contradict the document.
fn schemathesis(
    urls: &Urls,
    python_venv: &std::path::Path,
    supervisor: &mut Supervisor,
) -> Result<()> {
    step("schemathesis against the served OpenAPI document");
    let schemathesis = python_venv.join("bin/schemathesis");
    // Built by the test run just before.
    let binary = workspace::target_dir()?.join("debug/orion-api");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let address = format!("127.0.0.1:{port}");
    let mut database = url::Url::parse(&urls.database).context("invalid ORION_DATABASE_URL")?;
    database.set_path(&format!("/orion_schemathesis_{}", std::process::id()));
    let mut api = Command::new(binary);
    api.env("ORION_LISTEN", &address)
        .env("ORION_DATABASE_URL", database.as_str())
        .env("ORION_AMQP_URL", &urls.amqp)
        .env("ORION_LOG_FORMAT", "json")
        // Events stay in this throw-away database's outbox instead of piling up in the broker.
        .env("ORION_OUTBOX_RELAY", "false")
        .env("RUST_LOG", "warn");
    supervisor.spawn("api", api)?;
    supervisor.wait_healthy("api", &address, "/health/ready", Duration::from_secs(60))?;
    let login = crate::http::post_json(
        &address,
        "/api/auth/login",
        &serde_json::json!({"email": "admin@orion.local", "password": "orion-admin-dev"}),
    )?;
    let token = login["access_token"]
        .as_str()
        .context("login gave no access token")?;
    let seed = std::env::var("ORION_SCHEMATHESIS_SEED").unwrap_or_else(|_| "1".to_owned());
    // `positive_data_acceptance` is left out on purpose: business rules rightly refuse some
    // schema-valid requests (unknown SKUs, a wrong password, a second cancellation).
    let result = workspace::run(
        Command::new(schemathesis)
            .arg("run")
            .arg(format!("http://{address}/api-docs/openapi.json"))
            .args([
                "--checks",
                "all",
                "--exclude-checks",
                "positive_data_acceptance",
            ])
            .args([
                "--max-examples",
                "50",
                "--seed",
                &seed,
                "--no-color",
                // One thread: hypothesis compiles code as it generates, and CPython 3.11's parser
                // is not thread-safe ("AST constructor recursion depth mismatch" with two).
                "--workers",
                "1",
            ])
            .arg("--header")
            .arg(format!("Authorization: Bearer {token}"))
            .current_dir(workspace::target_dir()?),
        "schemathesis",
    );
    supervisor.stop_all();
    let _ = Command::new("psql")
        .arg(urls.maintenance_database()?)
        .args([
            "-qc",
            &format!(
                "drop database if exists {}",
                database.path().trim_start_matches('/')
            ),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    result
}

pub(crate) fn sqlx_prepare(check: bool) -> Result<()> {
    let urls = Urls::from_env();
    services::ensure_postgres(&urls.database)?;
    let has_cli = Command::new("cargo")
        .args(["sqlx", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_cli {
        step("installing sqlx-cli");
        workspace::run(
            workspace::cargo().args([
                "install",
                "sqlx-cli",
                "--version",
                "0.9.0",
                "--no-default-features",
                "--features",
                "postgres,rustls",
            ]),
            "cargo install sqlx-cli",
        )?;
    }
    // A scratch database with exactly the migrations of this checkout.
    let mut scratch = url::Url::parse(&urls.database).context("invalid ORION_DATABASE_URL")?;
    scratch.set_path("/orion_sqlx_prepare");
    let scratch = scratch.to_string();
    step("migrating a scratch database for the query macros");
    workspace::run(
        workspace::cargo()
            .args(["sqlx", "database", "reset", "-y", "--source", "migrations"])
            .env("DATABASE_URL", &scratch),
        "sqlx database reset",
    )?;
    step(if check {
        "checking .sqlx/ is current"
    } else {
        "writing .sqlx/"
    });
    let mut prepare = workspace::cargo();
    prepare
        .args(["sqlx", "prepare", "--workspace"])
        .env("DATABASE_URL", &scratch)
        .env_remove("SQLX_OFFLINE");
    if check {
        prepare.arg("--check");
    }
    workspace::run(&mut prepare, "cargo sqlx prepare")
}
