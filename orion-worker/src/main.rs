//! `orion-worker`: parse the configuration, start telemetry, and work until SIGINT or SIGTERM.

use anyhow::Context;
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = orion_worker::Config::parse();
    if config.common.check_config {
        config.check()?;
        orion_config::report_config_ok("orion-worker")?;
        return Ok(());
    }
    if config.print_policies {
        let policies: Vec<_> = config
            .topology()
            .policies()
            .into_iter()
            .map(|policy| {
                serde_json::json!({
                    "name": policy.name,
                    "pattern": policy.pattern,
                    "apply-to": policy.apply_to,
                    "priority": policy.priority,
                    "definition": policy.definition,
                })
            })
            .collect();
        let mut stdout = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut stdout, &policies)?;
        std::io::Write::write_all(&mut stdout, b"\n")?;
        return Ok(());
    }
    let telemetry = orion_telemetry::init("orion-worker", config.common.log_format)?;
    let result = work(config).await;
    telemetry.shut_down().await;
    result
}

async fn work(config: orion_worker::Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    orion_worker::run(config, listener, orion_config::shutdown_signal()).await?;
    Ok(())
}
