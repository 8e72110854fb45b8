//! The tools the deployment checks use besides Python's: `kubectl` (its built-in kustomize
//! renders the overlays) and Prometheus's `promtool` (checks and unit-tests the alert rules).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::services::{find_program, step};
use crate::workspace;

/// Debian's prometheus package, whose promtool checked the rules when they were written. Only
/// its files are unpacked into `.tools/`: installing it would start a Prometheus server.
const PROMETHEUS_DEB: &str = "prometheus=2.42.0+ds-5+deb12u1";

/// `kubectl`, which renders the kustomize overlays.
pub(crate) fn kubectl() -> Result<PathBuf> {
    find_program("kubectl").context(
        "the deployment checks render the Kubernetes overlays with `kubectl kustomize`; install \
         kubectl (any version from 1.27, which has kustomize 5 built in)",
    )
}

/// `promtool` from the pinned Debian package, unpacked into `.tools/prometheus` on first use.
pub(crate) fn promtool() -> Result<PathBuf> {
    let root = workspace::root().join(".tools/prometheus");
    let promtool = root.join("usr/bin/promtool");
    let stamp = root.join(".package");
    if promtool.is_file() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(PROMETHEUS_DEB)
    {
        return Ok(promtool);
    }
    let version = PROMETHEUS_DEB.split_once('=').map_or("", |(_, v)| v);
    // The same version installed already (Debian's prometheus package, say) will do.
    if let Some(installed) = find_program("promtool") {
        let reported = Command::new(&installed).arg("--version").output();
        let upstream = version.split('+').next().unwrap_or(version);
        if reported.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(upstream)) {
            return Ok(installed);
        }
    }
    for tool in ["apt-get", "dpkg-deb"] {
        if find_program(tool).is_none() {
            bail!(
                "promtool comes from Debian's {PROMETHEUS_DEB} package, and this machine has no \
                 {tool}; install promtool {version} and put it on PATH"
            );
        }
    }
    step(&format!(
        "unpacking promtool from Debian's {PROMETHEUS_DEB} into .tools/prometheus (about 30 MB)"
    ));
    let downloads = workspace::root().join(".tools/debs");
    std::fs::create_dir_all(&downloads).context("cannot create .tools/debs")?;
    let download = |update: bool| -> Result<()> {
        if update {
            workspace::run(
                Command::new("apt-get").args(["update", "-q"]),
                "apt-get update",
            )?;
        }
        workspace::run(
            Command::new("apt-get")
                .args(["download", "-q", PROMETHEUS_DEB])
                .current_dir(&downloads),
            &format!("apt-get download {PROMETHEUS_DEB}"),
        )
    };
    // A fresh machine may not have the package lists yet.
    download(false).or_else(|_| download(true))?;
    let deb = std::fs::read_dir(&downloads)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| {
            path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("prometheus_") && n.contains(&version.replace(':', "%3a"))
            })
        })
        .context("apt-get download left no prometheus package")?;
    let _ = std::fs::remove_dir_all(&root);
    workspace::run(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root),
        "dpkg-deb -x prometheus",
    )?;
    if !promtool.is_file() {
        bail!("{} holds no usr/bin/promtool", deb.display());
    }
    std::fs::write(&stamp, PROMETHEUS_DEB).context("cannot mark the promtool install")?;
    Ok(promtool)
}
