//! Memory figures from `/proc/<pid>/status` (Linux).
//!
//! VmRSS is what a process holds now; VmHWM is the most it ever held. A child process's
//! VmHWM is its own peak, which is why the receiving end of a transfer and the server run as
//! child processes of this benchmark.

use std::io;

/// Memory of one process, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Memory {
    /// Resident set size now.
    pub rss: u64,
    /// Peak resident set size ("high water mark").
    pub hwm: u64,
}

/// Reads VmRSS and VmHWM of process `pid` (`None`: this process).
///
/// # Errors
/// The status file cannot be read or lacks the fields (not Linux, process gone).
pub fn memory(pid: Option<u32>) -> io::Result<Memory> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_owned(),
    };
    parse_status(&std::fs::read_to_string(path)?)
}

fn parse_status(text: &str) -> io::Result<Memory> {
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    };
    match (field("VmRSS:"), field("VmHWM:")) {
        (Some(rss), Some(hwm)) => Ok(Memory { rss, hwm }),
        _ => Err(io::Error::other("VmRSS/VmHWM missing from status")),
    }
}

/// CPU time (user + system) process `pid` has used so far, from `/proc/<pid>/stat`.
///
/// # Errors
/// The stat file cannot be read or parsed (process gone).
pub fn cpu_time(pid: u32) -> io::Result<std::time::Duration> {
    parse_cpu(
        &std::fs::read_to_string(format!("/proc/{pid}/stat"))?,
        clock_ticks(),
    )
}

/// The sum of [`cpu_time`] over `pids`: what a measurement spread over several processes
/// (cluster nodes, a client and its server) cost.
///
/// # Errors
/// As [`cpu_time`], for the first process that cannot be read.
pub fn cpu_time_sum(pids: impl IntoIterator<Item = u32>) -> io::Result<std::time::Duration> {
    pids.into_iter().map(cpu_time).sum()
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions; it only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// CPU time of process `pid` and of its children that it has waited for (utime, stime,
/// cutime and cstime of `/proc/<pid>/stat`).
///
/// Why: a daemon that forks a process per connection (sshd) adds that process's CPU time
/// to its own `cutime`/`cstime` when it reaps it, so the difference of this figure over a
/// copy is the CPU the daemon's side of that copy used, though the processes that did the
/// work are gone by then.
///
/// # Errors
/// The stat file cannot be read or parsed (process gone).
pub fn cpu_time_with_children(pid: u32) -> io::Result<std::time::Duration> {
    parse_cpu_fields(
        &std::fs::read_to_string(format!("/proc/{pid}/stat"))?,
        clock_ticks(),
        4,
    )
}

/// The processes below `pid` (children, grandchildren, …) that are alive now.
///
/// Reads `/proc/<pid>/task/<tid>/children` (Linux ≥ 3.5 with CONFIG_PROC_CHILDREN); an
/// empty list where that file is missing.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let Ok(text) = std::fs::read_to_string(t.path().join("children")) else {
                continue;
            };
            for c in text
                .split_whitespace()
                .filter_map(|w| w.parse::<u32>().ok())
            {
                if !out.contains(&c) {
                    out.push(c);
                    todo.push(c);
                }
            }
        }
    }
    out
}

/// What one finished process (with the children it waited for) used: from `wait4`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// User + system CPU time.
    pub cpu: std::time::Duration,
    /// The largest peak RSS of the process or any child it waited for, bytes
    /// (`ru_maxrss`).
    pub peak_rss: u64,
}

impl Usage {
    /// Both: CPU times added, the larger peak (the processes need not overlap in time, so a
    /// sum would overstate the peak).
    pub fn and(self, other: Usage) -> Usage {
        Usage {
            cpu: self.cpu + other.cpu,
            peak_rss: self.peak_rss.max(other.peak_rss),
        }
    }
}

