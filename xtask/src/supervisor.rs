//! Child processes started by `cargo xtask`: their output prefixed with their name, and a clean
//! stop (SIGTERM, a grace period, then SIGKILL) on Ctrl-C, on error, or when one of them dies.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const GRACE: Duration = Duration::from_secs(15);

#[derive(Debug, Default)]
pub(crate) struct Supervisor {
    children: Vec<(String, Child)>,
}

impl Supervisor {
    /// Starts `command` in its own process group (so a terminal's Ctrl-C reaches only us, and we
    /// stop the children in order), with its output prefixed by `name`.
    pub(crate) fn spawn(&mut self, name: &str, mut command: Command) -> Result<()> {
        // Everything the xtask starts is a development installation (demo data, the development
        // secret and certificate); the binaries default to prod and refuse those.
        command
            .env("ORION_ENV", "dev")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        if let Some(out) = child.stdout.take() {
            forward(name, out);
        }
        if let Some(err) = child.stderr.take() {
            forward(name, err);
        }
        self.children.push((name.to_owned(), child));
        Ok(())
    }

    /// Waits until `GET path` on `address` answers 200, failing early if the child exits.
    pub(crate) fn wait_healthy(
        &mut self,
        name: &str,
        address: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            self.check_alive()?;
            if crate::http::get_ok(address, path) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!(
            "{name} did not answer {path} on {address} within {} s",
            timeout.as_secs()
        )
    }

    /// The process id of the child called `name`.
    pub(crate) fn pid(&self, name: &str) -> Option<u32> {
        self.children
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, child)| child.id())
    }

    /// Fails if any child has exited.
    fn check_alive(&mut self) -> Result<()> {
        for (name, child) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                bail!("{name} exited unexpectedly ({status})");
            }
        }
        Ok(())
    }

    /// Runs until `stop` fires (Ctrl-C, SIGTERM) or a child exits on its own.
    pub(crate) fn run_until(&mut self, stop: &Receiver<()>) -> Result<()> {
        loop {
            match stop.recv_timeout(Duration::from_millis(250)) {
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return Ok(()),
                Err(RecvTimeoutError::Timeout) => self.check_alive()?,
            }
        }
    }

    /// Stops every child, newest first: SIGTERM, up to 15 s to finish, then SIGKILL.
    pub(crate) fn stop_all(&mut self) {
        while let Some((name, child)) = self.children.pop() {
            stop_child(&name, child);
        }
    }

    /// Stops the children called `name` the same way.
    pub(crate) fn stop(&mut self, name: &str) {
        let (stopping, kept) = std::mem::take(&mut self.children)
            .into_iter()
            .partition(|(n, _)| n == name);
        self.children = kept;
        for (name, child) in stopping {
            stop_child(&name, child);
        }
    }
}

fn stop_child(name: &str, mut child: Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + GRACE;
    let stopped = loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => break true,
            Ok(None) if Instant::now() >= deadline => break false,
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    if stopped {
        println!("    stopped {name}");
    } else {
        println!(
            "    {name} did not stop within {} s; killing it",
            GRACE.as_secs()
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn forward(name: &str, stream: impl Read + Send + 'static) {
    let name = name.to_owned();
    std::thread::spawn(move || {
        let stdout = std::io::stdout();
        for line in BufReader::new(stream)
            .lines()
            .map_while(std::result::Result::ok)
        {
            let _ = writeln!(stdout.lock(), "{name:>8} | {line}");
        }
    });
}
