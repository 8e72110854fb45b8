//! Where the workspace and its build output are, and how to call cargo.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The workspace root (the parent of `xtask/`). `cargo run` says where at run time; the path
/// compiled in may be another checkout's when checkouts share a build directory.
pub(crate) fn root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// `cargo` as the one that runs us, in the workspace root.
pub(crate) fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root());
    // `cargo run` describes the xtask package to it in these; build scripts that read them (ring
    // reads `CARGO_PKG_NAME` and `CARGO_MANIFEST_DIR` through `rerun-if-env-changed`) would see
    // them changed from a build started in a shell and run again, rebuilding what depends on them.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if RUN_ONLY_VARIABLES.contains(&name.as_ref()) || name.starts_with("CARGO_PKG_") {
            command.env_remove(name.as_ref());
        }
    }
    command
}

/// What `cargo run` sets for the program it runs, besides `CARGO_PKG_*`.
const RUN_ONLY_VARIABLES: [&str; 7] = [
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_MANIFEST_LINKS",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
    "OUT_DIR",
];

/// `cargo <subcommand>` with the environment every build of the xtask shares: sqlx's query
/// macros read `SQLX_OFFLINE`, and one build with it and one without would not share crates.
fn cargo_build_env(subcommand: &str) -> Command {
    let mut command = cargo();
    command.arg(subcommand).env("SQLX_OFFLINE", "true");
    command
}

/// `cargo test --workspace`: the one debug build. It builds every library, binary and test with
/// one feature set (dev-dependencies included), and the binaries too, because each binary's
/// package has tests of its command line (cargo builds a package's binaries for its integration
/// tests). Tests, crash tests, schemathesis and `cargo xtask up` all use this build; selecting
/// packages (`-p`) or leaving the tests out would unify features differently and rebuild much of
/// the workspace.
pub(crate) fn cargo_test() -> Command {
    let mut command = cargo_build_env("test");
    command.arg("--workspace");
    command
}

/// The one debug build, without running anything; returns the binaries' folder.
pub(crate) fn build_debug() -> Result<PathBuf> {
    run(
        cargo_test().arg("--no-run"),
        "cargo test --workspace --no-run",
    )?;
    target_dir().map(|dir| dir.join("debug"))
}

/// The one release build, every binary of the workspace whichever of them the caller needs, so
/// that each benchmark and `cargo xtask up --release` reuse it; returns the binaries' folder.
pub(crate) fn build_release() -> Result<PathBuf> {
    crate::services::step("building the workspace's binaries (release)");
    run(
        cargo_build_env("build").args(["--release", "--workspace", "--bins"]),
        "cargo build --release --workspace --bins",
    )?;
    target_dir().map(|dir| dir.join("release"))
}

/// Runs a command to completion, failing with `what` if it does not succeed.
pub(crate) fn run(command: &mut Command, what: &str) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot start: {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// The directory cargo builds into (honours `CARGO_TARGET_DIR`).
pub(crate) fn target_dir() -> Result<PathBuf> {
    let output = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("cannot run cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("cargo metadata output")?;
    metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata has no target_directory")
}
