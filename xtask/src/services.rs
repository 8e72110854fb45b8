//! The services Orion needs on this machine: PostgreSQL, RabbitMQ and a mail catcher. Each is
//! used if it already answers, started if it is installed but stopped, and installed from the
//! distribution's packages (or npm, for the mail catcher) on a fresh machine.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::supervisor::Supervisor;
use crate::workspace;

/// The mail catcher's pinned version: SMTP on one port, a web UI and a REST API on another.
const MAILDEV: &str = "maildev@2.2.1";

/// Host and port of a service, taken from its URL.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Endpoint {
    pub(crate) fn from_url(raw: &str) -> Result<Self> {
        let url = url::Url::parse(raw).with_context(|| format!("invalid URL {raw:?}"))?;
        let host = url
            .host_str()
            .context("URL has no host")?
            .trim_matches(['[', ']'])
            .to_owned();
        let port = url
            .port_or_known_default()
            .or_else(|| default_port(url.scheme()))
            .context("URL has no port")?;
        Ok(Self { host, port })
    }

    pub(crate) fn is_local(&self) -> bool {
        matches!(self.host.as_str(), "127.0.0.1" | "localhost" | "::1")
    }

    /// A TCP connection can be opened.
    pub(crate) fn is_open(&self) -> bool {
        let Ok(addresses) = (self.host.as_str(), self.port).to_socket_addrs() else {
            return false;
        };
        addresses
            .into_iter()
            .any(|a| TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_ok())
    }

    fn wait_open(&self, what: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.is_open() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        bail!("{what} did not open {self} within {} s", timeout.as_secs())
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "postgres" | "postgresql" => Some(5432),
        "amqp" => Some(5672),
        "smtp" => Some(25),
        _ => None,
    }
}

pub(crate) fn step(message: &str) {
    println!("==> {message}");
}

fn done(message: &str) {
    println!("    ok: {message}");
}

/// Finds a program on PATH or in the sbin/lib folders where Debian puts server binaries.
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(
        [
            "/usr/sbin",
            "/sbin",
            "/usr/local/sbin",
            "/usr/lib/rabbitmq/bin",
        ]
        .map(PathBuf::from),
    );
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

fn quiet(command: &mut Command) -> &mut Command {
    command.stdout(Stdio::null()).stderr(Stdio::null())
}

/// Installs Debian packages, or explains how to when that is not possible here.
pub(crate) fn apt_install(packages: &[&str], why: &str) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "{why} is missing and installing it needs root; run: sudo apt-get install -y {}",
            packages.join(" ")
        );
    }
    if find_program("apt-get").is_none() {
        bail!(
            "{why} is missing and this machine has no apt-get; install {} with its package manager",
            packages.join(" ")
        );
    }
    step(&format!(
        "installing {} from the distribution's packages: {why}",
        packages.join(", ")
    ));
    workspace::run(
        Command::new("apt-get").arg("update").arg("-q"),
        "apt-get update",
    )?;
    workspace::run(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        &format!("apt-get install {}", packages.join(" ")),
    )
}

/// PostgreSQL answering at the database URL's address.
pub(crate) fn ensure_postgres(database_url: &str) -> Result<()> {
    let endpoint = Endpoint::from_url(database_url)?;
    step(&format!("PostgreSQL at {endpoint}"));
    if endpoint.is_open() {
        done("already running");
        return Ok(());
    }
    if !endpoint.is_local() {
        bail!(
            "PostgreSQL at {endpoint} does not answer; start it, or point ORION_DATABASE_URL at one that does"
        );
    }
    let mut installed_here = false;
    if find_program("pg_ctlcluster").is_none() {
        apt_install(&["postgresql"], "PostgreSQL")?;
        installed_here = true;
    }
    start_postgres_clusters()?;
    if installed_here {
        trust_local_connections()?;
    }
    endpoint.wait_open("PostgreSQL", Duration::from_secs(60))?;
    done("started");
    Ok(())
}

