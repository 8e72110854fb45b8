//! The deployment files, checked without a cluster: the Kubernetes overlays and the compose file
//! against their schemas and Orion's policy (`tests/deploy/check_manifests.py`), every setting
//! they give each binary against that binary's own parser, the queue policies the operator is
//! to apply against the worker's, and the alert rules with promtool.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use clap::CommandFactory;
use serde::Deserialize;

use crate::support::{OrionProcess, binary_path, gateway_args, manifest_dir, python};

/// The OpenTelemetry SDK settings a deployment may give (the SDK reads them itself).
const OTEL_SETTINGS: [&str; 13] = [
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_EXPORTER",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
];

/// Families of SDK settings: the batch span processor's `OTEL_BSP_*`.
const OTEL_FAMILIES: [&str; 1] = ["OTEL_BSP_"];

#[derive(Debug, Deserialize)]
struct Deployed {
    containers: Vec<Container>,
    policies: Vec<Policy>,
}

/// One container of a manifest or one service of the compose file, as it would start.
#[derive(Debug, Deserialize)]
struct Container {
    source: String,
    binary: String,
    args: Vec<String>,
    env: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Policy {
    name: String,
    pattern: String,
    #[serde(rename = "applyTo")]
    apply_to: String,
    priority: i64,
    definition: serde_json::Value,
}

fn checker() -> Command {
    let mut command = Command::new(python());
    command
        .arg(workspace().join("tests/deploy/check_manifests.py"))
        .current_dir(workspace());
    command
}

fn workspace() -> PathBuf {
    manifest_dir()
        .parent()
        .expect("the workspace holds the tests")
        .to_path_buf()
}

fn deployed() -> Deployed {
    let output = checker()
        .arg("--env-json")
        .output()
        .expect("run the checker");
    assert!(
        output.status.success(),
        "--env-json failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the settings as JSON")
}

#[test]
fn manifests_and_compose_pass_schemas_lint_and_policy() {
    let output = checker().output().expect("run the checker");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{report}");
    eprintln!("{report}");
    for rendered in ["overlays/dev", "overlays/prod", "keda-dev", "keda-prod"] {
        assert!(
            report.contains(rendered),
            "{rendered} was not checked:\n{report}"
        );
    }
}

/// The `ORION_*` settings each binary reads, from its own command line definition.
fn settings_of(binary: &str) -> Vec<String> {
    let command = match binary {
        "orion-api" => orion_api::Cli::command(),
        "orion-worker" => orion_worker::Config::command(),
        "orion-gateway" => orion_gateway::Config::command(),
        other => panic!("no binary {other}"),
    };
    command
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|name| name.to_string_lossy().into_owned())
        .collect()
}

/// Settings a container gives that its binary does not read: a renamed or misspelt setting
/// would silently fall back to the default.
fn unknown_settings(container: &Container) -> Vec<String> {
    let known = settings_of(&container.binary);
    container
        .env
        .keys()
        .filter(|name| {
            (name.starts_with("ORION_") && !known.contains(name))
                || (name.starts_with("OTEL_")
                    && !OTEL_SETTINGS.contains(&name.as_str())
                    && !OTEL_FAMILIES.iter().any(|family| name.starts_with(family)))
        })
        .cloned()
        .collect()
}

