//! orion-gateway in-process, in front of the given replicas, on plain HTTP.

use std::net::SocketAddr;

use super::{JWT_SECRET, Running, signal};

/// The gateway's command line (without the program name) in front of the replicas `upstreams`
/// (comma-separated): dev mode, plain HTTP only, the suite's secret, fast health checks so
/// tests need not wait; `extra` adds or replaces flags.
pub(crate) fn gateway_args(upstreams: &str, extra: &[&str]) -> Vec<String> {
    let defaults = [
        "--env",
        "dev",
        "--ops-listen",
        "off",
        "--https-listen",
        "off",
        "--upstreams",
        upstreams,
        "--jwt-secret",
        JWT_SECRET,
        "--health-interval-ms",
        "100",
        "--health-timeout-ms",
        "300",
        "--eject-base-ms",
        "300",
    ];
    super::app::command_line(&defaults, extra)
}

/// Starts a gateway balancing over `upstreams`.
pub(crate) async fn spawn_gateway(upstreams: &[SocketAddr], extra: &[&str]) -> Running {
    let list = upstreams
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let config = <orion_gateway::Config as clap::Parser>::parse_from(
        std::iter::once("orion-gateway".to_owned()).chain(gateway_args(&list, extra)),
    );
    Running::start(|listener, stopped| orion_gateway::run(config, listener, signal(stopped))).await
}
