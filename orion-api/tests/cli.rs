//! The `orion-api` binary as an operator starts it: a configuration it cannot run with is refused
//! at once, with the setting named, before any service is contacted.

use std::process::{Command, Output};

fn orion_api(env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orion-api"))
        .env_clear()
        .envs(env.iter().copied())
        .args(args)
        .output()
        .expect("orion-api runs")
}

#[test]
fn prod_refuses_the_development_jwt_secret() {
    let output = orion_api(&[("ORION_ENV", "prod")], &["--listen", "127.0.0.1:0"]);
    assert!(!output.status.success(), "refused: {output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ORION_JWT_SECRET is the development default"),
        "says why: {stderr}"
    );
}

/// Fail closed: a server started without `ORION_ENV` is in prod mode, so it neither serves
/// with the public development secret nor seeds the demo admin.
#[test]
fn without_orion_env_it_is_prod_and_refuses_the_development_secret() {
    let output = orion_api(&[], &["--listen", "127.0.0.1:0"]);
    assert!(!output.status.success(), "refused: {output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ORION_JWT_SECRET is the development default")
            && stderr.contains("ORION_ENV=dev"),
        "says why and how to run locally: {stderr}"
    );
}

#[test]
fn an_invalid_setting_is_named_with_the_usage_error_code() {
    let output = orion_api(&[("ORION_AMQP_RETRY_DELAYS_MS", "1000,5000")], &[]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--amqp-retry-delays-ms") && stderr.contains("three delays"),
        "names the setting and the rule: {stderr}"
    );
}