fn start_postgres_clusters() -> Result<()> {
    let output = Command::new("pg_lsclusters")
        .arg("--no-header")
        .output()
        .context("cannot run pg_lsclusters")?;
    let listing = String::from_utf8_lossy(&output.stdout);
    let clusters: Vec<(String, String)> = listing
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            Some((fields.next()?.to_owned(), fields.next()?.to_owned()))
        })
        .collect();
    if clusters.is_empty() {
        bail!(
            "PostgreSQL is installed but has no cluster; create one with: pg_createcluster --start <version> main"
        );
    }
    for (version, name) in clusters {
        // A cluster that is already up makes this fail harmlessly; the port check decides.
        let _ = quiet(Command::new("pg_ctlcluster").args([
            "--skip-systemctl-redirect",
            &version,
            &name,
            "start",
        ]))
        .status();
    }
    Ok(())
}

/// A fresh Debian install asks for passwords over TCP; the local defaults connect as `postgres`
/// without one, as a development machine does. Only done for a server this command installed.
fn trust_local_connections() -> Result<()> {
    let output = Command::new("runuser")
        .args(["-u", "postgres", "--", "psql", "-tAc", "show hba_file"])
        .output()
        .context("cannot ask PostgreSQL for its pg_hba.conf")?;
    let hba = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if hba.is_empty() {
        bail!("cannot find pg_hba.conf; allow local trust connections by hand");
    }
    let current = std::fs::read_to_string(&hba).with_context(|| format!("cannot read {hba}"))?;
    let trusted = "host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n";
    std::fs::write(
        &hba,
        format!("# Added for local development by Orion's setup.\n{trusted}{current}"),
    )
    .with_context(|| format!("cannot write {hba}"))?;
    workspace::run(
        Command::new("runuser").args([
            "-u",
            "postgres",
            "--",
            "psql",
            "-qc",
            "select pg_reload_conf()",
        ]),
        "reloading PostgreSQL",
    )
}

/// RabbitMQ answering at the AMQP URL's address, with its management API (through which the
/// worker puts the queue policies in place) when the broker is this machine's.
pub(crate) fn ensure_rabbitmq(amqp_url: &str) -> Result<()> {
    let endpoint = Endpoint::from_url(amqp_url)?;
    step(&format!("RabbitMQ at {endpoint}"));
    if endpoint.is_open() {
        done("already running");
    } else {
        if !endpoint.is_local() {
            bail!(
                "RabbitMQ at {endpoint} does not answer; start it, or point ORION_AMQP_URL at one that does"
            );
        }
        if find_program("rabbitmq-server").is_none() {
            apt_install(&["rabbitmq-server"], "RabbitMQ")?;
        }
        let server = find_program("rabbitmq-server")
            .context("rabbitmq-server not found after installation")?;
        // `-detached` returns at once; the broker takes a few seconds to open its port.
        let _ = quiet(Command::new(server).arg("-detached")).status();
        endpoint.wait_open("RabbitMQ", Duration::from_secs(120))?;
        done("started");
    }
    if endpoint.is_local() {
        ensure_rabbitmq_management(&endpoint)?;
    }
    Ok(())
}

/// The management API's port: the worker's default `ORION_AMQP_MANAGEMENT_URL` uses it.
pub(crate) const MANAGEMENT_PORT: u16 = 15672;

/// The management plugin of the local broker (it ships with RabbitMQ; enabling it is
/// remembered across restarts).
fn ensure_rabbitmq_management(broker: &Endpoint) -> Result<()> {
    let management = Endpoint {
        host: broker.host.clone(),
        port: MANAGEMENT_PORT,
    };
    step(&format!("RabbitMQ management API at {management}"));
    if management.is_open() {
        done("already running");
        return Ok(());
    }
    let plugins = find_program("rabbitmq-plugins").with_context(|| {
        format!(
            "rabbitmq-plugins not found; enable the management plugin of the broker at {broker}"
        )
    })?;
    workspace::run(
        quiet(Command::new(plugins).args(["enable", "rabbitmq_management"])),
        "enabling RabbitMQ's management plugin",
    )?;
    management.wait_open("RabbitMQ's management API", Duration::from_secs(60))?;
    done("enabled");
    Ok(())
}

