//! What benchmarks read of a process from /proc: CPU time and resident memory.

use std::time::Duration;

/// User plus system time of `pid` and of its direct children.
pub(crate) fn process_tree_cpu(pid: u32) -> Option<Duration> {
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    let ticks: u64 = std::iter::once(pid.to_string())
        .chain(children.split_whitespace().map(str::to_owned))
        .filter_map(|p| process_ticks(&p))
        .sum();
    ticks_to_duration(ticks)
}

/// User plus system time of every process whose command name is `comm` (`postgres` counts the
/// server and all its backends, `beam.smp` the broker).
pub(crate) fn cpu_of_command(comm: &str) -> Option<Duration> {
    let ticks: u64 = pids_of_command(comm)
        .iter()
        .filter_map(|p| process_ticks(p))
        .sum();
    ticks_to_duration(ticks)
}

fn pids_of_command(comm: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|name| name.trim_end() == comm)
        })
        .collect()
}

fn ticks_to_duration(ticks: u64) -> Option<Duration> {
    let ticks_per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u64::try_from(t).ok())
        .filter(|t| *t > 0)?;
    Some(Duration::from_secs_f64(
        ticks as f64 / ticks_per_second as f64,
    ))
}

/// utime + stime (fields 14 and 15 of /proc/<pid>/stat, counted after the command name, which
/// may itself hold spaces and parentheses).
fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// A memory line of /proc/<pid>/status (`VmRSS`, `VmHWM`) in KiB.
pub(crate) fn memory_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
