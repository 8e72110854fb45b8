//! `orion-api`: parse the configuration, start telemetry, and serve until SIGINT or SIGTERM.

use anyhow::Context;
use clap::Parser;
use orion_api::{Cli, Command};

// Each password hash takes 19 MiB for a moment. glibc's allocator keeps such blocks in its
// per-thread arenas once freed (its mmap threshold rises to their size), so a burst of sign-ins
// left hundreds of megabytes resident; mimalloc hands them back.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.config.common.check_config {
        match cli.command {
            // Migrating needs the database alone.
            Some(Command::Migrate) => cli.config.database.check()?,
            _ => cli.config.check()?,
        }
        orion_config::report_config_ok("orion-api")?;
        return Ok(());
    }
    let telemetry = orion_telemetry::init("orion-api", cli.config.common.log_format)?;
    let result = execute(cli).await;
    telemetry.shut_down().await;
    result
}

async fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let listener = tokio::net::TcpListener::bind(cli.config.listen)
                .await
                .with_context(|| format!("cannot listen on {}", cli.config.listen))?;
            orion_api::run(cli.config, listener, orion_config::shutdown_signal()).await?;
        }
        Command::Migrate => orion_api::migrate(&cli.config).await?,
        Command::CreateAdmin { email, name } => {
            let password = std::io::read_to_string(std::io::stdin())
                .context("cannot read the password from stdin")?;
            let id = orion_api::create_admin(
                &cli.config,
                &email,
                &name,
                password.trim_end_matches(['\r', '\n']),
            )
            .await?;
            tracing::info!(user.id = %id, "admin account created");
        }
    }
    Ok(())
}
