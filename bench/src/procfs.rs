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
    fn reads_own_status() {
        let m = memory(None).unwrap();
        assert!(m.rss > 0 && m.hwm >= m.rss);
    }
}