/// A mail catcher on the SMTP URL's port with its web UI on `ui_port`. Returns true if this
/// command started it (under `supervisor`, which stops it), false if one was already running.
pub(crate) fn ensure_mail_catcher(
    smtp_url: &str,
    ui_port: u16,
    supervisor: &mut Supervisor,
) -> Result<bool> {
    let smtp = Endpoint::from_url(smtp_url)?;
    step(&format!(
        "mail catcher at {smtp} (web UI on port {ui_port})"
    ));
    if smtp.is_open() {
        done("already running");
        return Ok(false);
    }
    if !smtp.is_local() {
        bail!(
            "the SMTP server at {smtp} does not answer; start it, or point ORION_SMTP_URL at one that does"
        );
    }
    let maildev = install_maildev()?;
    let mut command = Command::new(&maildev);
    command.args([
        "--smtp",
        &smtp.port.to_string(),
        "--web",
        &ui_port.to_string(),
        "--ip",
        &smtp.host,
        "--silent",
    ]);
    supervisor.spawn("mail", command)?;
    smtp.wait_open("the mail catcher", Duration::from_secs(30))?;
    Endpoint {
        host: smtp.host.clone(),
        port: ui_port,
    }
    .wait_open("the mail catcher's web UI", Duration::from_secs(30))?;
    done("started");
    Ok(true)
}

/// Node.js and npm, installed from the distribution's packages if either is missing.
fn ensure_node(why: &str) -> Result<()> {
    if find_program("npm").is_none() || find_program("node").is_none() {
        apt_install(&["nodejs", "npm"], why)?;
    }
    Ok(())
}

/// The maildev binary, installed from npm into `.tools/maildev/` with exactly the versions of
/// `xtask/tools/maildev/package-lock.json`, again whenever that lock file changes.
fn install_maildev() -> Result<PathBuf> {
    let source = workspace::root().join("xtask/tools/maildev");
    let target = workspace::root().join(".tools/maildev");
    let binary = target.join("node_modules/.bin/maildev");
    let lock = std::fs::read(source.join("package-lock.json"))
        .context("cannot read xtask/tools/maildev/package-lock.json")?;
    if binary.is_file() && std::fs::read(target.join("package-lock.json")).ok() == Some(lock) {
        return Ok(binary);
    }
    ensure_node("Node.js (for the mail catcher)")?;
    step(&format!(
        "installing {MAILDEV} and its locked dependencies from npm into .tools/maildev (about 60 MB)"
    ));
    std::fs::create_dir_all(&target).context("cannot create .tools/maildev")?;
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(source.join(file), target.join(file))
            .with_context(|| format!("cannot copy {file} into .tools/maildev"))?;
    }
    workspace::run(
        Command::new("npm")
            .args([
                "ci",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "--prefix",
            ])
            .arg(&target),
        "npm ci (maildev)",
    )?;
    if !binary.is_file() {
        bail!("npm installed maildev but {} is missing", binary.display());
    }
    Ok(binary)
}

