//! `cargo xtask bench-gateway`: the same load through orion-gateway and through nginx configured
//! as an equal reverse proxy (HTTP/1.1 keep-alive to the same two API replicas), and straight to
//! one replica, in one run: throughput at `concurrency` connections (where the proxies compete
//! for the two cores with the replicas, the database and the load generator), then latency with
//! one connection (what a proxy adds to a request when nothing waits).

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::bench::{free_address, fresh_database, run_load};
use crate::proc_stats::{memory_kib, process_tree_cpu};
use crate::services::{self, step};
use crate::supervisor::Supervisor;
use crate::workspace;

pub(crate) fn bench_gateway(
    database_url: &str,
    amqp_url: &str,
    concurrency: u16,
    seconds: u64,
    latency_seconds: u64,
) -> Result<()> {
    services::ensure_postgres(database_url)?;
    services::ensure_rabbitmq(amqp_url)?;
    if services::find_program("nginx").is_none() {
        services::apt_install(&["nginx"], "nginx (the reference proxy)")?;
    }
    let nginx = services::find_program("nginx").context("nginx is not installed")?;
    let bin = workspace::build_release()?;
    let database = fresh_database(database_url, "orion_bench_gateway")?;

    let mut supervisor = Supervisor::default();
    let replicas = [free_address()?, free_address()?];
    for (n, address) in replicas.iter().enumerate() {
        let mut api = Command::new(bin.join("orion-api"));
        api.env("ORION_LISTEN", address)
            .env("ORION_DATABASE_URL", database.as_str())
            .env("ORION_AMQP_URL", amqp_url)
            .env("ORION_OUTBOX_RELAY", "false")
            .env("RUST_LOG", "warn");
        supervisor.spawn(&format!("api-{n}"), api)?;
        supervisor.wait_healthy(
            &format!("api-{n}"),
            address,
            "/health/ready",
            Duration::from_secs(60),
        )?;
    }
    let gateway_address = free_address()?;
    let mut gateway = Command::new(bin.join("orion-gateway"));
    gateway
        .env("ORION_LISTEN", &gateway_address)
        .env("ORION_HTTPS_LISTEN", "off")
        .env("ORION_OPS_LISTEN", "off")
        .env("ORION_UPSTREAMS", replicas.join(","))
        // Limits on, but far above what one load generator can send.
        .env("ORION_RATE_ANONYMOUS", "100000000/1")
        .env("ORION_RATE_AUTHENTICATED", "100000000/1")
        .env("RUST_LOG", "warn");
    supervisor.spawn("gateway", gateway)?;
    supervisor.wait_healthy(
        "gateway",
        &gateway_address,
        "/health/ready",
        Duration::from_secs(30),
    )?;

    let nginx_address = free_address()?;
    let prefix = workspace::target_dir()?.join("bench-nginx");
    std::fs::create_dir_all(prefix.join("logs"))?;
    let upstreams: String = replicas
        .iter()
        .map(|a| format!("        server {a};\n"))
        .collect();
    let conf = format!(
        "daemon off;\nworker_processes auto;\npid {pid};\nerror_log {err} warn;\nevents {{ worker_connections 4096; }}\nhttp {{\n    access_log off;\n    upstream orion {{\n{upstreams}        keepalive 256;\n    }}\n    server {{\n        listen {nginx_address};\n        location / {{\n            proxy_pass http://orion;\n            proxy_http_version 1.1;\n            proxy_set_header Connection \"\";\n            proxy_set_header Host $host;\n            proxy_set_header X-Forwarded-For $remote_addr;\n        }}\n    }}\n}}\n",
        pid = prefix.join("nginx.pid").display(),
        err = prefix.join("logs/error.log").display(),
    );
    let conf_path = prefix.join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    let mut proxy = Command::new(&nginx);
    proxy.arg("-p").arg(&prefix).arg("-c").arg(&conf_path);
    supervisor.spawn("nginx", proxy)?;
    supervisor.wait_healthy(
        "nginx",
        &nginx_address,
        "/health/live",
        Duration::from_secs(30),
    )?;

    let nginx_pid = supervisor.pid("nginx").context("nginx is not running")?;
    let gateway_pid = supervisor
        .pid("gateway")
        .context("orion-gateway is not running")?;
    let mut lines = Vec::new();
    for (connections, duration) in [(concurrency, seconds), (1, latency_seconds)] {
        for scenario in ["inventory-item", "list-orders"] {
            for (name, address, proxy) in [
                ("direct (one replica)", &replicas[0], None),
                ("nginx", &nginx_address, Some(nginx_pid)),
                ("orion-gateway", &gateway_address, Some(gateway_pid)),
            ] {
                step(&format!(
                    "{scenario} via {name}: {connections} connections, {duration} s"
                ));
                let cpu =
                    proxy.map(|pid| CpuMeter::start(pid, Duration::from_secs(WARMUP_SECONDS)));
                let line = run_load(
                    &bin,
                    address,
                    scenario,
                    connections,
                    duration,
                    Some(WARMUP_SECONDS),
                    None,
                )?;
                let per_request = cpu
                    .and_then(|meter| meter.per_request(ok_requests(&line)?))
                    .map(|us| format!(" proxy_cpu_us_per_request={us:.1}"))
                    .unwrap_or_default();
                lines.push(format!("{scenario:>15} via {name:<21} {line}{per_request}"));
            }
        }
    }
    let rss = gateway_rss(&gateway_address).unwrap_or_else(|| "unknown".to_owned());
    supervisor.stop_all();
    println!();
    for line in &lines {
        println!("{line}");
    }
    println!("orion-gateway resident memory after the run: {rss}");
    Ok(())
}

/// The resident memory of the process listening on `address`, from /proc.
fn gateway_rss(address: &str) -> Option<String> {
    let port = address.rsplit(':').next()?;
    let output = Command::new("ss")
        .args(["-ltnpH", &format!("sport = :{port}")])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let pid = text.split("pid=").nth(1)?.split(',').next()?;
    memory_kib(pid, "VmRSS").map(|kib| format!("{kib} kB"))
}

/// The load generator's warm-up, not measured; the proxies' CPU time is read from its end.
const WARMUP_SECONDS: u64 = 3;

/// The CPU time a proxy spends during a measured run: user and system time of the process and
/// its children (nginx's workers), read from /proc when the warm-up ends and when the run ends.
/// On two shared cores every proxy cycle is taken from the replicas and the database, so this
/// explains a throughput ratio better than the ratio itself, which moves with the machine.
struct CpuMeter {
    pid: u32,
    at_warmup_end: std::thread::JoinHandle<Option<Duration>>,
}

impl CpuMeter {
    fn start(pid: u32, warmup: Duration) -> CpuMeter {
        let at_warmup_end = std::thread::spawn(move || {
            std::thread::sleep(warmup);
            process_tree_cpu(pid)
        });
        CpuMeter { pid, at_warmup_end }
    }

    /// Microseconds of proxy CPU per request answered in the measured window.
    fn per_request(self, requests: u64) -> Option<f64> {
        let start = self.at_warmup_end.join().ok()??;
        let end = process_tree_cpu(self.pid)?;
        (requests > 0).then(|| end.saturating_sub(start).as_secs_f64() * 1e6 / requests as f64)
    }
}

/// The `ok=` count of an orion-load report line.
fn ok_requests(line: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|field| field.strip_prefix("ok="))
        .and_then(|n| n.parse().ok())
}
