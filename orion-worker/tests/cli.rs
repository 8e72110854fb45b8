//! The `orion-worker` binary as an operator uses it: the queue policies it prints for operators
//! who apply them themselves, and settings it cannot run with.

use std::process::{Command, Output};

fn orion_worker(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orion-worker"))
        .env_clear()
        .args(args)
        .output()
        .expect("orion-worker runs")
}

#[test]
fn print_policies_lists_the_policies_of_the_configured_topology() {
    let output = orion_worker(&["--print-policies", "--amqp-prefix", "shop-a."]);
    assert!(output.status.success(), "{output:?}");
    let policies: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    let names: Vec<&str> = policies
        .as_array()
        .expect("a list")
        .iter()
        .map(|p| p["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(
        names,
        [
            "shop-a.orion-work",
            "shop-a.orion-retry",
            "shop-a.orion-dead"
        ]
    );
    let work = &policies[0];
    assert_eq!(
        work["pattern"],
        r"^shop-a\.(orion\.saga|orion\.email|orion\.webhooks|orion\.projections)$"
    );
    assert_eq!(work["apply-to"], "queues");
    assert_eq!(
        work["definition"]["dead-letter-routing-key"],
        "shop-a.orion.dead"
    );
    assert_eq!(work["definition"]["dead-letter-strategy"], "at-least-once");
    assert_eq!(work["definition"]["overflow"], "reject-publish");
}

#[test]
fn an_invalid_setting_is_named_with_the_usage_error_code() {
    let output = orion_worker(&["--concurrency", "0"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("--concurrency"));
}
