//! The fuzz targets (`fuzz/`, cargo-fuzz with libFuzzer), run briefly by the test command: each
//! target from its committed corpus for a bounded time. cargo-fuzz is pinned and installed into
//! `.tools/cargo-fuzz`; it runs on the stable toolchain with `--sanitizer none` (Rust's own
//! checks and the targets' assertions catch what the targets look for). Inputs the run finds
//! go to a scratch folder, so the committed corpus changes only when someone adds to it.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

use crate::services::step;
use crate::workspace;

/// The cargo-fuzz release installed and used.
const CARGO_FUZZ_VERSION: &str = "0.13.1";

/// Every target in `fuzz/Cargo.toml`.
const TARGETS: [&str; 2] = ["gateway_request_head", "api_request"];

/// Seconds each target runs in the test command (`ORION_FUZZ_SECONDS` overrides).
const DEFAULT_SECONDS: u64 = 20;

/// Builds and runs every target for a bounded time; fails on the first crash (libFuzzer leaves
/// the input that crashed under `fuzz/artifacts/`).
pub(crate) fn run_all() -> Result<()> {
    let seconds = std::env::var("ORION_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SECONDS);
    let cargo_fuzz = install()?;
    let fuzz = workspace::root().join("fuzz");
    // Instrumented builds never share artifacts with the normal ones; a folder of their own.
    let target_dir = workspace::target_dir()?.join("fuzz");
    let scratch = target_dir.join("new-inputs");
    for target in TARGETS {
        step(&format!("fuzzing {target} for {seconds} s"));
        let found = scratch.join(target);
        std::fs::create_dir_all(&found).context("cannot create the fuzz scratch folder")?;
        let mut command = Command::new(&cargo_fuzz);
        // The same environment cleaning as every cargo the xtask starts.
        for (name, value) in workspace::cargo().get_envs() {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        command
            .current_dir(&fuzz)
            .env("CARGO_TARGET_DIR", &target_dir)
            .env("SQLX_OFFLINE", "true")
            .args(["run", "--dev", "--sanitizer", "none", target])
            .arg(&found)
            .arg(fuzz.join("corpus").join(target))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"));
        workspace::run(&mut command, &format!("cargo fuzz run {target}"))?;
    }
    Ok(())
}

/// `cargo-fuzz` at the pinned version, installed on first use.
fn install() -> Result<PathBuf> {
    let root = workspace::root().join(".tools/cargo-fuzz");
    let binary = root.join("bin/cargo-fuzz");
    let marker = root.join(format!(".version-{CARGO_FUZZ_VERSION}"));
    if binary.is_file() && marker.is_file() {
        return Ok(binary);
    }
    step(&format!(
        "installing cargo-fuzz {CARGO_FUZZ_VERSION} from crates.io into .tools/cargo-fuzz (a build of about two minutes)"
    ));
    workspace::run(
        workspace::cargo()
            .args(["install", "cargo-fuzz", "--locked", "--force"])
            .args(["--version", CARGO_FUZZ_VERSION])
            .arg("--root")
            .arg(&root),
        "cargo install cargo-fuzz",
    )?;
    std::fs::write(&marker, "").context("cannot mark the cargo-fuzz install")?;
    Ok(binary)
}