/// Waits for `child` and returns its exit status with what it used (`wait4`).
///
/// The CPU time is exact; the peak is the kernel's `ru_maxrss`, which for a child spawned
/// with `vfork` (as `std::process::Command` does) includes this process's own high-water
/// mark at the `exec`. Callers that report a peak sample VmHWM instead
/// (`baseline::PeakSampler`).
///
/// Why not `Child::wait`: the standard library discards the `rusage` that the kernel
/// hands back with the exit status, and after the child is reaped its `/proc` entry is
/// gone. The `Child` must not be waited for again afterwards.
///
/// # Errors
/// `wait4` failed (not our child, already reaped).
pub fn wait_with_usage(
    child: &std::process::Child,
) -> io::Result<(std::process::ExitStatus, Usage)> {
    use std::os::unix::process::ExitStatusExt as _;
    let pid = libc::pid_t::try_from(child.id()).map_err(io::Error::other)?;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value of it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: status and ru are valid for writes for the duration of the call.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    let tv = |t: libc::timeval| {
        std::time::Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + std::time::Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    Ok((
        std::process::ExitStatus::from_raw(status),
        Usage {
            cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
            // Linux reports ru_maxrss in KiB.
            peak_rss: u64::try_from(ru.ru_maxrss).unwrap_or(0) * 1024,
        },
    ))
}

fn parse_cpu(stat: &str, ticks_per_sec: u64) -> io::Result<std::time::Duration> {
    parse_cpu_fields(stat, ticks_per_sec, 2)
}

/// Sums `count` consecutive tick fields from utime on (2: utime+stime; 4: + cutime+cstime).
fn parse_cpu_fields(
    stat: &str,
    ticks_per_sec: u64,
    count: usize,
) -> io::Result<std::time::Duration> {
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let rest = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| io::Error::other("no command name in stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime and stime are fields 14 and 15.
    let num = |i: usize| -> io::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::other("utime/stime missing from stat"))
    };
    let mut ticks = 0;
    for i in 11..11 + count {
        ticks += num(i)?;
    }
    Ok(std::time::Duration::from_micros(
        ticks * 1_000_000 / ticks_per_sec.max(1),
    ))
}

/// Bytes as MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_fields() {
        let m = parse_status("Name:\tx\nVmHWM:\t   2048 kB\nVmRSS:\t    1024 kB\n").unwrap();
        assert_eq!(
            m,
            Memory {
                rss: 1024 * 1024,
                hwm: 2048 * 1024
            }
        );
        assert!(parse_status("Name: x\n").is_err());
    }

    #[test]
    fn parses_cpu_ticks() {
        let stat = "42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 150 50 0 0 20 0 1 0";
        assert_eq!(
            parse_cpu(stat, 100).unwrap(),
            std::time::Duration::from_secs(2)
        );
        assert!(parse_cpu("42 x S", 100).is_err());
        assert_eq!(
            parse_cpu_fields(stat, 100, 4).unwrap(),
            std::time::Duration::from_secs(2),
            "cutime and cstime are 0 here"
        );
        let with_children = "42 (x) S 1 2 3 4 5 6 7 8 9 10 150 50 300 100 20 0 1 0";
        assert_eq!(
            parse_cpu_fields(with_children, 100, 4).unwrap(),
            std::time::Duration::from_secs(6)
        );
        assert!(cpu_time(std::process::id()).is_ok());
    }

    #[test]
    // Reaped by `wait_with_usage` (wait4), which clippy cannot see.
    #[allow(clippy::zombie_processes)]
    fn wait_with_usage_reports_a_finished_child() {
        let child = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"])
            .spawn()
            .unwrap();
        let me = std::process::id();
        assert!(descendants(me).contains(&child.id()) || descendants(me).is_empty());
        let (status, usage) = wait_with_usage(&child).unwrap();
        assert!(status.success());
        assert!(usage.peak_rss > 0, "{usage:?}");
    }

    #[test]
    fn reads_own_status() {
        let m = memory(None).unwrap();
        assert!(m.rss > 0 && m.hwm >= m.rss);
    }
}
