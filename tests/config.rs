//! The local defaults of the design are a contract: check every binary's configuration honours them.

use clap::{CommandFactory, Parser};
use orion_config::{Environment, defaults};

#[test]
fn api_defaults_match_the_design() {
    let cli = orion_api::Cli::try_parse_from(["orion-api"]).expect("parses with no arguments");
    let config = cli.config;
    assert_eq!(config.listen.to_string(), defaults::API_LISTEN);
    assert_eq!(
        config.database.database_url,
        "postgres://postgres@127.0.0.1:5432/orion"
    );
    assert_eq!(
        config.amqp.amqp_url,
        "amqp://guest:guest@127.0.0.1:5672/%2f"
    );
    // Fail closed: a server without `ORION_ENV` is prod.
    assert_eq!(config.common.env, Environment::Prod);
}

#[test]
fn worker_and_gateway_defaults_match_the_design() {
    let worker = orion_worker::Config::try_parse_from(["orion-worker"]).expect("parses");
    assert_eq!(worker.listen.to_string(), "127.0.0.1:8090");
    assert_eq!(worker.smtp_url, "smtp://127.0.0.1:1025");
    let gateway = orion_gateway::Config::try_parse_from(["orion-gateway"]).expect("parses");
    assert_eq!(gateway.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(gateway.upstreams, ["127.0.0.1:8081", "127.0.0.1:8082"]);
}

#[test]
fn every_binary_has_help_and_rejects_bad_values() {
    orion_api::Cli::command().debug_assert();
    orion_worker::Config::command().debug_assert();
    orion_gateway::Config::command().debug_assert();
    let help = orion_api::Cli::try_parse_from(["orion-api", "--help"]).expect_err("help exits");
    assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
    assert!(help.to_string().contains("ORION_DATABASE_URL"));
    let bad =
        orion_api::Cli::try_parse_from(["orion-api", "--env", "staging"]).expect_err("unknown env");
    assert_eq!(bad.kind(), clap::error::ErrorKind::InvalidValue);
    let bad = orion_worker::Config::try_parse_from(["orion-worker", "--listen", "nowhere"])
        .expect_err("bad address");
    assert_eq!(bad.kind(), clap::error::ErrorKind::ValueValidation);
}

#[test]
fn gateway_upstreams_are_comma_separated() {
    let gateway =
        orion_gateway::Config::try_parse_from(["orion-gateway", "--upstreams", "a:1,b:2,c:3"])
            .expect("parses");
    assert_eq!(gateway.upstreams, ["a:1", "b:2", "c:3"]);
}
