//! The `orion-gateway` binary as an operator starts it: prod refuses the development secret
//! before it listens anywhere.

use std::process::Command;

fn refused_without(env: &[(&str, &str)]) {
    let output = Command::new(env!("CARGO_BIN_EXE_orion-gateway"))
        .env_clear()
        .envs(env.iter().copied())
        .args(["--listen", "127.0.0.1:0", "--https-listen", "off"])
        .output()
        .expect("orion-gateway runs");
    assert!(!output.status.success(), "refused: {output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ORION_JWT_SECRET is the development default"),
        "says why: {stderr}"
    );
}

#[test]
fn prod_refuses_the_development_jwt_secret() {
    refused_without(&[("ORION_ENV", "prod")]);
}

/// Fail closed: without `ORION_ENV` the gateway is in prod mode.
#[test]
fn without_orion_env_it_is_prod() {
    refused_without(&[]);
}
