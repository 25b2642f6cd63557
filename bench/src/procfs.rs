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

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions; it only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|&t| t > 0).unwrap_or(100)
}

fn parse_cpu(stat: &str, ticks_per_sec: u64) -> io::Result<std::time::Duration> {
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
    let ticks = num(11)? + num(12)?;
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
        assert!(cpu_time(std::process::id()).is_ok());
    }

    #[test]
    fn reads_own_status() {
        let m = memory(None).unwrap();
        assert!(m.rss > 0 && m.hwm >= m.rss);
    }
}
