//! orion-gateway in-process, in front of the given replicas, on plain HTTP.

use std::net::SocketAddr;

use super::{JWT_SECRET, Running, signal};

/// Starts a gateway balancing over `upstreams`, with fast health checks so tests need not wait.
pub(crate) async fn spawn_gateway(upstreams: &[SocketAddr], extra: &[&str]) -> Running {
    let list = upstreams
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let defaults = [
        "--env",
        "dev",
        "--ops-listen",
        "off",
        "--https-listen",
        "off",
        "--upstreams",
        &list,
        "--jwt-secret",
        JWT_SECRET,
        "--health-interval-ms",
        "100",
        "--health-timeout-ms",
        "300",
        "--eject-base-ms",
        "300",
    ];
    let args = super::app::command_line(&defaults, extra);
    let config = <orion_gateway::Config as clap::Parser>::parse_from(
        std::iter::once("orion-gateway".to_owned()).chain(args),
    );
    Running::start(|listener, stopped| orion_gateway::run(config, listener, signal(stopped))).await
}
