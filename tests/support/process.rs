//! Orion's binaries as OS processes of their own, built by `cargo build` next to the test
//! binary: a test can SIGKILL one (no shutdown path runs) or ask it to stop and time the stop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// One running Orion binary.
pub(crate) struct OrionProcess {
    name: &'static str,
    child: tokio::process::Child,
    address: SocketAddr,
}

impl OrionProcess {
    /// Starts `name` (`orion-api`, `orion-worker`) with `args`, listening on `address` (a free
    /// port when `None`), and waits until it reports ready.
    pub(crate) async fn spawn(
        name: &'static str,
        args: &[String],
        address: Option<SocketAddr>,
    ) -> OrionProcess {
        Self::spawn_with(name, args, address, &Launch::default()).await
    }

    /// [`Self::spawn`] with extra environment, and standard output kept in a file.
    pub(crate) async fn spawn_with(
        name: &'static str,
        args: &[String],
        address: Option<SocketAddr>,
        launch: &Launch<'_>,
    ) -> OrionProcess {
        let mut process = Self::launch_with(name, args, address, launch);
        let client = reqwest::Client::new();
        for _ in 0..600 {
            let ready = client
                .get(format!("http://{}/health/ready", process.address))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return process;
            }
            assert!(
                process.child.try_wait().expect("child status").is_none(),
                "{name} exited during start-up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{name} did not become ready within 30 s");
    }

    /// Starts `name` without waiting for it to be ready (it may not live that long).
    pub(crate) fn launch(
        name: &'static str,
        args: &[String],
        address: Option<SocketAddr>,
    ) -> OrionProcess {
        Self::launch_with(name, args, address, &Launch::default())
    }

    pub(crate) fn launch_with(
        name: &'static str,
        args: &[String],
        address: Option<SocketAddr>,
        launch: &Launch<'_>,
    ) -> OrionProcess {
        let address = address.unwrap_or_else(free_address);
        let stdout = launch.stdout.map_or_else(Stdio::null, |path| {
            Stdio::from(std::fs::File::create(path).expect("the process's log file"))
        });
        let child = tokio::process::Command::new(binary(name))
            .args(args)
            .args(["--listen", &address.to_string()])
            .env("RUST_LOG", "warn")
            .envs(launch.env.iter().copied())
            .stdout(stdout)
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        OrionProcess {
            name,
            child,
            address,
        }
    }

    /// How the process ended, if it ends within `limit`.
    pub(crate) async fn exit_within(
        &mut self,
        limit: Duration,
    ) -> Option<std::process::ExitStatus> {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .ok()
            .map(|status| status.expect("exit status"))
    }

    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    /// The most memory the process has held resident so far (`VmHWM`), in KiB.
    pub(crate) fn peak_resident_kib(&self) -> u64 {
        let pid = self.child.id().expect("running child");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc status")
    }

    /// SIGKILL: no shutdown path runs, in-flight work is simply lost to the process.
    pub(crate) async fn kill(mut self) {
        self.child.kill().await.expect("kill the process");
    }

    /// SIGTERM, and fail unless the process exits cleanly within `limit`.
    pub(crate) async fn terminate_within(mut self, limit: Duration) {
        let name = self.name;
        let pid = self.child.id().expect("running child");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{name} did not exit within {limit:?} of SIGTERM"))
            .expect("exit status");
        assert!(status.success(), "{name} exited with {status}");
    }
}

/// How a process is started beyond its arguments.
#[derive(Default)]
pub(crate) struct Launch<'a> {
    /// Environment on top of the test's own (after `RUST_LOG=warn`, which it may replace).
    pub(crate) env: &'a [(&'a str, &'a str)],
    /// Where standard output (the log) goes; discarded when `None`.
    pub(crate) stdout: Option<&'a std::path::Path>,
}

fn free_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// `target/<profile>/<name>`: the test binary lives in `target/<profile>/deps/`.
pub(crate) fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let binary = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join(name))
        .expect("target directory");
    assert!(
        binary.is_file(),
        "{} is missing; build it first (`cargo test --workspace` builds it, as `cargo xtask test` does)",
        binary.display()
    );
    binary
}