/// Installs the JavaScript test tools (`@microsoft/signalr`, `playwright-core`, `@redocly/cli`, the
/// TypeScript client generator and compiler, the AsyncAPI parser) from
/// `tests/js/package-lock.json`, again whenever the lock file is newer than the installation.
pub(crate) fn ensure_js_clients() -> Result<()> {
    ensure_node("Node.js (for the hub and browser tests)")?;
    let dir = workspace::root().join("tests/js");
    let installed = dir.join("node_modules/.package-lock.json");
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let current = match (
        modified(&installed),
        modified(&dir.join("package-lock.json")),
    ) {
        (Some(installed), Some(lock)) => installed >= lock,
        _ => false,
    };
    if current {
        return Ok(());
    }
    step(
        "installing the JavaScript test tools (@microsoft/signalr, playwright-core, @redocly/cli, @hey-api/openapi-ts, typescript, @asyncapi/parser) from tests/js/package-lock.json (about 120 MB)",
    );
    workspace::run(
        Command::new("npm")
            .args([
                "ci",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "--prefix",
            ])
            .arg(&dir),
        "npm ci (tests/js)",
    )
}

/// The Chromium the browser test drives headless, installed from Debian's packages if missing.
pub(crate) fn ensure_chromium() -> Result<PathBuf> {
    let find = || {
        ["chromium", "chromium-browser", "google-chrome"]
            .into_iter()
            .find_map(find_program)
    };
    if let Some(found) = find() {
        return Ok(found);
    }
    apt_install(
        &["chromium"],
        "Chromium for the admin panel's browser test (about 80 MB to download, 300 MB installed)",
    )?;
    find().context("chromium was installed but is not on PATH")
}

/// The Python packages of the tests (schemathesis, openapi-python-client, standardwebhooks and
/// everything they pull in), each pinned.
const PYTHON_REQUIREMENTS: &str = "tests/python/requirements.txt";

/// The commands a complete installation has in the venv's `bin/`.
const PYTHON_COMMANDS: [&str; 4] = [
    "python",
    "schemathesis",
    "openapi-python-client",
    "yamllint",
];

/// The Python test tools, installed from PyPI into the venv `.tools/venv` with exactly the
/// versions of `tests/python/requirements.txt`, again whenever that file changes. Returns the
/// venv's folder: its `bin/` holds `python` (with every package importable), `schemathesis`,
/// `openapi-python-client` and `ruff`.
pub(crate) fn install_python_tools() -> Result<PathBuf> {
    let venv = workspace::root().join(".tools/venv");
    let requirements = workspace::root().join(PYTHON_REQUIREMENTS);
    let wanted = std::fs::read(&requirements)
        .with_context(|| format!("cannot read {PYTHON_REQUIREMENTS}"))?;
    let installed = venv.join(".requirements.txt");
    let complete = PYTHON_COMMANDS
        .iter()
        .all(|command| venv.join("bin").join(command).is_file());
    if complete && std::fs::read(&installed).ok() == Some(wanted.clone()) {
        return Ok(venv);
    }
    let python =
        find_program("python3").context("the Python test tools need Python 3; install python3")?;
    step(&format!(
        "installing the Python test tools (schemathesis, openapi-python-client, standardwebhooks, kubernetes-validate, jsonschema, yamllint) and their pinned dependencies ({PYTHON_REQUIREMENTS}) from PyPI into .tools/venv (about 140 MB)"
    ));
    let created = Command::new(&python)
        .args(["-m", "venv", "--clear"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success());
    if !created {
        apt_install(&["python3-venv"], "Python's venv module")?;
        workspace::run(
            Command::new(&python)
                .args(["-m", "venv", "--clear"])
                .arg(&venv),
            "python3 -m venv",
        )?;
    }
    workspace::run(
        Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                // Every package is in the file; nothing may float in behind it.
                "--no-deps",
                "--requirement",
            ])
            .arg(&requirements),
        "pip install (tests/python/requirements.txt)",
    )?;
    if let Some(missing) = PYTHON_COMMANDS
        .iter()
        .find(|command| !venv.join("bin").join(command).is_file())
    {
        bail!("pip installed {PYTHON_REQUIREMENTS} but .tools/venv/bin/{missing} is missing");
    }
    std::fs::write(&installed, wanted).context("cannot mark the Python tools' install")?;
    Ok(venv)
}