#[test]
fn every_setting_deployed_is_one_its_binary_reads_and_accepts() {
    let deployed = deployed();
    let sources: Vec<&str> = deployed
        .containers
        .iter()
        .map(|c| c.source.as_str())
        .collect();
    for expected in ["overlays/dev", "overlays/prod", "docker-compose.yml"] {
        for binary in ["orion-api", "orion-worker", "orion-gateway"] {
            assert!(
                deployed
                    .containers
                    .iter()
                    .any(|c| c.source.starts_with(expected) && c.binary == binary),
                "no {binary} in {expected}: {sources:?}"
            );
        }
    }
    for container in &deployed.containers {
        let unknown = unknown_settings(container);
        assert!(
            unknown.is_empty(),
            "{}: settings {} does not read: {unknown:?}",
            container.source,
            container.binary
        );
        // The binary itself parses exactly these settings and arguments, nothing inherited.
        let mut command = Command::new(binary_path(&container.binary));
        command
            .env_clear()
            .args(&container.args)
            .arg("--check-config");
        for (name, value) in &container.env {
            command.env(name, deployable(name, value));
        }
        let output = command.output().expect("run the binary");
        assert!(
            output.status.success(),
            "{} refuses the settings of {}: {}",
            container.binary,
            container.source,
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(String::from_utf8_lossy(&output.stdout).contains("configuration ok"));
    }
}

/// A Secret template's placeholder replaced by a value of the shape an operator gives (a
/// secret of 40 characters); everything else as deployed.
fn deployable(name: &str, value: &str) -> String {
    if name == "ORION_JWT_SECRET" && value.starts_with("replace-me") {
        return "an-operators-secret-of-forty-characters!".to_owned();
    }
    value.to_owned()
}

#[test]
fn the_unknown_setting_check_catches_a_renamed_setting() {
    let container = Container {
        source: "a manifest with a typo".into(),
        binary: "orion-worker".into(),
        args: Vec::new(),
        env: BTreeMap::from([
            (
                "ORION_DATABASE_URL".to_owned(),
                "postgres://db/orion".to_owned(),
            ),
            ("ORION_DATABSE_MAX_CONNECTIONS".to_owned(), "5".to_owned()),
            ("OTEL_SERVICE_NAME".to_owned(), "orion-worker".to_owned()),
            (
                "OTEL_EXPORTER_OTLP_ENDPONT".to_owned(),
                "http://c:4318".to_owned(),
            ),
        ]),
    };
    assert_eq!(
        unknown_settings(&container),
        [
            "ORION_DATABSE_MAX_CONNECTIONS",
            "OTEL_EXPORTER_OTLP_ENDPONT"
        ]
    );
    // And a value the parser refuses fails the binary's own check.
    let output = Command::new(binary_path("orion-worker"))
        .env_clear()
        .env("ORION_AMQP_RETRY_DELAYS_MS", "100,200")
        .arg("--check-config")
        .output()
        .expect("run the worker");
    assert!(!output.status.success());
    let refusal = String::from_utf8_lossy(&output.stderr);
    assert!(refusal.contains("amqp-retry-delays-ms"), "{refusal}");
}

#[test]
fn the_prod_queue_policies_are_the_ones_the_worker_applies() {
    let deployed = deployed();
    let worker = <orion_worker::Config as clap::Parser>::try_parse_from(["orion-worker"])
        .expect("the worker's defaults");
    let mut expected: Vec<Policy> = worker
        .topology()
        .policies()
        .into_iter()
        .map(|policy| Policy {
            name: policy.name,
            pattern: policy.pattern,
            apply_to: policy.apply_to.to_owned(),
            priority: i64::from(policy.priority),
            definition: policy.definition,
        })
        .collect();
    let mut actual = deployed.policies;
    expected.sort_by(|a, b| a.name.cmp(&b.name));
    actual.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(!expected.is_empty());
    assert_eq!(actual, expected);
}

#[test]
fn alert_rules_pass_promtool_and_name_only_exported_metrics() {
    let promtool = std::env::var_os("ORION_TEST_PROMTOOL")
        .map(PathBuf::from)
        .expect("ORION_TEST_PROMTOOL: `cargo xtask test` provides promtool");
    let dir = workspace().join("deploy/observability");
    for args in [
        vec!["check", "rules", "alerts.yml"],
        vec!["test", "rules", "alerts_test.yml"],
    ] {
        let output = Command::new(&promtool)
            .args(&args)
            .current_dir(&dir)
            .output()
            .expect("run promtool");
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "promtool {args:?}:\n{report}");
        assert!(report.contains("SUCCESS"), "{report}");
        eprintln!("promtool {}:\n{report}", args.join(" "));
    }
    let output = Command::new(python())
        .arg("check_metrics.py")
        .arg("--promtool")
        .arg(&promtool)
        .current_dir(&dir)
        .output()
        .expect("run the metric check");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn the_image_health_check_passes_on_a_live_binary_and_fails_without_one() {
    let gateway = OrionProcess::launch("orion-gateway", &gateway_args("127.0.0.1:9", &[]), None);
    let live = format!("http://{}/health/live", gateway.address());
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if http.get(&live).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(up, "the gateway did not come up");
    let check = |listen: String| {
        Command::new("bash")
            .arg(workspace().join("deploy/healthcheck"))
            .env_clear()
            .env("ORION_LISTEN", listen)
            .status()
            .expect("run the health check")
    };
    assert!(check(format!("0.0.0.0:{}", gateway.address().port())).success());
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port");
    assert!(!check(closed.to_string()).success());
    gateway.kill().await;
}
